import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { defineLoss, oneHotFloat } from '@tfkd/kd-core';
import { z } from 'zod';
import { batchLabels, studentLogits, studentOption, withRoleCheck } from './common';

export interface CrossEntropyOptions {
  /** ε in [0, 1): target (1 − ε)·onehot + ε/K. Default 0. */
  labelSmoothing?: number;
}

/**
 * Softmax cross-entropy of logits `z` [B, K] against integer labels `y` [B], mean over the batch,
 * with optional label smoothing: target = (1 − ε)·onehot(y) + ε/K (ε/K to every class, the true one
 * included) — the same as torch `F.cross_entropy(z, y, label_smoothing=ε)`.
 */
export function crossEntropy(z: Tensor, y: Tensor, opts: CrossEntropyOptions = {}): Scalar {
  const eps = opts.labelSmoothing ?? 0;
  return tf.tidy(() => {
    const k = z.shape[z.rank - 1] as number;
    const onehot = oneHotFloat(y, k);
    const target = eps === 0 ? onehot : tf.add(tf.mul(onehot, 1 - eps), eps / k);
    const picked = tf.sum(tf.mul(target, tf.logSoftmax(z)), -1);
    return tf.neg(tf.mean(picked)) as Scalar;
  });
}

function ceSchema(defaultEps: number) {
  return z
    .object({
      labelSmoothing: z
        .number()
        .min(0)
        .max(1)
        .default(defaultEps)
        .describe(`label smoothing ε: target (1 − ε)·onehot + ε/K, as torch cross_entropy(label_smoothing=ε); default ${defaultEps}`),
      student: studentOption,
    })
    .strict();
}

function ceLoss(id: string, defaultEps: number, describe: string) {
  const schema = ceSchema(defaultEps);
  return withRoleCheck(
    defineLoss({
      id,
      describe,
      options: schema,
      requires: (o) => ({ roles: [o.student] }),
      compute: (ctx, o) => crossEntropy(studentLogits(ctx, o.student), batchLabels(ctx), { labelSmoothing: o.labelSmoothing }),
    }),
    (o) => ({ student: o.student }),
  );
}

/** `loss/cross-entropy`: CE with the labels (the engine also trains teachers with it). */
export const crossEntropyLoss = ceLoss(
  'loss/cross-entropy',
  0,
  'softmax cross-entropy with the labels, mean over the batch; optional label smoothing ε (default 0)',
);

/** `loss/label-smoothing`: the same loss with ε = 0.1 by default (LSR, Szegedy et al. 2016). */
export const labelSmoothingLoss = ceLoss(
  'loss/label-smoothing',
  0.1,
  'label smoothing regularisation (LSR, Szegedy et al. 2016): CE against (1 − ε)·onehot + ε/K, ε = 0.1',
);
