import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { defineLoss } from '@tfkd/kd-core';
import { z } from 'zod';
import { pairTaps, pairsOption, readTap } from './common';
import { flatten2d, l2Normalize, sumScalars } from './ops';

/** Row-normalised batch similarity G = l2normalize_rows(F Fᵀ), F = flatten(f): [B, B]. */
export function similarityMatrix(f: Tensor): tf.Tensor2D {
  return tf.tidy(() => {
    const x = flatten2d(f);
    return l2Normalize(tf.matMul(x, x, false, true), 1) as tf.Tensor2D;
  });
}

/** SP for one pair (RepDistiller `Similarity.similarity_loss`): ‖G_s − G_t‖²_F / B². */
export function similarityLoss(fs: Tensor, ft: Tensor): Scalar {
  return tf.tidy(() => {
    const b = fs.shape[0] as number;
    return tf.div(tf.sum(tf.squaredDifference(similarityMatrix(fs), similarityMatrix(ft))), b * b) as Scalar;
  });
}

export const similaritySchema = z.object({ pairs: pairsOption('[[student.block2, teacher.block3]]') }).strict();

/** `loss/sp`. Any tap ranks; the student and teacher feature sizes may differ (only B×B matrices are compared). */
export const similarityLossDef = defineLoss({
  id: 'loss/sp',
  describe:
    'Similarity-preserving KD (Tung & Mori 2019): Σ_pairs ‖G_s − G_t‖²_F / B², G = l2normalize_rows(F Fᵀ), F = flatten(f); any tap shapes; recommended weight 3000 (RepDistiller -b 3000, last block)',
  options: similaritySchema,
  requires: (o) => ({ taps: pairTaps(o.pairs) }),
  compute: (ctx, o) => sumScalars(o.pairs.map(([s, t]) => similarityLoss(readTap(ctx, s, false), readTap(ctx, t, true)))),
});
