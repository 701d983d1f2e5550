/** Detector outputs → boxes: scores, GFL integral, distance → box, per-class NMS (tf.image.nonMaxSuppression). */
import * as tf from '@tensorflow/tfjs-core';
import { integral } from './box-ops';
import type { DetectorHeads } from './detector';
import { locationTable, type DetectorLayout } from './layout';

/** The detections of one image, best first. */
export interface Detections {
  /** 4 per detection: x1, y1, x2, y2 in pixels, clipped to the image. */
  boxes: Float32Array;
  scores: Float32Array;
  classes: Int32Array;
}

export interface DecodeOptions {
  /** Candidates need sigmoid(class logit) > this. Default 0.05 (mmdet test_cfg score_thr). */
  scoreThreshold?: number;
  /** NMS IoU threshold, per class. Default 0.6 (GFL/FCOS test_cfg). */
  iouThreshold?: number;
  /** Candidates kept (by score) before NMS, per image. Default 1000. */
  preNms?: number;
  /** Detections kept per image after NMS. Default 100. */
  maxPerImage?: number;
}

/**
 * Decodes flattened heads ({@link detectorHeads}) into detections per image. Every (location,
 * class) pair with a score above the threshold is a candidate (mmdet's multiclass NMS): its box is
 * the location centre ± the expected distances × stride, clipped to the image.
 */
export function decodeDetections(heads: DetectorHeads, layout: DetectorLayout, opts: DecodeOptions = {}): Detections[] {
  const thr = opts.scoreThreshold ?? 0.05;
  const iouThr = opts.iouThreshold ?? 0.6;
  const preNms = opts.preNms ?? 1000;
  const maxPer = opts.maxPerImage ?? 100;
  const [N, L, K] = heads.cls.shape;
  const [probs, dist] = tf.tidy(() => [tf.sigmoid(heads.cls).dataSync() as Float32Array, integral(heads.box).dataSync() as Float32Array]);
  const loc = locationTable(layout);
  const [H, W] = layout.inputShape;
  const out: Detections[] = [];
  for (let n = 0; n < N; n++) {
    const cand: Array<{ l: number; k: number; s: number }> = [];
    for (let l = 0; l < L; l++)
      for (let k = 0; k < K; k++) {
        const s = probs[(n * L + l) * K + k];
        if (s > thr) cand.push({ l, k, s });
      }
    cand.sort((a, b) => b.s - a.s);
    cand.length = Math.min(cand.length, preNms);
    const boxOf = (l: number): number[] => {
      const d = dist.subarray(4 * (n * L + l), 4 * (n * L + l) + 4);
      const s = loc.stride[l];
      const clip = (v: number, hi: number) => Math.min(Math.max(v, 0), hi);
      return [clip(loc.x[l] - d[0] * s, W), clip(loc.y[l] - d[1] * s, H), clip(loc.x[l] + d[2] * s, W), clip(loc.y[l] + d[3] * s, H)];
    };
    const kept: Array<{ box: number[]; s: number; k: number }> = [];
    for (let k = 0; k < K; k++) {
      const mine = cand.filter((c) => c.k === k);
      if (mine.length === 0) continue;
      const boxes = mine.map((c) => boxOf(c.l));
      const keep = tf.tidy(() => {
        // tf.image.nonMaxSuppression takes [y1, x1, y2, x2].
        const b = tf.tensor2d(boxes.map(([x1, y1, x2, y2]) => [y1, x1, y2, x2]), [boxes.length, 4]);
        return tf.image.nonMaxSuppression(b, tf.tensor1d(mine.map((c) => c.s)), maxPer, iouThr).dataSync();
      });
      keep.forEach((i) => kept.push({ box: boxes[i], s: mine[i].s, k }));
    }
    kept.sort((a, b) => b.s - a.s);
    kept.length = Math.min(kept.length, maxPer);
    out.push({
      boxes: Float32Array.from(kept.flatMap((d) => d.box)),
      scores: Float32Array.from(kept.map((d) => d.s)),
      classes: Int32Array.from(kept.map((d) => d.k)),
    });
  }
  return out;
}
