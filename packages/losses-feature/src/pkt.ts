import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { defineLoss } from '@tfkd/kd-core';
import { z } from 'zod';
import { pairTaps, pairsOption, readTap } from './common';
import { flatten2d, safeNorm, sumScalars } from './ops';

/** RepDistiller's PKT eps (norm floor and log guard). */
export const PKT_EPS = 1e-7;

/**
 * Conditional probabilities of PKT: rows scaled x/(‖x‖ + ε), cosine similarities mapped to [0, 1]
 * by (cos + 1)/2, each row divided by its sum → P [B, B].
 */
export function pktProbabilities(f: Tensor, eps = PKT_EPS): tf.Tensor2D {
  return tf.tidy(() => {
    const x = flatten2d(f);
    // ‖x‖ floored at 1e-12 under the root: an all-zero row (dead ReLU embedding) gets a zero
    // gradient instead of torch's/tfjs's sqrt'(0)·0 = NaN; the value differs by < 1e-12.
    const norm = safeNorm(x, 1);
    const u = tf.div(x, tf.add(norm, eps));
    const sim = tf.div(tf.add(tf.matMul(u, u, false, true), 1), 2);
    return tf.div(sim, tf.sum(sim, 1, true)) as tf.Tensor2D;
  });
}

/**
 * PKT for one pair (RepDistiller `PKT.cosine_similarity_loss`): MEAN over the B×B entries of
 * P_t · log((P_t + ε)/(P_s + ε)) — a KL divergence per row, averaged over entries (so 1/B of the
 * row-summed KL), as the reference.
 */
export function pktLoss(fs: Tensor, ft: Tensor, eps = PKT_EPS): Scalar {
  return tf.tidy(() => {
    const ps = pktProbabilities(fs, eps);
    const pt = pktProbabilities(ft, eps);
    return tf.mean(tf.mul(pt, tf.log(tf.div(tf.add(pt, eps), tf.add(ps, eps))))) as Scalar;
  });
}

export const pktSchema = z.object({ pairs: pairsOption('[[student.embedding, teacher.embedding]]') }).strict();

/** `loss/pkt`. Any tap ranks (flattened); feature sizes may differ. */
export const pktLossDef = defineLoss({
  id: 'loss/pkt',
  describe:
    'Probabilistic knowledge transfer (Passalis & Tefas 2018): Σ_pairs mean_{ij} P_t log((P_t+ε)/(P_s+ε)), P = row-normalised (cos+1)/2 similarities of flattened features, ε = 1e-7; recommended weight 30000 (RepDistiller -b 30000, embedding)',
  options: pktSchema,
  requires: (o) => ({ taps: pairTaps(o.pairs) }),
  compute: (ctx, o) => sumScalars(o.pairs.map(([s, t]) => pktLoss(readTap(ctx, s, false), readTap(ctx, t, true)))),
});
