import type { Variable } from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { KdError } from '@tfkd/kd-core';

/** How an extra weight block is initialised: a tfjs-layers VarianceScaling variant, read from the layer. */
export interface InitScheme {
  scale: number;
  mode: 'fanIn' | 'fanOut' | 'fanAvg';
  distribution: 'normal' | 'uniform';
}

/**
 * A Dense or Conv2D layer of the tiny model. Its kernel, seen as `[positions, inTiny, outTiny]`
 * (dense: positions = the spatial size its flattened input came from, 1 after another dense; conv:
 * kh·kw), is the leading slice `[:, :inTiny, :outTiny]` of the augmented layer's kernel.
 */
export interface MatrixOp {
  kind: 'matrix';
  layer: string;
  type: 'dense' | 'conv';
  kernel: () => Variable;
  bias: (() => Variable) | null;
  activation: 'relu' | 'linear';
  positions: number;
  inTiny: number;
  outTiny: number;
  /** Output positions per example (conv: H·W of its output; dense: 1), for FLOP counts. */
  outPositions: number;
  /** Index (among the matrix ops) of the layer whose output width this one reads; −1: the input. */
  inFrom: number;
  /** Whether the augmented network widens this layer's output (every matrix layer but the last). */
  widen: boolean;
  init: InitScheme;
  /** Conv only. */
  kernelSize?: [number, number];
  strides?: [number, number];
  padding?: 'same' | 'valid';
  dilation?: [number, number];
}

export type ChainOp =
  | MatrixOp
  | { kind: 'pool'; layer: string; poolSize: [number, number]; strides: [number, number]; padding: 'same' | 'valid' }
  | { kind: 'flatten'; layer: string }
  | { kind: 'activation'; layer: string; activation: 'relu' | 'linear' }
  | { kind: 'dropout'; layer: string; rate: number };

/** The tiny model as a chain of ops the augmented forward can widen. */
export interface Chain {
  ops: ChainOp[];
  /** The matrix ops, in order (`MatrixOp.inFrom` indexes this list). */
  matrices: MatrixOp[];
  /** Input shape of one example (without batch), as the model takes it. */
  inputShape: number[];
}

export const SUPPORTED_LAYERS = ['Dense', 'Conv2D', 'MaxPooling2D', 'Flatten', 'Activation', 'Dropout'] as const;

const INIT_SCHEMES: Record<string, InitScheme> = {
  GlorotUniform: { scale: 1, mode: 'fanAvg', distribution: 'uniform' },
  GlorotNormal: { scale: 1, mode: 'fanAvg', distribution: 'normal' },
  HeNormal: { scale: 2, mode: 'fanIn', distribution: 'normal' },
  HeUniform: { scale: 2, mode: 'fanIn', distribution: 'uniform' },
  LeCunNormal: { scale: 1, mode: 'fanIn', distribution: 'normal' },
  LeCunUniform: { scale: 1, mode: 'fanIn', distribution: 'uniform' },
};

type Config = Record<string, unknown>;
const pair = (v: unknown): [number, number] => (Array.isArray(v) ? [v[0] as number, (v[1] ?? v[0]) as number] : [v as number, v as number]);

function initScheme(config: Config): InitScheme {
  const ki = config.kernelInitializer as { className?: string; config?: Config } | undefined;
  const name = ki?.className ?? '';
  if (INIT_SCHEMES[name]) return INIT_SCHEMES[name];
  if (name === 'VarianceScaling' && ki?.config) {
    const c = ki.config;
    const distribution = c.distribution === 'normal' || c.distribution === 'truncatedNormal' ? 'normal' : 'uniform';
    return { scale: Number(c.scale ?? 1), mode: (c.mode as InitScheme['mode']) ?? 'fanIn', distribution };
  }
  // Anything else (zeros, orthogonal, a custom class): Glorot uniform, the zoo's dense default.
  return INIT_SCHEMES.GlorotUniform;
}

/**
 * Reads the student as a chain NetAug can widen: one input, one output, every layer fed by the one
 * before it, and only Dense / Conv2D (ReLU or linear) / MaxPooling2D / Flatten / Activation (ReLU or
 * linear) / Dropout — the zoo's `mlp`, `mlp-student`, `mlp-teacher`, `cnn-small` and `cnn-large`.
 * Anything else is a KD_PLUGIN_DEPENDENCY at `path` naming the layer, before any training.
 */
export function readChain(model: LayersModel, where: { role: string; path: string; plugin: string }): Chain {
  const unsupported = (what: string): KdError =>
    new KdError('KD_PLUGIN_DEPENDENCY', `'${where.plugin}' cannot augment the model of role '${where.role}': ${what}`, {
      path: where.path,
      fix:
        `give '${where.role}' a plain chain of ${SUPPORTED_LAYERS.join(' / ')} layers (ReLU or linear): the zoo's mlp, mlp-student, ` +
        'mlp-teacher, cnn-small or cnn-large (option `width` makes them tiny); ResNets, BatchNorm and multi-output models are not supported',
    });
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw unsupported(`it has ${model.inputs.length} inputs and ${model.outputs.length} outputs (one of each is needed)`);
  }
  const inShape = (model.inputs[0].shape as (number | null)[]).slice(1) as number[];
  if (inShape.length !== 3 && inShape.length !== 1) throw unsupported(`its input shape [${inShape}] is neither an image [h, w, c] nor a vector`);
  const layers = model.layers;
  const ops: ChainOp[] = [];
  const matrices: MatrixOp[] = [];
  // The feature flowing through the chain: its rank, spatial size, tiny channel count and which matrix layer widened it.
  let rank = inShape.length;
  let spatial = rank === 3 ? inShape[0] * inShape[1] : 1;
  let channels = inShape[inShape.length - 1];
  let from = -1;
  layers.forEach((layer, i) => {
    const cls = layer.getClassName();
    if (i === 0) {
      if (cls !== 'InputLayer') throw unsupported(`its first layer '${layer.name}' is a ${cls}, not its input`);
      return;
    }
    const inbound = layer.inboundNodes[0]?.inboundLayers ?? [];
    if (inbound.length !== 1 || inbound[0] !== layers[i - 1]) {
      throw unsupported(`layer '${layer.name}' (${cls}) is not fed by the layer before it alone (${inbound.map((l) => l.name).join(', ') || 'nothing'})`);
    }
    const config = layer.getConfig() as Config;
    const outShape = (layer.outputShape as (number | null)[]).slice(1) as number[];
    const activation = (name: unknown, what: string): 'relu' | 'linear' => {
      if (name === 'relu' || name === 'linear') return name;
      throw unsupported(`layer '${layer.name}' (${what}) has activation '${String(name)}' (ReLU or linear only)`);
    };
    if (cls === 'Dense' || cls === 'Conv2D') {
      const weights = layer.weights;
      const kernelVar = weights.find((w) => w.shape.length === (cls === 'Dense' ? 2 : 4));
      const biasVar = weights.find((w) => w.shape.length === 1) ?? null;
      if (!kernelVar) throw unsupported(`layer '${layer.name}' (${cls}) has no kernel`);
      const kshape = kernelVar.shape as number[];
      const out = kshape[kshape.length - 1];
      let positions: number;
      if (cls === 'Dense') {
        if (rank === 3) throw unsupported(`layer '${layer.name}' (Dense) reads an image feature without a Flatten before it`);
        positions = spatial;
        if (kshape[0] !== spatial * channels) throw unsupported(`layer '${layer.name}' (Dense) has ${kshape[0]} inputs, expected ${spatial * channels}`);
      } else {
        if (rank !== 3) throw unsupported(`layer '${layer.name}' (Conv2D) reads a flat feature`);
        if (config.dataFormat === 'channelsFirst') throw unsupported(`layer '${layer.name}' (Conv2D) is channels-first`);
        if (kshape[2] !== channels) throw unsupported(`layer '${layer.name}' (Conv2D) has ${kshape[2]} input channels, expected ${channels}`);
        positions = kshape[0] * kshape[1];
      }
      const op: MatrixOp = {
        kind: 'matrix',
        layer: layer.name,
        type: cls === 'Dense' ? 'dense' : 'conv',
        kernel: () => kernelVar.read() as Variable,
        bias: biasVar ? () => biasVar.read() as Variable : null,
        activation: activation(config.activation, cls),
        positions,
        inTiny: channels,
        outTiny: out,
        outPositions: cls === 'Dense' ? 1 : outShape[0] * outShape[1],
        inFrom: from,
        widen: true,
        init: initScheme(config),
        ...(cls === 'Conv2D'
          ? { kernelSize: [kshape[0], kshape[1]] as [number, number], strides: pair(config.strides), padding: config.padding === 'same' ? 'same' : 'valid', dilation: pair(config.dilationRate ?? 1) }
          : {}),
      };
      if (cls === 'Conv2D' && config.padding !== 'same' && config.padding !== 'valid') throw unsupported(`layer '${layer.name}' (Conv2D) has padding '${String(config.padding)}'`);
      ops.push(op);
      matrices.push(op);
      from = matrices.length - 1;
      channels = out;
      if (cls === 'Dense') {
        rank = 1;
        spatial = 1;
      } else spatial = outShape[0] * outShape[1];
    } else if (cls === 'MaxPooling2D') {
      if (rank !== 3) throw unsupported(`layer '${layer.name}' (MaxPooling2D) reads a flat feature`);
      if (config.dataFormat === 'channelsFirst') throw unsupported(`layer '${layer.name}' (MaxPooling2D) is channels-first`);
      ops.push({ kind: 'pool', layer: layer.name, poolSize: pair(config.poolSize), strides: pair(config.strides ?? config.poolSize), padding: config.padding === 'same' ? 'same' : 'valid' });
      spatial = outShape[0] * outShape[1];
    } else if (cls === 'Flatten') {
      ops.push({ kind: 'flatten', layer: layer.name });
      rank = 1;
    } else if (cls === 'Activation') {
      ops.push({ kind: 'activation', layer: layer.name, activation: activation(config.activation, cls) });
    } else if (cls === 'Dropout') {
      if (config.noiseShape != null) throw unsupported(`layer '${layer.name}' (Dropout) has a noise shape`);
      ops.push({ kind: 'dropout', layer: layer.name, rate: Number(config.rate) });
    } else {
      throw unsupported(`layer '${layer.name}' is a ${cls} (supported: ${SUPPORTED_LAYERS.join(', ')})`);
    }
  });
  if (matrices.length === 0) throw unsupported('it has no Dense or Conv2D layer');
  if (rank !== 1) throw unsupported('its output is not flat logits');
  // The last matrix layer produces the logits: its output keeps the class count.
  matrices[matrices.length - 1].widen = false;
  return { ops, matrices, inputShape: inShape };
}

/** Numbers only: the tiny widths of the widened layers, for logs and tests. */
export function widenedLayers(chain: Chain): { layer: string; width: number }[] {
  return chain.matrices.filter((m) => m.widen).map((m) => ({ layer: m.layer, width: m.outTiny }));
}
