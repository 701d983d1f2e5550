import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor, Tensor1D } from '@tensorflow/tfjs-core';
import { defineLoss, klRows, studentOption, targetLogits, teacherOption } from '@tfkd/kd-core';
import { z } from 'zod';
import { assertLogitPair, studentLogits } from './common';

export interface TtmOptions {
  /** Exponent γ of the power transform (the reference's `--ttm_l`); γ = 1/T. */
  gamma: number;
}

/**
 * The parts of transformed teacher matching per sample, from logits `[B, K]`:
 * - `kl[b]` = KL(p̃_t ‖ softmax(z_s)), p̃_t = softmax(z_t)^γ / Σ_k softmax(z_t)^γ — the student is not
 *   tempered;
 * - `powerSum[b]` = Σ_k softmax(z_t)_k^γ, WTTM's sample weight.
 *
 * Taken in log space: p̃_t = softmax(γ·z_t) exactly, and log Σ_k p_k^γ = lse(γ·z_t) − γ·lse(z_t); the
 * same numbers as the reference's `pow(softmax(y_t), l)`, without its underflow to 0 for classes
 * whose softmax is below float32's range.
 */
export function ttmParts(zs: Tensor, zt: Tensor, opts: TtmOptions): { kl: Tensor1D; powerSum: Tensor1D } {
  assertLogitPair(zs, zt, 'ttm');
  const g = opts.gamma;
  return tf.tidy(() => {
    const scaled = tf.mul(zt, g);
    const logPowerSum = tf.sub(tf.logSumExp(scaled, 1), tf.mul(tf.logSumExp(zt, 1), g));
    return {
      kl: klRows(tf.logSoftmax(scaled), tf.logSoftmax(zs)),
      powerSum: tf.exp(logPowerSum) as Tensor1D,
    };
  });
}

/** TTM (Zheng & Yang, ICLR 2024), as the reference's `TTM.forward`: mean_b KL(p̃_t ‖ softmax(z_s)); no T². */
export function ttm(zs: Tensor, zt: Tensor, opts: TtmOptions): Scalar {
  return tf.tidy(() => tf.mean(ttmParts(zs, zt, opts).kl) as Scalar);
}

/**
 * Weighted TTM, as the reference's `WTTM.forward`: mean_b w_b · KL(p̃_t ‖ softmax(z_s)), with
 * w_b = Σ_k softmax(z_t)_bk^γ, the raw power sum (no normalisation over the batch).
 */
export function wttm(zs: Tensor, zt: Tensor, opts: TtmOptions): Scalar {
  return tf.tidy(() => {
    const { kl, powerSum } = ttmParts(zs, zt, opts);
    return tf.mean(tf.mul(powerSum, kl)) as Scalar;
  });
}

function powerTransformSchema(defaultNote: string) {
  return z
    .object({
      gamma: z
        .number()
        .positive()
        .default(0.1)
        .describe(
          `exponent γ of the teacher's power transform softmax(z_t)^γ (reference --ttm_l, whose argparse default 1 is plain KL at T = 1; γ = 1/T, below 1 softens); default 0.1, ${defaultNote}`,
        ),
      student: studentOption,
      teacher: teacherOption,
    })
    .strict();
}

export const ttmSchema = powerTransformSchema("the reference README's TTM run (weight 45, CE at weight 1)");
export const wttmSchema = powerTransformSchema("as loss/ttm (the reference README's WTTM run, stacked with CRD, uses γ = 0.2 at weight 4)");

/** `loss/ttm`. The reference README's run: CE at weight 1 (-r 1), TTM at weight 45 (-b 45), γ = 0.1. */
export const ttmLoss = defineLoss({
  id: 'loss/ttm',
  describe:
    'Transformed teacher matching (ICLR 2024): mean_b KL(softmax(z_t)^γ/Σ softmax(z_t)^γ ‖ softmax(z_s)), student untempered, no T²; γ = 0.1 (= 1/T); the reference README runs it at `weight: 45` with loss/cross-entropy at weight 1',
  options: ttmSchema,
  requires: (o) => ({ roles: [o.student, o.teacher] }),
  compute: (ctx, o) => ttm(studentLogits(ctx, o.student), targetLogits(ctx, o.teacher), o),
});

/** `loss/wttm`. Weighted by each sample's power sum Σ_k p_t,k^γ: 1 for a one-hot teacher, K^(1−γ) for a uniform one. */
export const wttmLoss = defineLoss({
  id: 'loss/wttm',
  describe:
    'Weighted TTM (ICLR 2024): mean_b (Σ_k p_t,bk^γ) · KL(p̃_t ‖ softmax(z_s)), p̃_t = p_t^γ renormalised, student untempered, no T²; γ = 0.1; stack with loss/cross-entropy at weight 1',
  options: wttmSchema,
  requires: (o) => ({ roles: [o.student, o.teacher] }),
  compute: (ctx, o) => wttm(studentLogits(ctx, o.student), targetLogits(ctx, o.teacher), o),
});
