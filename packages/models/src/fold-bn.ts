import type { Tensor } from '@tensorflow/tfjs-core';
import { tensor } from '@tensorflow/tfjs-core';
import { models, type LayersModel } from '@tensorflow/tfjs-layers';

/**
 * Batch-norm folding for a frozen (inference-only) model: every BatchNormalization that directly
 * follows a Conv2D or Dense layer (linear activation, nothing else reading its output) is folded into
 * that layer's kernel and bias, and a ReLU right after it becomes the layer's fused activation:
 *
 *   scale_c = gamma_c / sqrt(movingVariance_c + epsilon)
 *   kernel'[..., c] = kernel[..., c] · scale_c
 *   bias'_c = (bias_c − movingMean_c) · scale_c + beta_c        (bias_c = 0 for a conv without bias)
 *
 * computed in float64 and rounded once. The result computes what the original computes in inference
 * mode (`training: false`) to float32 precision, in fewer kernels (conv + BN + ReLU → one
 * FusedConv2D). It is a new model (its own layers and weights; the caller disposes it) with the same
 * inputs and the same outputs in the same order — so the outputs of a tapped model (logits and taps)
 * keep their positions. A dropped layer's name maps to the layer now producing its output
 * (`renamed`, `foldedLayerName`). Batch norm in training mode (batch statistics) cannot be folded:
 * use the result for frozen models only.
 */
export interface FoldedBatchNorm {
  /** The inference-only model (the input model itself when nothing was folded). */
  model: LayersModel;
  /** One entry per folded batch norm: the layer that absorbed it (and the ReLU after it, if fused). */
  folds: { into: string; batchNorm: string; relu?: string }[];
  /** Dropped layer → the layer of the folded model whose output equals the dropped layer's output. */
  renamed: Record<string, string>;
}

export interface FoldBatchNormOptions {
  /** Fuse a ReLU that follows a folded batch norm into the layer's activation (default true). */
  fuseRelu?: boolean;
  /**
   * Layers whose own outputs must keep their meaning by name (taps read by name afterwards): a conv
   * listed here is not folded (its output is the pre-BN value), a batch norm listed here keeps its
   * ReLU separate (its output is the pre-ReLU value). Model outputs are kept automatically.
   */
  keep?: readonly string[];
}

type Json = Record<string, unknown>;
interface LayerJson {
  name: string;
  class_name: string;
  config: Json;
  inbound_nodes?: unknown[][];
}
/** One input reference of an inbound node: [layer, nodeIndex, tensorIndex, kwargs?]. */
type Ref = [string, number, number, ...unknown[]];

const FOLDABLE = new Set(['Conv2D', 'Dense']);

/** The name the folded model gives to what `layer` produced in the original (itself when kept). */
export function foldedLayerName(folded: Pick<FoldedBatchNorm, 'renamed'>, layer: string): string {
  return folded.renamed[layer] ?? layer;
}

/** Folds batch norms into the preceding convolutions / dense layers; see {@link FoldedBatchNorm}. */
export async function foldBatchNorm(model: LayersModel, opts: FoldBatchNormOptions = {}): Promise<FoldedBatchNorm> {
  const topology = model.toJSON(null, false) as unknown as { class_name: string; config: Json };
  const sequential = topology.class_name === 'Sequential';
  const cfg = topology.config as { layers: LayerJson[]; output_layers?: Ref[] };
  const layers = cfg.layers;
  // A Sequential's entries carry their name in their config only.
  for (const l of layers) l.name ??= l.config.name as string;
  const byName = new Map(layers.map((l) => [l.name, l]));
  const keep = new Set(opts.keep ?? []);
  const fuseRelu = opts.fuseRelu ?? true;

  // Who reads each layer's output (functional graph; a Sequential is a chain).
  const readers = new Map<string, string[]>();
  const outputs = new Set<string>();
  if (sequential) {
    layers.forEach((l, i) => readers.set(l.name, i + 1 < layers.length ? [layers[i + 1].name] : []));
    if (layers.length > 0) outputs.add(layers[layers.length - 1].name);
  } else {
    for (const l of layers) readers.set(l.name, []);
    for (const l of layers) for (const node of l.inbound_nodes ?? []) for (const ref of node as Ref[]) readers.get(ref[0])?.push(l.name);
    for (const ref of cfg.output_layers ?? []) outputs.add(ref[0]);
  }
  const single = (l: LayerJson) => sequential || (l.inbound_nodes?.length === 1 && l.inbound_nodes[0].length === 1);
  const inputOf = (l: LayerJson): LayerJson | undefined => {
    if (sequential) return layers[layers.indexOf(l) - 1];
    return single(l) ? byName.get((l.inbound_nodes?.[0][0] as Ref)[0]) : undefined;
  };
  const onlyReader = (name: string): LayerJson | undefined => {
    const r = readers.get(name) ?? [];
    return r.length === 1 && !outputs.has(name) ? byName.get(r[0]) : undefined;
  };

  const folds: FoldedBatchNorm['folds'] = [];
  for (const bn of layers) {
    if (bn.class_name !== 'BatchNormalization' || !single(bn)) continue;
    const conv = inputOf(bn);
    if (!conv || !FOLDABLE.has(conv.class_name) || !single(conv) || keep.has(conv.name)) continue;
    if (onlyReader(conv.name) !== bn) continue;
    const c = conv.config;
    if ((c.activation ?? 'linear') !== 'linear') continue;
    if (conv.class_name === 'Conv2D' && (c.data_format ?? 'channels_last') !== 'channels_last') continue;
    const axis = bn.config.axis as number | number[];
    const rank = conv.class_name === 'Conv2D' ? 4 : null;
    const lastAxis = axis === -1 || (Array.isArray(axis) && axis.length === 1 && axis[0] === -1) || (rank !== null && (axis === rank - 1 || (Array.isArray(axis) && axis.length === 1 && axis[0] === rank - 1)));
    if (!lastAxis) continue;
    const fold: FoldedBatchNorm['folds'][number] = { into: conv.name, batchNorm: bn.name };
    const next = fuseRelu && !keep.has(bn.name) ? onlyReader(bn.name) : undefined;
    if (next && single(next) && isPlainRelu(next)) fold.relu = next.name;
    folds.push(fold);
  }
  if (folds.length === 0) return { model, folds, renamed: {} };

  // Rewrite the topology: drop the batch norms (and fused ReLUs), point their readers at the conv.
  const renamed: Record<string, string> = {};
  for (const f of folds) {
    renamed[f.batchNorm] = f.into;
    if (f.relu) renamed[f.relu] = f.into;
    const conv = byName.get(f.into) as LayerJson;
    conv.config = { ...conv.config, use_bias: true, activation: f.relu ? 'relu' : 'linear' };
  }
  const dropped = new Set(Object.keys(renamed));
  const redirect = (ref: Ref): Ref => (dropped.has(ref[0]) ? [renamed[ref[0]], 0, 0, ...ref.slice(3)] as Ref : ref);
  cfg.layers = layers.filter((l) => !dropped.has(l.name));
  if (sequential) for (const l of cfg.layers) delete (l as Partial<LayerJson>).name;
  if (!sequential) {
    for (const l of cfg.layers) if (l.inbound_nodes) l.inbound_nodes = l.inbound_nodes.map((node) => (node as Ref[]).map(redirect));
    if (cfg.output_layers) cfg.output_layers = cfg.output_layers.map(redirect);
  }

  const out = await models.modelFromJSON({ modelTopology: topology } as never);
  try {
    const foldOf = new Map(folds.map((f) => [f.into, f]));
    for (const layer of out.layers) {
      const original = model.getLayer(layer.name);
      const f = foldOf.get(layer.name);
      const weights = f ? foldedWeights(original, model.getLayer(f.batchNorm)) : original.getWeights();
      layer.setWeights(weights);
      if (f) weights.forEach((w) => w.dispose());
    }
  } catch (e) {
    out.dispose();
    throw e;
  }
  out.trainable = false;
  return { model: out, folds, renamed };
}

function isPlainRelu(l: LayerJson): boolean {
  if (l.class_name === 'ReLU') return l.config.max_value == null;
  return l.class_name === 'Activation' && l.config.activation === 'relu';
}

/** Kernel and bias of `conv` with `bn` folded in (float64 arithmetic, one rounding to float32). */
function foldedWeights(conv: LayersModel['layers'][number], bn: LayersModel['layers'][number]): Tensor[] {
  const cc = conv.getConfig() as { useBias?: boolean };
  const bc = bn.getConfig() as { epsilon: number; center?: boolean; scale?: boolean };
  const cw = conv.getWeights();
  const kernel = cw[0];
  const units = kernel.shape[kernel.shape.length - 1] as number;
  const k = kernel.dataSync();
  const bias = cc.useBias ? cw[1].dataSync() : new Float32Array(units);
  const bw = bn.getWeights().map((w) => w.dataSync());
  let i = 0;
  const gamma = bc.scale !== false ? bw[i++] : null;
  const beta = bc.center !== false ? bw[i++] : null;
  const mean = bw[i++];
  const variance = bw[i++];
  const scale = new Float64Array(units);
  const b = new Float32Array(units);
  for (let c = 0; c < units; c++) {
    scale[c] = (gamma ? gamma[c] : 1) / Math.sqrt(variance[c] + bc.epsilon);
    b[c] = (bias[c] - mean[c]) * scale[c] + (beta ? beta[c] : 0);
  }
  const w = new Float32Array(k.length);
  for (let j = 0; j < k.length; j++) w[j] = k[j] * scale[j % units];
  return [tensor(w, kernel.shape, 'float32'), tensor(b, [units], 'float32')];
}
