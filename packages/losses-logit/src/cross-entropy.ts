import { crossEntropy, defineLoss, labelTargets, studentOption } from '@tfkd/kd-core';
import { z } from 'zod';
import { studentLogits } from './common';

// The pure function is kd-core's (DML, ONE, Tf-KD, born-again and BYOT use the same one).
export { crossEntropy, type CrossEntropyOptions } from '@tfkd/kd-core';

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
  return defineLoss({
    id,
    describe,
    options: ceSchema(defaultEps),
    requires: (o) => ({ roles: [o.student] }),
    compute: (ctx, o) => crossEntropy(studentLogits(ctx, o.student), labelTargets(ctx.batch), { labelSmoothing: o.labelSmoothing }),
  });
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
