import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { defineLoss, studentOption, targetLogits, teacherOption } from '@tfkd/kd-core';
import { z } from 'zod';
import { assertLogitPair, studentLogits } from './common';

/** Logit regression (Ba & Caruana 2014): mean((z_s − z_t)²) over the batch and the classes. */
export function logitMse(zs: Tensor, zt: Tensor): Scalar {
  assertLogitPair(zs, zt, 'logit-mse');
  return tf.tidy(() => tf.mean(tf.squaredDifference(zs, zt)) as Scalar);
}

export const logitMseSchema = z
  .object({
    student: studentOption,
    teacher: teacherOption,
  })
  .strict();

/** `loss/logit-mse`. */
export const logitMseLoss = defineLoss({
  id: 'loss/logit-mse',
  describe: 'logit regression (Ba & Caruana 2014): mean over batch and classes of (z_s − z_t)², no temperature',
  options: logitMseSchema,
  requires: (o) => ({ roles: [o.student, o.teacher] }),
  compute: (ctx, o) => logitMse(studentLogits(ctx, o.student), targetLogits(ctx, o.teacher)),
});
