import * as tf from '@tensorflow/tfjs-core';
import type { Tensor, Variable } from '@tensorflow/tfjs-core';
import type { Rng } from '@tfkd/kd-core';

/** How a student tap is mapped onto a target tap's shape (shapes without the batch axis). */
export type AdapterPlan =
  | { kind: 'dense'; inUnits: number; outUnits: number }
  | { kind: 'conv'; kh: number; kw: number; stride: number; padding: 'valid' | 'same'; inChannels: number; outChannels: number };

/**
 * RepDistiller `ConvReg` geometry, NHWC: equal H×W → 1×1 conv; student exactly 2× larger → 3×3
 * stride-2 conv; student larger otherwise → valid conv with kernel (1 + H_s − H_t, 1 + W_s − W_t).
 * Rank-2 taps → dense. Returns null when no plan exists (student smaller: RepDistiller only handles
 * the exact 2× case, with a transposed conv, which is not implemented here; rank mismatch).
 */
export function planAdapter(s: number[], t: number[]): AdapterPlan | null {
  if (s.length === 1 && t.length === 1) return { kind: 'dense', inUnits: s[0], outUnits: t[0] };
  if (s.length !== 3 || t.length !== 3) return null;
  const [hs, ws, cs] = s;
  const [ht, wt, ct] = t;
  const base = { inChannels: cs, outChannels: ct };
  if (hs === ht && ws === wt) return { kind: 'conv', kh: 1, kw: 1, stride: 1, padding: 'valid', ...base };
  if (hs === 2 * ht && ws === 2 * wt) return { kind: 'conv', kh: 3, kw: 3, stride: 2, padding: 'same', ...base };
  if (hs >= ht && ws >= wt) return { kind: 'conv', kh: 1 + hs - ht, kw: 1 + ws - wt, stride: 1, padding: 'valid', ...base };
  return null;
}

let counter = 0;

/**
 * A trainable connector r(·): conv (or dense) + bias, optional ReLU; no BatchNorm (RepDistiller's
 * ConvReg has one: its running statistics would need state the plugin API does not carry).
 * Initialised like torch's default: U(−1/√fan_in, 1/√fan_in), from the plugin's seeded Rng.
 */
export class Adapter {
  readonly kernel: Variable;
  readonly bias: Variable;

  constructor(
    readonly plan: AdapterPlan,
    rng: Rng,
    readonly relu: boolean,
    label = 'adapter',
  ) {
    const kshape = plan.kind === 'dense' ? [plan.inUnits, plan.outUnits] : [plan.kh, plan.kw, plan.inChannels, plan.outChannels];
    const fanIn = plan.kind === 'dense' ? plan.inUnits : plan.kh * plan.kw * plan.inChannels;
    const out = plan.kind === 'dense' ? plan.outUnits : plan.outChannels;
    const bound = 1 / Math.sqrt(fanIn);
    const uniform = (n: number) => Float32Array.from({ length: n }, () => (2 * rng.next() - 1) * bound);
    const id = `${label.replace(/[^A-Za-z0-9_]/g, '_')}_${counter++}`;
    this.kernel = tf.variable(tf.tensor(uniform(kshape.reduce((a, b) => a * b, 1)), kshape), true, `${id}/kernel`);
    this.bias = tf.variable(tf.tensor1d(uniform(out)), true, `${id}/bias`);
  }

  apply(x: Tensor): Tensor {
    return tf.tidy(() => {
      const p = this.plan;
      const y =
        p.kind === 'dense'
          ? tf.add(tf.matMul(x as tf.Tensor2D, this.kernel as tf.Tensor2D), this.bias)
          : tf.add(tf.conv2d(x as tf.Tensor4D, this.kernel as tf.Tensor4D, p.stride, p.padding), this.bias);
      return this.relu ? tf.relu(y) : y;
    });
  }

  get variables(): Variable[] {
    return [this.kernel, this.bias];
  }
}
