import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { defineLoss, logSoftmaxT, softmaxT, studentOption, targetLogits, teacherOption, temperatureOption } from '@tfkd/kd-core';
import { z } from 'zod';
import { assertLogitPair, studentLogits } from './common';
import type { TemperatureOptions } from './hinton-kd';

/**
 * Cross-entropy with the teacher's soft targets: −T² · mean_b Σ_k p_t^T log p_s^T. Equals
 * `hintonKd` plus T² times the teacher's mean entropy (a constant in the student), so the gradient is
 * the same; only the logged value differs.
 */
export function softTargetCe(zs: Tensor, zt: Tensor, opts: TemperatureOptions): Scalar {
  assertLogitPair(zs, zt, 'soft-target-ce');
  const t = opts.temperature;
  return tf.tidy(() => {
    const cross = tf.sum(tf.mul(softmaxT(zt, t), logSoftmaxT(zs, t)), 1);
    return tf.mul(tf.neg(tf.mean(cross)), t * t) as Scalar;
  });
}

export const softTargetCeSchema = z
  .object({
    temperature: temperatureOption(4, 'as Hinton KD'),
    student: studentOption,
    teacher: teacherOption,
  })
  .strict();

/** `loss/soft-target-ce`. */
export const softTargetCeLoss = defineLoss({
  id: 'loss/soft-target-ce',
  describe: "soft-target cross-entropy: −T²·mean_b Σ_k softmax(z_t/T)·log softmax(z_s/T), T = 4 (Hinton KD plus the teacher's entropy)",
  options: softTargetCeSchema,
  requires: (o) => ({ roles: [o.student, o.teacher] }),
  compute: (ctx, o) => softTargetCe(studentLogits(ctx, o.student), targetLogits(ctx, o.teacher), o),
});
