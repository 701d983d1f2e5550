import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { defineLoss } from '@tfkd/kd-core';
import { z } from 'zod';
import { pairTaps, pairsOption, readTap } from './common';
import { flatten2d, l2Normalize, smoothL1, sumScalars } from './ops';

/** RepDistiller `RKDLoss.pdist` floor on squared distances before the square root. */
export const PDIST_EPS = 1e-12;

/**
 * Euclidean distances between the rows of e [B, D] → [B, B], as RepDistiller `pdist`:
 * sqrt(max(‖e_i‖² + ‖e_j‖² − 2 e_i·e_j, 1e-12)), diagonal set to 0.
 */
export function pairwiseDistances(e: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const b = e.shape[0];
    const sq = tf.sum(tf.square(e), 1);
    const res = tf.sub(tf.add(tf.expandDims(sq, 1), tf.expandDims(sq, 0)), tf.mul(tf.matMul(e, e, false, true), 2));
    const d = tf.sqrt(tf.maximum(res, PDIST_EPS));
    return tf.mul(d, tf.sub(1, tf.eye(b))) as tf.Tensor2D;
  });
}

/**
 * ψ_D: distances divided by the mean of the positive ones. The count of positive entries uses
 * `tf.step` (zero gradient) rather than a comparison, which would break the backward pass.
 */
export function normalisedDistances(e: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const d = pairwiseDistances(e);
    const count = tf.maximum(tf.sum(tf.step(d)), 1);
    return tf.div(d, tf.div(tf.sum(d), count)) as tf.Tensor2D;
  });
}

/**
 * ψ_A: cos of the angle at vertex i between e_j and e_k, for all B³ triples → [B, B, B]:
 * ⟨n(e_j − e_i), n(e_k − e_i)⟩ with n(v) = v / max(‖v‖, 1e-12). A degenerate triple (j = i or
 * k = i) has a zero vector, so cos 0, and stays in the mean (as RepDistiller).
 *
 * Computed from the Gram matrix G of the batch-centred rows (angles do not move with a translation):
 * ⟨e_j − e_i, e_k − e_i⟩ = G_jk − G_ij − G_ik + G_ii and ‖e_j − e_i‖² = G_ii + G_jj − 2 G_ij, so
 * nothing of size B²·D is formed — RepDistiller's route (`tripletAnglesDirect`, B² difference
 * vectors of length D and a batched matmul) costs B³·D; this one B²·D + B³. A difference whose
 * squared length is below 1e-6 of G_ii + G_jj (duplicated rows, where the Gram route has only
 * rounding left) counts as the zero vector, as the direct route's exact zero does.
 */
export function tripletAngles(e: tf.Tensor2D): tf.Tensor3D {
  return tf.tidy(() => {
    const b = e.shape[0];
    const c = tf.sub(e, tf.mean(e, 0, true));
    const g = tf.matMul(c, c, false, true);
    const gd = tf.sum(tf.mul(g, tf.eye(b)), 1); // G_ii, from G itself so that ‖e_i − e_i‖² is exactly 0
    const sumSq = tf.add(tf.expandDims(gd, 1), tf.expandDims(gd, 0));
    const sq = tf.sub(sumSq, tf.mul(g, 2)); // [i, j] = ‖e_j − e_i‖²
    const valid = tf.step(tf.sub(sq, tf.mul(sumSq, ANGLE_DEGENERATE_REL))); // 0 on the diagonal and for duplicates; no gradient
    const inv = tf.div(valid, tf.sqrt(tf.maximum(sq, 1e-24))); // 1/‖e_j − e_i‖, or 0
    const dots = tf.add(tf.sub(tf.sub(tf.expandDims(g, 0), tf.expandDims(g, 2)), tf.expandDims(g, 1)), tf.reshape(gd, [b, 1, 1]));
    return tf.mul(tf.mul(dots, tf.expandDims(inv, 2)), tf.expandDims(inv, 1)) as tf.Tensor3D;
  });
}

/** Squared-length ratio below which a difference vector counts as zero in `tripletAngles`. */
export const ANGLE_DEGENERATE_REL = 1e-6;

/** ψ_A as RepDistiller computes it (`RKDLoss`: F.normalize of the B² differences, then bmm): the reference route. */
export function tripletAnglesDirect(e: tf.Tensor2D): tf.Tensor3D {
  return tf.tidy(() => {
    const diff = tf.sub(tf.expandDims(e, 0), tf.expandDims(e, 1)); // [i, j] = e_j − e_i
    const n = l2Normalize(diff, 2) as tf.Tensor3D;
    return tf.matMul(n, n, false, true) as tf.Tensor3D;
  });
}

/** RKD distance term: mean over the B² entries (diagonal included) of smoothL1(ψ_D(s), ψ_D(t)). */
export function rkdDistance(es: Tensor, et: Tensor): Scalar {
  return tf.tidy(() => tf.mean(smoothL1(normalisedDistances(flatten2d(es)), normalisedDistances(flatten2d(et)))) as Scalar);
}

/** RKD angle term: mean over the B³ entries of smoothL1(ψ_A(s), ψ_A(t)). */
export function rkdAngle(es: Tensor, et: Tensor): Scalar {
  return tf.tidy(() => tf.mean(smoothL1(tripletAngles(flatten2d(es)), tripletAngles(flatten2d(et)))) as Scalar);
}

export interface RkdOptions {
  distanceWeight: number;
  angleWeight: number;
}

/** w_d · distance + w_a · angle (RepDistiller `RKDLoss.forward`). */
export function rkdLoss(es: Tensor, et: Tensor, o: RkdOptions = { distanceWeight: 25, angleWeight: 50 }): Scalar {
  return tf.tidy(() => tf.add(tf.mul(rkdDistance(es, et), o.distanceWeight), tf.mul(rkdAngle(es, et), o.angleWeight)) as Scalar);
}

export const rkdSchema = z
  .object({
    pairs: pairsOption('[[student.embedding, teacher.embedding]]'),
    distanceWeight: z.number().min(0).default(25).describe('w_d, multiplies the distance term; default 25 (RepDistiller RKDLoss w_d)'),
    angleWeight: z.number().min(0).default(50).describe('w_a, multiplies the angle term; default 50 (RepDistiller RKDLoss w_a)'),
  })
  .strict();

/** `loss/rkd`: two logged terms, `<name>:distance` and `<name>:angle` (unweighted), weighted by w_d, w_a. */
export const rkdLossDef = defineLoss({
  id: 'loss/rkd',
  describe:
    'Relational KD (Park et al. 2019): w_d·smoothL1(ψ_D(s), ψ_D(t)) + w_a·smoothL1(ψ_A(s), ψ_A(t)) on flattened taps, w_d = 25, w_a = 50; terms `distance`, `angle`; recommended weight 1 (RepDistiller -b 1, embedding)',
  options: rkdSchema,
  requires: (o) => ({ taps: pairTaps(o.pairs) }),
  compute(ctx, o) {
    const pairs = o.pairs.map(([s, t]) => [readTap(ctx, s, false), readTap(ctx, t, true)] as const);
    return {
      distance: { value: sumScalars(pairs.map(([s, t]) => rkdDistance(s, t))), weight: o.distanceWeight },
      angle: { value: sumScalars(pairs.map(([s, t]) => rkdAngle(s, t))), weight: o.angleWeight },
    };
  },
});
