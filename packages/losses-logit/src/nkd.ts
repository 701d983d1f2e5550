import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { defineLoss, oneHotFloat, studentOption, targetLogits, teacherOption, temperatureOption, type Batch } from '@tfkd/kd-core';
import { z } from 'zod';
import { assertLogitPair, studentLogits } from './common';

export interface NkdOptions {
  /** Temperature of the non-target term only (the target term is at T = 1). */
  temperature: number;
  /** Weight γ of the non-target term. */
  gamma: number;
}

/**
 * The logits of every class but the label's, in class order: `[B, K]` → `[B, K − 1]` (the
 * reference's boolean mask `logit[mask].reshape(N, −1)`). Column j of row b is class
 * j + [j ≥ y_b]; one flat gather, whose gradient scatters back to the same entries.
 */
export function nonTargetLogits(z: Tensor, y: Tensor): Tensor {
  return tf.tidy(() => {
    const [b, k] = z.shape as [number, number];
    const cols = tf.reshape(tf.range(0, k - 1, 1, 'int32'), [1, k - 1]);
    const labels = tf.reshape(tf.cast(y, 'int32'), [b, 1]);
    const cls = tf.add(cols, tf.cast(tf.greaterEqual(cols, labels), 'int32'));
    const flat = tf.add(cls, tf.reshape(tf.range(0, b * k, k, 'int32'), [b, 1]));
    return tf.reshape(tf.gather(tf.reshape(z, [b * k]), tf.reshape(flat, [b * (k - 1)])), [b, k - 1]);
  });
}

/**
 * The two terms of NKD, from logits `[B, K]` and integer labels `[B]`, as the reference's
 * `NKDLoss.forward`:
 * - `target` = −mean_b p_t[y] · log p_s[y], both at T = 1 (p_t[y] carries no gradient: the teacher
 *   side never does here), no γ;
 * - `nonTarget` = −γ · T² · mean_b Σ_{j≠y} softmax(z_t,nt / T)_j · log softmax(z_s,nt / T)_j, z_nt the
 *   logits without the target column (`nonTargetLogits`), so both renormalise over the K − 1 others.
 */
export function nkdParts(zs: Tensor, zt: Tensor, y: Tensor, opts: NkdOptions): { target: Scalar; nonTarget: Scalar } {
  assertLogitPair(zs, zt, 'nkd');
  const t = opts.temperature;
  return tf.tidy(() => {
    const gt = oneHotFloat(y, zs.shape[1] as number);
    const logPsTarget = tf.sum(tf.mul(tf.logSoftmax(zs), gt), 1);
    const ptTarget = tf.sum(tf.mul(tf.softmax(zt), gt), 1);
    const target = tf.neg(tf.mean(tf.mul(ptTarget, logPsTarget))) as Scalar;
    const s = tf.logSoftmax(tf.div(nonTargetLogits(zs, y), t));
    const q = tf.softmax(tf.div(nonTargetLogits(zt, y), t));
    const cross = tf.mean(tf.sum(tf.mul(q, s), 1));
    const nonTarget = tf.mul(cross, -opts.gamma * t * t) as Scalar;
    return { target, nonTarget };
  });
}

/** Normalized KD (Yang et al., ICCV 2023): `target + nonTarget` of `nkdParts`. */
export function nkd(zs: Tensor, zt: Tensor, y: Tensor, opts: NkdOptions): Scalar {
  return tf.tidy(() => {
    const { target, nonTarget } = nkdParts(zs, zt, y, opts);
    return tf.add(target, nonTarget) as Scalar;
  });
}

/**
 * The labels NKD uses: the batch's integer labels, or — when a mixing augmentation set soft targets —
 * the argmax of each row of those, as the reference does with score labels (`torch.max(gt_label, 1)`).
 */
export function nkdLabels(batch: Pick<Batch, 'y' | 'targets'>): Tensor {
  return batch.targets ? tf.argMax(batch.targets, 1) : batch.y;
}

export const nkdSchema = z
  .object({
    temperature: temperatureOption(1, "the reference's NKDLoss default and ImageNet configs (temp=1.0); its CIFAR-100 config uses 3"),
    gamma: z
      .number()
      .min(0)
      .default(1.5)
      .describe("weight γ of the non-target term; default 1.5: the reference's NKDLoss default and ImageNet configs (CIFAR-100 config: 3.5)"),
    student: studentOption,
    teacher: teacherOption,
  })
  .strict();

/** `loss/nkd`. The reference adds it at weight 1 to the student's CE (weight 1). */
export const nkdLoss = defineLoss({
  id: 'loss/nkd',
  describe:
    'Normalized KD (ICCV 2023): −mean_b p_t[y]·log p_s[y] (T = 1) − γ·T²·mean_b Σ_{j≠y} softmax(z_t,nt/T)_j·log softmax(z_s,nt/T)_j over the K − 1 non-target classes; T = 1, γ = 1.5 (cls_KD ImageNet; CIFAR-100: T = 3, γ = 3.5); stack with loss/cross-entropy at weight 1',
  options: nkdSchema,
  requires: (o) => ({ roles: [o.student, o.teacher] }),
  compute: (ctx, o) => nkd(studentLogits(ctx, o.student), targetLogits(ctx, o.teacher), nkdLabels(ctx.batch), o),
});
