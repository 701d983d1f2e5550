import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { defineLoss, klBatchMean, logSoftmaxT, studentOption, targetLogits, teacherOption, temperatureOption } from '@tfkd/kd-core';
import { z } from 'zod';
import { assertLogitPair, studentLogits } from './common';

export interface TemperatureOptions {
  temperature: number;
}

/**
 * Hinton et al. (2015): T² · KL(p_t^T ‖ p_s^T), KL summed over classes and averaged over the batch
 * (PyTorch `kl_div(..., reduction='batchmean')`), p^T = softmax(z / T). The T² keeps the gradient's
 * scale independent of T. RepDistiller `DistillKL`. KL through kd-core's `klBatchMean`, which is
 * safe on the gradient tape when the target is a stopped peer student (no comparison ops).
 */
export function hintonKd(zs: Tensor, zt: Tensor, opts: TemperatureOptions): Scalar {
  assertLogitPair(zs, zt, 'hinton-kd');
  const t = opts.temperature;
  return tf.tidy(() => tf.mul(klBatchMean(logSoftmaxT(zt, t), logSoftmaxT(zs, t)), t * t) as Scalar);
}

export const hintonKdSchema = z
  .object({
    temperature: temperatureOption(4, 'RepDistiller DistillKL / mdistiller CFG.KD.TEMPERATURE'),
    student: studentOption,
    teacher: teacherOption,
  })
  .strict();

/** `loss/hinton-kd`. Classic KD = this at weight α stacked with `loss/cross-entropy` at weight 1 − α. */
export const hintonKdLoss = defineLoss({
  id: 'loss/hinton-kd',
  describe:
    'Hinton KD: T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)), batch mean, T = 4 (RepDistiller DistillKL); stack with loss/cross-entropy, e.g. weights 0.1 / 0.9 as mdistiller',
  options: hintonKdSchema,
  requires: (o) => ({ roles: [o.student, o.teacher] }),
  compute: (ctx, o) => hintonKd(studentLogits(ctx, o.student), targetLogits(ctx, o.teacher), o),
});
