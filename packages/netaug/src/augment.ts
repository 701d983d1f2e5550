import * as tf from '@tensorflow/tfjs-core';
import type { Tensor, Tensor2D, Tensor4D, Variable } from '@tensorflow/tfjs-core';
import type { Rng } from '@tfkd/kd-core';
import type { Chain, InitScheme, MatrixOp } from './chain';

/**
 * A tiny width times a multiplier, rounded as the reference rounds (mit-han-lab/tinyml
 * `netaug/utils/misc.py` `make_divisible(v, 1)`, through `aug_width(base, factors, 1)`): half up, at
 * least 1, bumped by one if rounding lost more than 10 %. `augmentedWidth(n, 1)` is n.
 */
export function augmentedWidth(tiny: number, multiplier: number): number {
  const v = tiny * multiplier;
  let out = Math.max(1, Math.floor(v + 0.5));
  if (out < 0.9 * v) out += 1;
  return out;
}

/** The widest augmented network: each matrix layer's largest input and output widths. */
export interface Extent {
  inMax: number;
  outMax: number;
}

export function extents(chain: Chain, multipliers: readonly number[]): Extent[] {
  const top = Math.max(...multipliers);
  const outMax = chain.matrices.map((m) => (m.widen ? augmentedWidth(m.outTiny, top) : m.outTiny));
  return chain.matrices.map((m, i) => ({ inMax: m.inFrom < 0 ? m.inTiny : outMax[m.inFrom], outMax: outMax[i] }));
}

/**
 * The extra weights of one matrix layer (null where the layer does not grow). With the kernel seen
 * as `[positions, in, out]`, the augmented kernel is `[[K, cols], [rows]]`: the tiny kernel K is its
 * leading slice `[:, :inTiny, :outTiny]` — the reference's weight sharing, where the tiny network is
 * the first channels / units of every augmented layer.
 */
export interface LayerExtras {
  /** `[positions, inTiny, outMax − outTiny]`: from the tiny inputs to the new outputs. */
  cols: Variable | null;
  /** `[positions, inMax − inTiny, outMax]`: from the new inputs to every output. */
  rows: Variable | null;
  /** `[outMax − outTiny]`, zeros at first (the zoo's bias initialiser). */
  bias: Variable | null;
}

let made = 0;

/** tfjs-layers `VarianceScaling` on a block of the widest kernel (fans of the widest kernel), seeded. */
function draw(shape: number[], scheme: InitScheme, fans: [number, number], seed: number): Tensor {
  const [fanIn, fanOut] = fans;
  const n = scheme.mode === 'fanIn' ? fanIn : scheme.mode === 'fanOut' ? fanOut : (fanIn + fanOut) / 2;
  const scale = scheme.scale / Math.max(1, n);
  return scheme.distribution === 'normal'
    ? tf.truncatedNormal(shape, 0, Math.sqrt(scale), 'float32', seed)
    : tf.randomUniform(shape, -Math.sqrt(3 * scale), Math.sqrt(3 * scale), 'float32', seed);
}

/**
 * The plugin's trainable variables: per matrix layer, the blocks that make it as wide as the widest
 * augmented network, initialised like the layer itself (its kernel initialiser's VarianceScaling
 * scheme on the widest kernel's fans, seeded from `rng`; biases zero).
 */
export function createExtras(chain: Chain, multipliers: readonly number[], rng: Rng, label = 'netaug'): LayerExtras[] {
  const ext = extents(chain, multipliers);
  const id = `${label.replace(/[^A-Za-z0-9_]/g, '_')}_${made++}`;
  return chain.matrices.map((m, i) => {
    const { inMax, outMax } = ext[i];
    const P = m.positions;
    const fans: [number, number] = [P * inMax, m.type === 'conv' ? P * outMax : outMax];
    const variable = (name: string, init: () => Tensor): Variable => tf.tidy(() => tf.variable(init(), true, `${id}/${m.layer}/${name}`));
    return {
      cols: outMax > m.outTiny ? variable('cols', () => draw([P, m.inTiny, outMax - m.outTiny], m.init, fans, rng.nextUint32())) : null,
      rows: inMax > m.inTiny ? variable('rows', () => draw([P, inMax - m.inTiny, outMax], m.init, fans, rng.nextUint32())) : null,
      bias: outMax > m.outTiny && m.bias ? variable('bias', () => tf.zeros([outMax - m.outTiny])) : null,
    };
  });
}

/** The extras as one list, in a stable order (checkpoints save plugin variables by position). */
export function extrasVariables(extras: readonly LayerExtras[]): Variable[] {
  return extras.flatMap((e) => [e.cols, e.rows, e.bias].filter((v): v is Variable => v !== null));
}

/**
 * One augmented sub-network: each widened layer's output width drawn independently from the
 * multipliers (the reference's `set_active(mode="random")`: `torch_random_choices` per layer); the
 * last layer keeps the class count. One draw per widened layer, in order.
 */
export function sampleWidths(chain: Chain, multipliers: readonly number[], rng: Rng): number[] {
  return chain.matrices.map((m) => (m.widen ? augmentedWidth(m.outTiny, multipliers[rng.int(multipliers.length)]) : m.outTiny));
}

/** The tiny widths: the augmented forward at these is the tiny model's own forward. */
export function tinyWidths(chain: Chain): number[] {
  return chain.matrices.map((m) => m.outTiny);
}

/**
 * The augmented kernel at input width `inA` and output width `outA`: the widest kernel `[[K, cols],
 * [rows]]` assembled, then its leading `[:, :inA, :outA]` slice taken — the reference's
 * `weight[:active_out, :active_in]` on a full parameter. Every extra block is part of the graph at
 * every step (its gradient is zero where the drawn widths do not reach), so the set of variables
 * with a gradient never changes between steps: tfjs optimizers keep their slots by position.
 */
export function composeKernel(kernel: Tensor, e: LayerExtras, m: MatrixOp, inA: number, outA: number): Tensor {
  if (!e.cols && !e.rows) return kernel;
  const P = m.positions;
  let k = tf.reshape(kernel, [P, m.inTiny, m.outTiny]);
  if (e.cols) k = tf.concat([k, e.cols], 2);
  if (e.rows) k = tf.concat([k, e.rows], 1);
  const [, inMax, outMax] = k.shape;
  if (inA < inMax || outA < outMax) k = tf.slice(k, [0, 0, 0], [P, inA, outA]);
  const [kh, kw] = m.kernelSize ?? [1, 1];
  return m.type === 'conv' ? tf.reshape(k, [kh, kw, inA, outA]) : tf.reshape(k, [P * inA, outA]);
}

/** The augmented bias: the student's bias, then the extra one, sliced to `outA` (as `composeKernel`). */
export function composeBias(bias: Tensor, e: LayerExtras, outA: number): Tensor {
  if (!e.bias) return bias;
  const full = tf.concat([bias, e.bias]);
  return outA < full.shape[0] ? tf.slice(full, [0], [outA]) : full;
}

export interface ForwardOptions {
  /** Dropout on (training) or off. */
  training: boolean;
  /** A fresh seed per dropout layer (from the plugin's generator); needed when training with dropout. */
  seed?: () => number;
}

/**
 * The augmented network's logits: the tiny model's layers, run with tf ops on kernels composed from
 * the student's current weights (read from its variables, so the gradient reaches them) and the
 * extras, at the given output widths (one per matrix layer). The same fused ops as tfjs-layers: at the
 * tiny widths this is the tiny model's forward, value for value.
 */
export function augmentedForward(chain: Chain, extras: readonly LayerExtras[], widths: readonly number[], x: Tensor, opts: ForwardOptions): Tensor {
  return tf.tidy(() => {
    let h = x;
    let i = 0;
    for (const op of chain.ops) {
      if (op.kind === 'matrix') {
        const inA = op.inFrom < 0 ? op.inTiny : widths[op.inFrom];
        const outA = widths[i];
        const kernel = composeKernel(op.kernel(), extras[i], op, inA, outA);
        const bias = op.bias ? composeBias(op.bias(), extras[i], outA) : undefined;
        h =
          op.type === 'dense'
            ? tf.fused.matMul({ a: h as Tensor2D, b: kernel as Tensor2D, bias, activation: op.activation })
            : tf.fused.conv2d({
                x: h as Tensor4D,
                filter: kernel as Tensor4D,
                strides: op.strides as [number, number],
                pad: op.padding as 'same' | 'valid',
                dataFormat: 'NHWC',
                dilations: op.dilation,
                bias,
                activation: op.activation,
              });
        i++;
      } else if (op.kind === 'pool') {
        h = tf.maxPool(h as Tensor4D, op.poolSize, op.strides, op.padding);
      } else if (op.kind === 'flatten') {
        h = tf.reshape(h, [h.shape[0], -1]);
      } else if (op.kind === 'activation') {
        if (op.activation === 'relu') h = tf.relu(h);
      } else if (opts.training && op.rate > 0) {
        h = tf.dropout(h, op.rate, undefined, opts.seed?.());
      }
    }
    return h;
  });
}

/** Forward FLOPs per image of the network at these widths (dense 2·in·out, conv 2·kh·kw·Cin·Cout·H·W; elementwise ignored). */
export function chainFlops(chain: Chain, widths: readonly number[]): number {
  return chain.matrices.reduce((s, m, i) => {
    const inA = m.inFrom < 0 ? m.inTiny : widths[m.inFrom];
    return s + 2 * m.positions * inA * widths[i] * m.outPositions;
  }, 0);
}
