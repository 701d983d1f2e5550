import { klRows, logSoftmaxT, stopGradient } from '@tfkd/kd-core';
import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { checkShape } from './common';

export interface PixelKdOptions {
  /** T. Default 1 (the reference has no temperature). */
  temperature: number;
}

/**
 * Pixel-wise distillation (Liu et al., CVPR 2019, "Structured Knowledge Distillation for Semantic
 * Segmentation"): `L = T² · mean_{n,h,w} KL(softmax(z_t/T) ‖ softmax(z_s/T))` over the class axis.
 * The reference (irfanICMLL/structure_knowledge_distillation `utils/criterion.py`
 * `CriterionPixelWise`) computes the soft cross-entropy `Σ_{n,h,w} −p_t·log p_s / (W·H)` at T = 1:
 * the same gradient (the teacher's entropy is a constant) but summed over the batch, so its
 * λ_pi = 10 at batch 8 is about 80 here.
 *
 * @param student logits [N, H, W, C]; teacher logits of the same shape (no gradient)
 */
export function segPixelKd(student: Tensor, teacher: Tensor, opts: PixelKdOptions): Scalar {
  checkShape(teacher, student.shape, 'seg-pixel-kd teacher logits');
  const t = opts.temperature;
  return tf.tidy(() => {
    const c = student.shape[student.shape.length - 1];
    const rows = student.size / c;
    const kl = klRows(logSoftmaxT(tf.reshape(stopGradient(teacher), [rows, c]), t), logSoftmaxT(tf.reshape(student, [rows, c]), t));
    return tf.mul(tf.mean(kl), t * t) as Scalar;
  });
}
