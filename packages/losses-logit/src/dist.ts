import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor, Tensor1D } from '@tensorflow/tfjs-core';
import { defineLoss, softmaxT, studentOption, targetLogits, teacherOption, temperatureOption } from '@tfkd/kd-core';
import { z } from 'zod';
import { assertLogitPair, studentLogits } from './common';

/** The reference's epsilon, added to the product of the two norms. */
export const DIST_EPS = 1e-8;
/**
 * Floor under each squared norm before the square root. An all-zero centred row (a batch of one
 * sample in the intra-class term) would otherwise give sqrt'(0) = ∞ and a NaN gradient; torch defines
 * the norm's gradient at 0 as 0. The floor changes the norm by at most 1e-12, far below DIST_EPS.
 */
const SQ_NORM_FLOOR = 1e-24;

export interface DistOptions {
  /** Weight of the inter-class (per-sample) relation. */
  beta: number;
  /** Weight of the intra-class (per-class) relation. */
  gamma: number;
  temperature: number;
}

function rowNorm(x: Tensor): Tensor {
  return tf.sqrt(tf.maximum(tf.sum(tf.square(x), 1), SQ_NORM_FLOOR));
}

/**
 * Pearson correlation of each row of `a` with the same row of `b` ([N, M] → [N]): the cosine of the
 * mean-centred rows, Σ a'b' / (‖a'‖·‖b'‖ + eps), as the reference's `pearson_correlation`.
 */
export function pearsonRows(a: Tensor, b: Tensor, eps = DIST_EPS): Tensor1D {
  return tf.tidy(() => {
    const ac = tf.sub(a, tf.mean(a, 1, true));
    const bc = tf.sub(b, tf.mean(b, 1, true));
    const num = tf.sum(tf.mul(ac, bc), 1);
    return tf.div(num, tf.add(tf.mul(rowNorm(ac), rowNorm(bc)), eps)) as Tensor1D;
  });
}

/** Inter-class relation of probabilities `[B, K]`: 1 − mean_b pearson(p_s[b, :], p_t[b, :]). */
export function distInter(ps: Tensor, pt: Tensor): Scalar {
  return tf.tidy(() => tf.sub(1, tf.mean(pearsonRows(ps, pt))) as Scalar);
}

/** Intra-class relation of probabilities `[B, K]`: 1 − mean_k pearson(p_s[:, k], p_t[:, k]). */
export function distIntra(ps: Tensor, pt: Tensor): Scalar {
  return tf.tidy(() => distInter(tf.transpose(ps), tf.transpose(pt)));
}

/**
 * DIST (Huang et al., NeurIPS 2022), as hunto's `DIST.forward`: with p^T = softmax(z / T),
 * T² · (β · inter(p_s^T, p_t^T) + γ · intra(p_s^T, p_t^T)).
 */
export function dist(zs: Tensor, zt: Tensor, opts: DistOptions): Scalar {
  assertLogitPair(zs, zt, 'dist');
  const t = opts.temperature;
  return tf.tidy(() => {
    const ps = softmaxT(zs, t);
    const pt = softmaxT(zt, t);
    const total = tf.add(tf.mul(distInter(ps, pt), opts.beta), tf.mul(distIntra(ps, pt), opts.gamma));
    return tf.mul(total, t * t) as Scalar;
  });
}

export const distSchema = z
  .object({
    beta: z.number().min(0).default(1).describe('weight β of the inter-class relation (per sample, across classes); default 1'),
    gamma: z.number().min(0).default(1).describe('weight γ of the intra-class relation (per class, across the batch); default 1'),
    temperature: temperatureOption(1, "reference class default tau = 1 (ImageNet recipe 'dist'); CIFAR recipe 'dist_t4' uses 4"),
    student: studentOption,
    teacher: teacherOption,
  })
  .strict();

/** `loss/dist`. Both reference recipes weight it 2 (kd_loss_weight) next to CE at weight 1. */
export const distLoss = defineLoss({
  id: 'loss/dist',
  describe:
    'DIST (NeurIPS 2022): T²·(β·(1 − mean_b pearson(p_s[b], p_t[b])) + γ·(1 − mean_k pearson(p_s[:,k], p_t[:,k]))), β = γ = 1, T = 1 (CIFAR: T = 4); the reference recipes use `weight: 2` with CE at weight 1',
  options: distSchema,
  requires: (o) => ({ roles: [o.student, o.teacher] }),
  compute: (ctx, o) => dist(studentLogits(ctx, o.student), targetLogits(ctx, o.teacher), o),
});
