import * as tf from '@tensorflow/tfjs-core';
import type { Tensor, Tensor1D } from '@tensorflow/tfjs-core';
import { type Batch, KdError, type ObjectList, type Task } from '@tfkd/kd-core';
import { ENTROPY_FLOOR } from './select';

/**
 * UNIX on the dense tasks (`task: detection` / `segmentation`): the per-image uncertainty that ranks
 * the batch, as the natural extension of classification's predictive entropy H(softmax(z)), and the
 * kept images' targets. Pure functions of tensors; the models' outputs are read by name (`logits`,
 * `cls_*`), so this package needs nothing of the dense package.
 */

/**
 * Segmentation: u_n = mean over pixels of the per-pixel predictive entropy −Σ_k p ln p of
 * softmax(z) over the K classes (ln p floored as `entropyRows` does). `logits` [N, H, W, K] (any
 * number of spatial axes) → [N].
 */
export function segmentationUncertainty(logits: Tensor): Tensor1D {
  if (logits.rank < 3) {
    throw new KdError('KD_SHAPE_MISMATCH', `segmentationUncertainty: logits must be [batch, …pixels, classes], got shape [${logits.shape}]`);
  }
  return tf.tidy(() => {
    const p = tf.softmax(logits);
    const h = tf.neg(tf.sum(tf.mul(p, tf.log(tf.maximum(p, ENTROPY_FLOOR))), -1));
    return tf.mean(h, Array.from({ length: h.rank - 1 }, (_, i) => i + 1)) as Tensor1D;
  });
}

/**
 * Detection, on a class head of per-class sigmoids (no background class): at each location the K
 * scores are K Bernoulli variables, and their joint predictive entropy is the sum of the binary
 * entropies Σ_k h(σ(z_k)), h(p) = −p ln p − (1 − p) ln(1 − p), computed from the logits as
 * σ(z)·softplus(−z) + σ(−z)·softplus(z) (exact, no floor: ln σ(z) = −softplus(−z)). u_n is its mean
 * over every location of every level (`cls` maps [N, h, w, K], one per level) → [N].
 */
export function detectionUncertainty(cls: readonly Tensor[]): Tensor1D {
  if (cls.length === 0 || cls.some((c) => c.rank < 3 || c.shape[c.rank - 1] !== cls[0].shape[cls[0].rank - 1])) {
    throw new KdError('KD_SHAPE_MISMATCH', `detectionUncertainty: class maps must be [batch, …locations, classes] of one K, got ${cls.map((c) => `[${c.shape}]`).join(', ') || 'none'}`);
  }
  return tf.tidy(() => {
    const k = cls[0].shape[cls[0].rank - 1] as number;
    const flat = cls.map((c) => tf.reshape(c, [c.shape[0] as number, -1, k]));
    const z = flat.length === 1 ? flat[0] : tf.concat(flat, 1);
    const h = tf.add(tf.mul(tf.sigmoid(z), tf.softplus(tf.neg(z))), tf.mul(tf.sigmoid(tf.neg(z)), tf.softplus(z)));
    return tf.mean(tf.sum(h, -1), 1) as Tensor1D;
  });
}

/** The class heads of a detector: its outputs whose name starts with `cls_`, in output order. */
export function classHeads(heads: Record<string, Tensor>): Tensor[] {
  return Object.entries(heads)
    .filter(([name]) => name.startsWith('cls_'))
    .map(([, t]) => t);
}

/** Which output of the student a dense task's uncertainty reads, by name, or what is missing. */
export function uncertaintyOutputs(task: Task, outputNames: readonly string[]): string[] {
  if (task === 'segmentation') return outputNames.includes('logits') ? ['logits'] : [];
  if (task === 'detection') return outputNames.filter((n) => n.startsWith('cls_'));
  return outputNames.slice(0, 1);
}

/** The per-image uncertainty of a dense task from the student's outputs by name (`predictHeads`). */
export function denseUncertainty(task: Task, heads: Record<string, Tensor>): Tensor1D {
  if (task === 'segmentation') {
    if (!heads.logits) throw new KdError('KD_PLUGIN_DEPENDENCY', `a segmentation run's student must have an output named 'logits' (it has ${Object.keys(heads).join(', ')})`);
    return segmentationUncertainty(heads.logits);
  }
  return detectionUncertainty(classHeads(heads));
}

/** The dense targets of the kept rows of a batch: their object lists, their masks gathered (absent when the batch has none). */
export function keptTargets(batch: Batch, kept: Int32Array): { objects?: ObjectList[]; masks?: Tensor } {
  const out: { objects?: ObjectList[]; masks?: Tensor } = {};
  const { objects, masks } = batch;
  if (objects) out.objects = Array.from(kept, (i) => objects[i]);
  if (masks) out.masks = tf.tidy(() => tf.gather(masks, tf.tensor1d(kept, 'int32')));
  return out;
}
