import * as tf from '@tensorflow/tfjs-core';
import type { Scalar } from '@tensorflow/tfjs-core';
import { defineLoss } from '@tfkd/kd-core';
import { z } from 'zod';
import { pairMismatch, pairTaps, pairsOption, readTap, requireRank, type TapPair } from './common';
import { flatten2d, l2Normalize, poolToSmaller, spatiallyOrdered, sumScalars } from './ops';

export interface AttentionOptions {
  p: number;
  /** How maps of different spatial size are matched (see README). */
  spatial: 'pool' | 'bilinear';
}

/** mean_c f^p of an NHWC map → [B, H, W] (|f|^p for p ≠ 2, as in Zagoruyko & Komodakis). */
export function attentionMap(f: tf.Tensor4D, p = 2): tf.Tensor3D {
  return tf.tidy(() => tf.mean(p === 2 ? tf.square(f) : tf.pow(tf.abs(f), p), 3) as tf.Tensor3D);
}

/** a(f) = l2normalize(flatten(mean_c f^p)) → [B, H·W]. */
export function attentionVector(f: tf.Tensor4D, p = 2): tf.Tensor2D {
  return tf.tidy(() => l2Normalize(flatten2d(attentionMap(f, p)), 1) as tf.Tensor2D);
}

/**
 * AT for one pair: mean((a(f_s) − a(f_t))²) over B·H·W (RepDistiller `Attention.at_loss`).
 * `pool`: the larger feature map is adaptive-average-pooled to the smaller one first (RepDistiller);
 * `bilinear`: the student's attention map is resized bilinearly to the teacher's size.
 */
export function attentionLoss(fs: tf.Tensor4D, ft: tf.Tensor4D, opts: AttentionOptions = { p: 2, spatial: 'pool' }): Scalar {
  return tf.tidy(() => {
    if (opts.spatial === 'bilinear') {
      const [h, w] = [ft.shape[1], ft.shape[2]];
      let as = attentionMap(fs, opts.p);
      if (as.shape[1] !== h || as.shape[2] !== w) {
        as = tf.squeeze(tf.image.resizeBilinear(tf.expandDims(as, 3) as tf.Tensor4D, [h, w]), [3]) as tf.Tensor3D;
      }
      const vs = l2Normalize(flatten2d(as), 1);
      return tf.mean(tf.squaredDifference(vs, attentionVector(ft, opts.p))) as Scalar;
    }
    const [a, b] = poolToSmaller(fs, ft);
    return tf.mean(tf.squaredDifference(attentionVector(a, opts.p), attentionVector(b, opts.p))) as Scalar;
  });
}

export const attentionSchema = z
  .object({
    pairs: pairsOption('[[student.block2, teacher.block2]]'),
    p: z.number().positive().default(2).describe('exponent p of mean_c f^p; default 2 (RepDistiller Attention(p=2))'),
    spatial: z
      .enum(['pool', 'bilinear'])
      .default('pool')
      .describe("maps of different H×W: 'pool' adaptive-average-pools the larger feature map (RepDistiller), 'bilinear' resizes the student attention map to the teacher's"),
  })
  .strict();

/** `loss/attention`. */
export const attentionLossDef = defineLoss({
  id: 'loss/attention',
  describe:
    'Attention transfer (Zagoruyko & Komodakis 2017): Σ_pairs mean((a(f_s) − a(f_t))²), a(f) = l2normalize(flatten(mean_c f^p)), p = 2; NHWC taps; recommended weight 1000 (RepDistiller -b 1000)',
  options: attentionSchema,
  requires: (o) => ({ taps: pairTaps(o.pairs) }),
  setup(o, deps) {
    const declared = o.pairs.flat();
    o.pairs.forEach((pair, i) => {
      const ss = requireRank(deps, `pairs[${i}][0]`, pair[0], [4], 'an NHWC feature map [H, W, C]');
      const ts = requireRank(deps, `pairs[${i}][1]`, pair[1], [4], 'an NHWC feature map [H, W, C]');
      if (o.spatial === 'pool' && !spatiallyOrdered(ss, ts)) {
        throw pairMismatch(deps, `pairs[${i}]`, pair as TapPair, 'cannot be pooled to one spatial size (one is taller, the other wider)', (a, b) => b.length === 3 && spatiallyOrdered(a, b), declared);
      }
    });
    return {};
  },
  compute: (ctx, o) =>
    sumScalars(o.pairs.map(([s, t]) => attentionLoss(readTap(ctx, s, false) as tf.Tensor4D, readTap(ctx, t, true) as tf.Tensor4D, o))),
});
