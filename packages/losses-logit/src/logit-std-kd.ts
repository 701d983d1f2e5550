import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { KdError, defineLoss, studentOption, targetLogits, teacherOption, temperatureOption } from '@tfkd/kd-core';
import { z } from 'zod';
import { assertLogitPair, studentLogits } from './common';
import { hintonKd, type TemperatureOptions } from './hinton-kd';

/** The reference's epsilon, added to the standard deviation (outside the square root). */
export const LOGIT_STD_EPS = 1e-7;
/**
 * Floor under each row's variance before the square root. A row of equal logits (variance 0) would
 * otherwise give sqrt'(0) = ∞ and a NaN gradient (torch's `std` backward is 0/0 = NaN there too);
 * with the floor the std path of that row's gradient is 0 and its z-scores are 0, as in the
 * reference's forward. The floor changes the std by at most 1e-12, far below LOGIT_STD_EPS.
 */
const VAR_FLOOR = 1e-24;

/**
 * Logit standardisation, per row of `[B, K]` logits: (z − mean z) / (1e-7 + std z), with torch's
 * default **unbiased** std (divided by K − 1) and the epsilon outside the square root — the
 * reference's `normalize`. The gradient flows through the row's mean and std.
 */
export function zScoreLogits(z: Tensor): Tensor {
  const k = z.shape[z.rank - 1] as number;
  if (k < 2) {
    throw new KdError('KD_SHAPE_MISMATCH', `logit-std-kd: the unbiased standard deviation needs at least 2 classes, got logits of shape [${z.shape}]`, {
      fix: 'use a model with at least two outputs (classes)',
    });
  }
  return tf.tidy(() => {
    const centred = tf.sub(z, tf.mean(z, -1, true));
    const variance = tf.div(tf.sum(tf.square(centred), -1, true), k - 1);
    return tf.div(centred, tf.add(tf.sqrt(tf.maximum(variance, VAR_FLOOR)), LOGIT_STD_EPS));
  });
}

/**
 * Logit-standardised KD (Sun et al., CVPR 2024), as the reference's `kd_loss(..., logit_stand=True)`:
 * T² · mean_b KL(softmax(ẑ_t / T) ‖ softmax(ẑ_s / T)), ẑ = `zScoreLogits(z)` for both the teacher and
 * the student. Invariant to a positive scale and any shift of each sample's logits.
 */
export function logitStdKd(zs: Tensor, zt: Tensor, opts: TemperatureOptions): Scalar {
  assertLogitPair(zs, zt, 'logit-std-kd');
  return tf.tidy(() => hintonKd(zScoreLogits(zs), zScoreLogits(zt), opts));
}

export const logitStdKdSchema = z
  .object({
    temperature: temperatureOption(2, "the reference's base temperature (mdistiller CFG.KD.TEMPERATURE = 2, README --base-temp 2)"),
    student: studentOption,
    teacher: teacherOption,
  })
  .strict();

/** `loss/logit-std-kd`. The reference recipe: this at weight 9 stacked with `loss/cross-entropy` at weight 0.1. */
export const logitStdKdLoss = defineLoss({
  id: 'loss/logit-std-kd',
  describe:
    'Logit-standardised KD (CVPR 2024): z-score each sample’s logits, (z − mean)/(1e-7 + unbiased std), teacher and student, then T²·KL(softmax(ẑ_t/T) ‖ softmax(ẑ_s/T)); T = 2; the reference recipe uses `weight: 9` with loss/cross-entropy at weight 0.1',
  options: logitStdKdSchema,
  requires: (o) => ({ roles: [o.student, o.teacher] }),
  compute: (ctx, o) => logitStdKd(studentLogits(ctx, o.student), targetLogits(ctx, o.teacher), o),
});
