import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { Adapter } from './adapters';
import { defineFeatureLoss, pairsOption, readTap } from './common';
import { flatten2d, l2Normalize, sumScalars } from './ops';

/** Mean over rows of −log softmax(logits)_ii (the positive is on the diagonal). */
function diagonalCe(logits: tf.Tensor2D): Scalar {
  const b = logits.shape[0];
  return tf.neg(tf.mean(tf.sum(tf.mul(tf.logSoftmax(logits), tf.eye(b)), 1))) as Scalar;
}

/**
 * CRD with in-batch negatives, for one pair of l2-normalised embeddings z_s, z_t [B, d]:
 * L = CE(z_s z_tᵀ/τ, diag) + CE(z_t z_sᵀ/τ, diag) — the two symmetric parts of CRD (teacher
 * anchor / student anchor), each an InfoNCE over the B − 1 other samples of the batch instead of
 * RepDistiller's NCE over 16384 memory-bank negatives.
 */
export function crdInBatch(zs: Tensor, zt: Tensor, temperature = 0.07): Scalar {
  return tf.tidy(() => {
    const logits = tf.div(tf.matMul(zs as tf.Tensor2D, zt as tf.Tensor2D, false, true), temperature) as tf.Tensor2D;
    return tf.add(diagonalCe(logits), diagonalCe(tf.transpose(logits) as tf.Tensor2D)) as Scalar;
  });
}

export const crdSchema = z
  .object({
    pairs: pairsOption('[[student.embedding, teacher.embedding]]'),
    dim: z.number().int().positive().default(128).describe('embedding size of both linear heads; default 128 (RepDistiller --feat_dim)'),
    temperature: z.number().positive().default(0.07).describe('τ; default 0.07 (RepDistiller --nce_t)'),
    memory: z
      .literal(false)
      .default(false)
      .describe('momentum memory bank of negatives (RepDistiller: 16384, momentum 0.5): not implemented, negatives are the other samples of the batch'),
  })
  .strict();

/** `loss/crd`: trainable linear heads (student and teacher side), l2-normalised, in-batch InfoNCE. */
export const crdLoss = defineFeatureLoss({
  id: 'loss/crd',
  describe:
    'Contrastive representation distillation (Tian et al. 2020), in-batch negatives: CE(z_s z_tᵀ/τ, diag) + CE(z_t z_sᵀ/τ, diag), z = l2normalize(linear head(flatten(f))) to 128-d, τ = 0.07; no memory bank; suggested weight 0.8 (RepDistiller -b 0.8, whose NCE loss has another scale)',
  options: crdSchema,
  taps: (o) => o.pairs.flat(),
  create(o, deps) {
    const size = (tap: string) => deps.tapShape(tap).reduce((a, b) => a * b, 1);
    const heads = o.pairs.map(([s, t], i) => [
      new Adapter({ kind: 'dense', inUnits: size(s), outUnits: o.dim }, deps.rng.fork(2 * i), false, `${deps.name}_s${i}`),
      new Adapter({ kind: 'dense', inUnits: size(t), outUnits: o.dim }, deps.rng.fork(2 * i + 1), false, `${deps.name}_t${i}`),
    ]);
    const embed = (head: Adapter, f: Tensor) => l2Normalize(head.apply(flatten2d(f)), 1);
    return {
      variables: heads.flat().flatMap((h) => h.variables),
      compute: (ctx) =>
        sumScalars(
          o.pairs.map(([s, t], i) => crdInBatch(embed(heads[i][0], readTap(ctx, s, false)), embed(heads[i][1], readTap(ctx, t, true)), o.temperature)),
        ),
    };
  },
});
