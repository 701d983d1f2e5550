import { klRows, logSoftmaxT, stopGradient } from '@tfkd/kd-core';
import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { checkShape, maskTensor, type MaskLike } from './common';

export interface LocalizationOptions {
  /** τ. Default 10 (mmdet `LocalizationDistillationLoss` T=10; its LDHead weight 0.25). */
  temperature: number;
  /** Per-location weights [N, L] (mmdet: the student's detached max class score); default 1. */
  weights?: MaskLike;
}

/**
 * Localization distillation (LD, Zheng et al., CVPR 2022) on the main region — the positive
 * locations of the label assignment. For each positive location and side e ∈ {l, t, r, b}, with
 * p = softmax(z/τ) over the n+1 distance bins:
 * `KL_e = τ² · (1/(n+1)) · Σ_i p_t,i (log p_t,i − log p_s,i)` (mmdet `knowledge_distillation_loss`:
 * `kl_div(…, reduction='none').mean(1) · T²`, i.e. the mean over bins), and
 * `L = Σ_pos w · (1/4) Σ_e KL_e / Σ_pos w`.
 * The reference instead sums w·KL_e over positives and sides and divides by 4 only (a sum, not a
 * mean, over positives); here it is normalised by the positive weight so its scale does not grow
 * with the batch. No positives → 0.
 *
 * @param student box logits [N, L, 4, n+1]
 * @param teacher box logits of the same shape (no gradient)
 * @param region positives [N, L] (the main distillation region)
 */
export function detLocalization(student: Tensor, teacher: Tensor, region: MaskLike, opts: LocalizationOptions): Scalar {
  checkShape(teacher, student.shape, 'det-localization teacher box logits');
  return tf.tidy(() => {
    const [n, l, four, bins] = student.shape;
    const t = opts.temperature;
    const rows = n * l * four;
    const kl = klRows(logSoftmaxT(tf.reshape(stopGradient(teacher), [rows, bins]), t), logSoftmaxT(tf.reshape(student, [rows, bins]), t));
    const perLoc = tf.mul(tf.mean(tf.reshape(kl, [n, l, four]), -1), (t * t) / bins);
    let w = maskTensor(region, [n, l], 'det-localization region');
    if (opts.weights !== undefined) w = tf.mul(w, maskTensor(opts.weights, [n, l], 'det-localization weights'));
    const den = tf.sum(w);
    return tf.div(tf.sum(tf.mul(perLoc, w)), tf.maximum(den, 1e-12)) as Scalar; // no comparison op: weights may sit on the tape
  });
}
