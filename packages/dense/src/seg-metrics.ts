/**
 * Semantic segmentation metrics from a confusion matrix accumulated over batches (as mmseg's
 * `IoUMetric` / the reference's `get_confusion_matrix`): for class c, IoU_c = TP_c / (TP_c + FP_c +
 * FN_c); classes with an empty union (absent from both prediction and ground truth) are NaN and
 * left out of the mean (nanmean). Pixel accuracy = Σ_c TP_c / valid pixels. Background (class 0 in
 * fashion-scenes) is a class like the others; pixels labelled `ignoreIndex` are skipped.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Tensor } from '@tensorflow/tfjs-core';

export interface SegmentationResult {
  miou: number;
  pixelAccuracy: number;
  /** Per class IoU, NaN when the class is in neither prediction nor ground truth. */
  iou: number[];
  /** confusion[gt][pred], pixel counts. */
  confusion: number[][];
  pixels: number;
}

export class SegmentationEvaluator {
  private readonly counts: Float64Array;

  constructor(readonly numClasses: number, readonly ignoreIndex?: number) {
    this.counts = new Float64Array(numClasses * numClasses);
  }

  /** Adds predicted and ground-truth class maps (any layout, same length). */
  add(pred: ArrayLike<number>, gt: ArrayLike<number>): void {
    if (pred.length !== gt.length) throw new Error(`SegmentationEvaluator.add: ${pred.length} predictions for ${gt.length} labels`);
    const K = this.numClasses;
    for (let i = 0; i < gt.length; i++) {
      const g = gt[i];
      if (g === this.ignoreIndex) continue;
      const p = pred[i];
      if (!(g >= 0 && g < K && p >= 0 && p < K)) throw new Error(`SegmentationEvaluator.add: class out of range at ${i} (label ${g}, prediction ${p}, ${K} classes)`);
      this.counts[g * K + p]++;
    }
  }

  result(): SegmentationResult {
    const K = this.numClasses;
    const c = this.counts;
    let correct = 0;
    let total = 0;
    const iou: number[] = [];
    for (let k = 0; k < K; k++) {
      let row = 0;
      let col = 0;
      for (let j = 0; j < K; j++) {
        row += c[k * K + j];
        col += c[j * K + k];
      }
      const tp = c[k * K + k];
      correct += tp;
      total += row;
      const union = row + col - tp;
      iou.push(union > 0 ? tp / union : NaN);
    }
    const valid = iou.filter((v) => !Number.isNaN(v));
    return {
      miou: valid.length ? valid.reduce((a, b) => a + b, 0) / valid.length : NaN,
      pixelAccuracy: total > 0 ? correct / total : NaN,
      iou,
      confusion: Array.from({ length: K }, (_, g) => Array.from(c.subarray(g * K, (g + 1) * K))),
      pixels: total,
    };
  }
}

/** Per-pixel predicted classes (argmax over the last axis, first index on ties) of logits [N, H, W, K]. */
export function segmentationPredictions(logits: Tensor): Int32Array {
  return tf.tidy(() => tf.argMax(logits, -1).dataSync() as Int32Array);
}
