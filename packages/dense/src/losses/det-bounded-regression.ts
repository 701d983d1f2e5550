import { stopGradient } from '@tfkd/kd-core';
import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { asDistances, checkShape, maskTensor, type MaskLike } from './common';

export interface BoundedRegressionOptions {
  /** Margin m. Default 0.01 (HqWei/Distillation-of-Faster-rcnn passes m = 0.01; Chen et al. publish no code). */
  margin: number;
}

/** The regression targets the loss needs: distances [N, L, 4] in the prediction's units, positives [N, L]. */
export interface RegressionTargets {
  distances: MaskLike;
  positive: MaskLike;
}

/**
 * Teacher-bounded regression (Chen et al., NeurIPS 2017): per positive location with
 * e_s = ‖R_s − y‖², e_t = ‖R_t − y‖² (summed over the 4 sides),
 * `L_b = Σ_pos e_s · 1[e_s + m > e_t] / max(N_pos, 1)`: the student pays its L2 error only while it
 * is not better than the teacher's by the margin m. The indicator carries no gradient (`tf.step`),
 * the teacher none at all. Predictions may be distances [N, L, 4] or GFL box logits [N, L, 4, n+1]
 * (then their integral, in strides); targets' distances must be in the same units
 * ({@link encodeDetectionTargets} gives strides).
 */
export function detBoundedRegression(student: Tensor, teacher: Tensor, targets: RegressionTargets, opts: BoundedRegressionOptions): Scalar {
  return tf.tidy(() => {
    const rs = asDistances(student);
    const rt = stopGradient(asDistances(teacher));
    checkShape(rt, rs.shape, 'det-bounded-regression teacher');
    const [n, l] = rs.shape;
    const y = maskTensor(targets.distances, [n, l, 4], 'det-bounded-regression target distances');
    const pos = maskTensor(targets.positive, [n, l], 'det-bounded-regression positives');
    const es = tf.sum(tf.square(tf.sub(rs, y)), -1);
    const et = tf.sum(tf.square(tf.sub(rt, y)), -1);
    const active = tf.step(tf.sub(tf.add(es, opts.margin), et));
    return tf.div(tf.sum(tf.mul(tf.mul(es, active), pos)), tf.maximum(tf.sum(pos), 1)) as Scalar;
  });
}
