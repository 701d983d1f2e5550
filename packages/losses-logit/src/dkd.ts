import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor, Tensor1D } from '@tensorflow/tfjs-core';
import { defineLoss, klRows, oneHotFloat, studentOption, targetLogits, teacherOption, temperatureOption } from '@tfkd/kd-core';
import { z } from 'zod';
import { assertLogitPair, batchLabels, studentLogits } from './common';

/** What mdistiller subtracts from the target entry of z/T to leave it out of the NCKD softmax. */
export const DKD_MASK = 1000;

export interface DkdOptions {
  /** Weight of TCKD. */
  alpha: number;
  /** Weight of NCKD. */
  beta: number;
  temperature: number;
}

/**
 * The two parts of DKD per sample, without T² and weights, from logits `[B, K]` and labels `[B]`:
 * - `tckd[b]` = KL(b_t ‖ b_s), b = (p^T_target, 1 − p^T_target), the binary target/non-target masses;
 * - `nckd[b]` = KL(p̂_t ‖ p̂_s), p̂ = softmax(z/T − 1000·onehot): the softmax over non-target classes.
 * `pTargetTeacher[b]` is the teacher's p^T of the target class (for KD = TCKD + (1 − p_target)·NCKD).
 *
 * The binary masses are taken in log space with log-sum-exp (log p_target = z_y/T − lse(z/T),
 * log p_rest = lse(z/T − 1000·onehot) − lse(z/T)), equal to mdistiller's log of summed softmax
 * probabilities but without −inf when the student's target probability underflows.
 */
export function dkdParts(zs: Tensor, zt: Tensor, y: Tensor, opts: { temperature: number }): { tckd: Tensor1D; nckd: Tensor1D; pTargetTeacher: Tensor1D } {
  assertLogitPair(zs, zt, 'dkd');
  const t = opts.temperature;
  return tf.tidy(() => {
    const gt = oneHotFloat(y, zs.shape[1] as number);
    const mask = tf.mul(gt, DKD_MASK);
    const parts = (z: Tensor) => {
      const scaled = tf.div(z, t);
      const lse = tf.logSumExp(scaled, 1, true);
      const masked = tf.sub(scaled, mask);
      const logTarget = tf.sub(tf.sum(tf.mul(scaled, gt), 1, true), lse);
      const logRest = tf.sub(tf.logSumExp(masked, 1, true), lse);
      return { binary: tf.concat([logTarget, logRest], 1), nonTarget: tf.logSoftmax(masked), logTarget };
    };
    const s = parts(zs);
    const tt = parts(zt);
    return {
      tckd: klRows(tt.binary, s.binary),
      nckd: klRows(tt.nonTarget, s.nonTarget),
      pTargetTeacher: tf.exp(tf.squeeze(tt.logTarget, [1])) as Tensor1D,
    };
  });
}

/**
 * Decoupled KD (Zhao et al., CVPR 2022), as mdistiller's `dkd_loss`:
 * T² · (α · mean_b TCKD + β · mean_b NCKD). The warm-up factor is applied by the plugin.
 */
export function dkd(zs: Tensor, zt: Tensor, y: Tensor, opts: DkdOptions): Scalar {
  return tf.tidy(() => {
    const { tckd, nckd } = dkdParts(zs, zt, y, opts);
    const t2 = opts.temperature * opts.temperature;
    const total = tf.add(tf.mul(tf.mean(tckd), opts.alpha), tf.mul(tf.mean(nckd), opts.beta));
    return tf.mul(total, t2) as Scalar;
  });
}

/** mdistiller's warm-up: min(epoch / warmup, 1), epochs counted from 1; warmup 0 means none. */
export function dkdWarmup(epoch: number, warmup: number): number {
  return warmup <= 0 ? 1 : Math.min(epoch / warmup, 1);
}

export const dkdSchema = z
  .object({
    alpha: z.number().min(0).default(1).describe('weight α of TCKD (target-class KD); default 1 (mdistiller CFG.DKD.ALPHA)'),
    beta: z
      .number()
      .min(0)
      .default(8)
      .describe('weight β of NCKD (non-target-class KD); default 8 (mdistiller CIFAR-100; some pairs use 2 or 6, ImageNet 0.5 or 2)'),
    temperature: temperatureOption(4, 'mdistiller CIFAR-100 (ImageNet: 1)'),
    warmup: z
      .number()
      .int()
      .min(0)
      .default(20)
      .describe('loss multiplied by min(epoch / warmup, 1), epochs from 1; default 20 (mdistiller CIFAR-100; ImageNet: 1); 0 = off'),
    student: studentOption,
    teacher: teacherOption,
  })
  .strict();

/** `loss/dkd`. mdistiller stacks it with CE at weight 1 (CFG.DKD.CE_WEIGHT). */
export const dkdLoss = defineLoss({
  id: 'loss/dkd',
  describe:
    'Decoupled KD (CVPR 2022): min(epoch/warmup, 1)·T²·(α·TCKD + β·NCKD); α = 1, β = 8, T = 4, warmup 20 (mdistiller CIFAR-100); stack with loss/cross-entropy at weight 1',
  options: dkdSchema,
  requires: (o) => ({ roles: [o.student, o.teacher] }),
  compute: (ctx, o) => {
    const value = dkd(studentLogits(ctx, o.student), targetLogits(ctx, o.teacher), batchLabels(ctx), o);
    const factor = dkdWarmup(ctx.epoch, o.warmup);
    return factor === 1 ? value : (tf.mul(value, factor) as Scalar);
  },
});
