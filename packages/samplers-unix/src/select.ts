import * as tf from '@tensorflow/tfjs-core';
import type { Tensor, Tensor1D } from '@tensorflow/tfjs-core';
import { KdError } from '@tfkd/kd-core';

/**
 * The pure parts of UNIX (Xu et al., "Computation-Efficient Knowledge Distillation via
 * Uncertainty-Aware Mixup"; reference: xuguodong03/UNIXKD `student_v0.py`). Everything here is a
 * plain function of its inputs: the plugins draw λ and the partner permutation from their seeded
 * generator and pass them in, so tests can inject them.
 */

/** Probabilities below this are treated as this value inside the log (p·log p → 0 as p → 0). */
export const ENTROPY_FLOOR = 1e-30;

/**
 * Shannon entropy (nats) of each row of `probs` `[N, K]`: u_n = −Σ_k p_nk · log p_nk → `[N]`.
 * The reference's `-(probs * torch.log(probs)).sum(1)` is NaN when a probability underflows to 0;
 * here log p is floored at log(1e-30), so such a term is 0 (its limit).
 */
export function entropyRows(probs: Tensor): Tensor1D {
  if (probs.rank !== 2) {
    throw new KdError('KD_SHAPE_MISMATCH', `entropyRows: probabilities must be [batch, classes], got shape [${probs.shape}]`);
  }
  return tf.tidy(() => tf.neg(tf.sum(tf.mul(probs, tf.log(tf.maximum(probs, ENTROPY_FLOOR))), 1)) as Tensor1D);
}

/**
 * Indices 0..N−1 ordered by `scores` descending (most uncertain first). Stable: equal scores keep
 * their batch order (torch.argsort, used by the reference, makes no such promise). NaN sorts last.
 */
export function rankDescending(scores: ArrayLike<number>): Int32Array {
  const order = Array.from({ length: scores.length }, (_, i) => i);
  const key = (i: number): number => (Number.isNaN(scores[i]) ? -Infinity : scores[i]);
  order.sort((a, b) => key(b) - key(a) || a - b);
  return Int32Array.from(order);
}

export interface MixRatioOptions {
  /** Steepness w of the sigmoid (UNIXKD run script: 10; its argparse default 1000 is a hard step). */
  w: number;
  /** Rank b (absolute, 1-based count of "mildly mixed" samples) where c crosses 1/2 (between ranks b−1 and b). */
  b: number;
}

/**
 * The per-rank mixing ratio c_r = sigmoid(w · (r/N − (2b − 1)/(2N))), r = 0..N−1 (rank 0 = most
 * uncertain): small for the most uncertain samples (mild mixing), close to 1 past rank b.
 * Reference: `mask_proto = 1 / (1 + exp(-w * (r/batch_size - (2b-1)/(2*batch_size))))`.
 */
export function mixRatios(n: number, opts: MixRatioOptions): Float64Array {
  const c = new Float64Array(n);
  const m = (2 * opts.b - 1) / (2 * n);
  for (let r = 0; r < n; r++) c[r] = 1 / (1 + Math.exp(-opts.w * (r / n - m)));
  return c;
}

export interface MixPlan {
  /** Source positions (within the batch) in the order to keep them; only the first `keep` are used. */
  order: ArrayLike<number>;
  /** Per-position mixing ratio c_r (same length as `order`), multiplied by λ. */
  c: ArrayLike<number>;
  /** The batch's λ (one per batch). */
  lambda: number;
  /** Partner permutation π of 0..N−1 over the *original* batch order: rank r mixes with x[π(r)]. */
  perm: ArrayLike<number>;
  /** How many to keep: k = min(keep, N). */
  keep: number;
}

export interface MixResult {
  /** Mixed images x̃[0:k] = (1 − m_r)·x[order_r] + m_r·x[π(r)]. */
  x: Tensor;
  /** Labels of the kept *source* images, y[order_r] — never mixed, never the partner's. */
  y: Tensor;
  /** Source position in the batch of each kept row (order[0:k]). */
  kept: Int32Array;
  /** Partner position of each kept row (π[0:k]). */
  partners: Int32Array;
  /** m_r = λ·c_r of each kept row. */
  m: Float64Array;
}

/**
 * Mix and keep, as the reference does: x̃ = (1 − m)·x[rank] + m·x[index], then x̃[:k]. Only the k
 * kept rows are computed (the rest would be discarded). With λ = 0 the kept rows equal the source
 * rows exactly (x·1 + x_π·0).
 */
export function mixAndKeep(x: Tensor, y: Tensor, plan: MixPlan): MixResult {
  const n = x.shape[0] as number;
  if (y.shape[0] !== n || plan.order.length !== n || plan.c.length !== n || plan.perm.length !== n) {
    throw new KdError(
      'KD_SHAPE_MISMATCH',
      `mixAndKeep: batch of ${n} images needs ${n} labels, ranks, ratios and partners (got ${y.shape[0]}, ${plan.order.length}, ${plan.c.length}, ${plan.perm.length})`,
    );
  }
  const k = Math.max(0, Math.min(Math.floor(plan.keep), n));
  const kept = Int32Array.from({ length: k }, (_, r) => plan.order[r]);
  const partners = Int32Array.from({ length: k }, (_, r) => plan.perm[r]);
  const m = Float64Array.from({ length: k }, (_, r) => plan.lambda * plan.c[r]);
  const out = tf.tidy(() => {
    const keptT = tf.tensor1d(kept, 'int32');
    const own = tf.gather(x, keptT);
    const ys = tf.gather(y, keptT);
    if (plan.lambda === 0) return { x: own, y: ys };
    const other = tf.gather(x, tf.tensor1d(partners, 'int32'));
    const mT = tf.tensor(Float32Array.from(m), [k, ...new Array<number>(x.rank - 1).fill(1)], 'float32');
    return { x: tf.add(tf.mul(own, tf.sub(1, mT)), tf.mul(other, mT)), y: ys };
  });
  return { ...out, kept, partners, m };
}

export interface UnixSelectOptions extends MixRatioOptions {
  /** λ of this batch. */
  lambda: number;
  /** Partner permutation π of 0..N−1 (original batch order). */
  perm: ArrayLike<number>;
  /** k: how many of the most uncertain to keep. */
  keep: number;
}

/**
 * UNIX on one batch, given the uncertainties u `[N]` (as numbers), λ and π: rank by u descending,
 * m_r = λ·c_r, x̃_r = (1 − m_r)·x_r + m_r·x_π(r), keep the first k with their own labels.
 */
export function unixSelect(x: Tensor, y: Tensor, u: ArrayLike<number>, opts: UnixSelectOptions): MixResult {
  const n = x.shape[0] as number;
  if (u.length !== n) throw new KdError('KD_SHAPE_MISMATCH', `unixSelect: ${n} images but ${u.length} uncertainties`);
  return mixAndKeep(x, y, { order: rankDescending(u), c: mixRatios(n, opts), lambda: opts.lambda, perm: opts.perm, keep: opts.keep });
}
