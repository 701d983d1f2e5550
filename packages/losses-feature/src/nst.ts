import * as tf from '@tensorflow/tfjs-core';
import type { Scalar } from '@tensorflow/tfjs-core';
import { defineLoss } from '@tfkd/kd-core';
import { z } from 'zod';
import { pairMismatch, pairTaps, pairsOption, readTap, requireRank, type TapPair } from './common';
import { l2Normalize, poolToSmaller, spatiallyOrdered, sumScalars } from './ops';

/** NHWC [B, H, W, C] → channels as samples [B, C, H·W], each l2-normalised over H·W. */
export function channelSamples(f: tf.Tensor4D): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, h, w, c] = f.shape;
    return l2Normalize(tf.transpose(tf.reshape(f, [b, h * w, c]), [0, 2, 1]), 2) as tf.Tensor3D;
  });
}

/** Polynomial kernel k(x, y) = (xᵀy)² between every pair of rows: [B, N, D] × [B, M, D] → [B, N, M]. */
export function polyKernel(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  return tf.tidy(() => tf.square(tf.matMul(a, b, false, true)) as tf.Tensor3D);
}

/**
 * NST for one pair (RepDistiller `NSTLoss.nst_loss`, full_loss): squared MMD with k(x,y) = (xᵀy)²,
 * mean K(s,s) + mean K(t,t) − 2 mean K(s,t), means over B·C·C' entries. Maps of different spatial
 * size: the larger is adaptive-average-pooled to the smaller (RepDistiller).
 */
export function nstLoss(fs: tf.Tensor4D, ft: tf.Tensor4D): Scalar {
  return tf.tidy(() => {
    const [a, b] = poolToSmaller(fs, ft);
    const s = channelSamples(a);
    const t = channelSamples(b);
    const kss = tf.mean(polyKernel(s, s));
    const ktt = tf.mean(polyKernel(t, t));
    const kst = tf.mean(polyKernel(s, t));
    return tf.sub(tf.add(kss, ktt), tf.mul(kst, 2)) as Scalar;
  });
}

export const nstSchema = z.object({ pairs: pairsOption('[[student.block2, teacher.block2]]') }).strict();

/** `loss/nst`. */
export const nstLossDef = defineLoss({
  id: 'loss/nst',
  describe:
    'Neuron selectivity transfer (Huang & Wang 2017): Σ_pairs MMD² between the channels of f_s and f_t (each channel an l2-normalised H·W vector), polynomial kernel (xᵀy)²; NHWC taps; recommended weight 50 (RepDistiller -b 50)',
  options: nstSchema,
  requires: (o) => ({ taps: pairTaps(o.pairs) }),
  setup(o, deps) {
    o.pairs.forEach((pair, i) => {
      const ss = requireRank(deps, `pairs[${i}][0]`, pair[0], [4], 'an NHWC feature map [H, W, C]');
      const ts = requireRank(deps, `pairs[${i}][1]`, pair[1], [4], 'an NHWC feature map [H, W, C]');
      if (!spatiallyOrdered(ss, ts)) {
        throw pairMismatch(deps, `pairs[${i}]`, pair as TapPair, 'cannot be pooled to one spatial size', (a, b) => b.length === 3 && spatiallyOrdered(a, b), o.pairs.flat());
      }
    });
    return {};
  },
  compute: (ctx, o) => sumScalars(o.pairs.map(([s, t]) => nstLoss(readTap(ctx, s, false) as tf.Tensor4D, readTap(ctx, t, true) as tf.Tensor4D))),
});
