/**
 * Detection targets: FCOS assignment (mmdet `FCOSHead._get_target_single`) and the near-object
 * imitation mask of Wang et al. (CVPR 2019, `anchor_target_layer.py` of twangnh/Distilling-Object-Detectors).
 * Pure typed-array code: targets are computed per batch on the host, then handed to the losses.
 */
import * as tf from '@tensorflow/tfjs-core';
import { levelOffsets, locationTable, type DetectorLayout } from './layout';

/** The objects of one image: 4 numbers per object (x1, y1, x2, y2 in pixels) and one class each. */
export interface ObjectList {
  boxes: ArrayLike<number>;
  classes: ArrayLike<number>;
}

export interface DetectionTargets {
  /** Images N. */
  count: number;
  /** [N·L] class index of the assigned object, numClasses for background. */
  labels: Int32Array;
  /** [N·L·4] l, t, r, b from the location centre to the assigned box, in strides (0 for background). */
  distances: Float32Array;
  /** [N·L·4] the assigned box in pixels (0 for background). */
  boxes: Float32Array;
  /** [N·L] 1 at positive (assigned) locations. */
  positive: Float32Array;
  numPositive: number;
}

export interface TargetOptions {
  /**
   * Centre sampling radius in strides (FCOS/mmdet `center_sample_radius`): a location is a
   * candidate only inside the box ∩ the square of ± radius·stride around the box centre. Default
   * 1.5; 0 means plain "inside the box".
   */
  centerSampling?: number;
}

/**
 * FCOS assignment. A location is positive for an object when it lies strictly inside the box (or
 * its centre region), and the largest of its distances l, t, r, b to the box edges is within the
 * level's range (lo ≤ m ≤ hi). Among several such objects the one of least area wins (the first
 * on ties). Degenerate boxes (x2 ≤ x1 or y2 ≤ y1) contain no location and get no positive.
 */
export function encodeDetectionTargets(layout: DetectorLayout, images: ObjectList[], opts: TargetOptions = {}): DetectionTargets {
  const radius = opts.centerSampling ?? 1.5;
  const L = layout.locations;
  const N = images.length;
  const loc = locationTable(layout);
  const t: DetectionTargets = {
    count: N,
    labels: new Int32Array(N * L).fill(layout.numClasses),
    distances: new Float32Array(N * L * 4),
    boxes: new Float32Array(N * L * 4),
    positive: new Float32Array(N * L),
    numPositive: 0,
  };
  images.forEach((img, n) => {
    const G = img.classes.length;
    for (let l = 0; l < L; l++) {
      const x = loc.x[l];
      const y = loc.y[l];
      const s = loc.stride[l];
      const [lo, hi] = layout.levels[loc.level[l]].range;
      let best = -1;
      let bestArea = Infinity;
      for (let g = 0; g < G; g++) {
        const [x1, y1, x2, y2] = [img.boxes[4 * g], img.boxes[4 * g + 1], img.boxes[4 * g + 2], img.boxes[4 * g + 3]];
        const d = [x - x1, y - y1, x2 - x, y2 - y];
        let inner = d;
        if (radius > 0) {
          const [cx, cy, r] = [(x1 + x2) / 2, (y1 + y2) / 2, radius * s];
          inner = [x - Math.max(cx - r, x1), y - Math.max(cy - r, y1), Math.min(cx + r, x2) - x, Math.min(cy + r, y2) - y];
        }
        if (Math.min(...inner) <= 0) continue;
        const m = Math.max(...d);
        if (m < lo || m > hi) continue;
        const area = (x2 - x1) * (y2 - y1);
        if (area < bestArea) [best, bestArea] = [g, area];
      }
      if (best < 0) continue;
      const at = n * L + l;
      const b = [img.boxes[4 * best], img.boxes[4 * best + 1], img.boxes[4 * best + 2], img.boxes[4 * best + 3]];
      t.labels[at] = img.classes[best];
      t.positive[at] = 1;
      t.numPositive++;
      [x - b[0], y - b[1], b[2] - x, b[3] - y].forEach((v, e) => (t.distances[4 * at + e] = v / s));
      b.forEach((v, e) => (t.boxes[4 * at + e] = v));
    }
  });
  return t;
}

/** The targets as tensors: labels int32 [N, L], distances [N, L, 4] (strides), boxes [N, L, 4] (px), positive [N, L]. */
export function targetTensors(t: DetectionTargets, layout: DetectorLayout) {
  const L = layout.locations;
  return {
    labels: tf.tensor2d(t.labels, [t.count, L], 'int32'),
    distances: tf.tensor3d(t.distances, [t.count, L, 4]),
    boxes: tf.tensor3d(t.boxes, [t.count, L, 4]),
    positive: tf.tensor2d(t.positive, [t.count, L]),
  };
}

function iou(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter);
}

export interface ImitationMaskOptions {
  /** ψ: a location is near an object when one of its anchors has IoU > ψ · (the object's best IoU over all anchors). Default 0.5. */
  psi?: number;
  /** Anchor side = anchorScale · stride (per level). Default 4. */
  anchorScale?: number;
  /** Anchor aspect ratios h/w. Default [0.5, 1, 2]. */
  ratios?: number[];
}

/**
 * Wang et al.'s fine-grained imitation mask, per level [N, h, w] (level order of the layout):
 * anchors of side anchorScale·stride and the given ratios sit at every location centre; per object,
 * ψ·(max IoU over all anchors of all levels) is the threshold, and a location is in the mask when
 * one of its anchors beats the threshold of some object (the union over objects, as `mask > 0` in
 * the reference). An object no anchor overlaps (max IoU 0) marks nothing.
 */
export function imitationMask(layout: DetectorLayout, images: ObjectList[], opts: ImitationMaskOptions = {}): Float32Array[] {
  const psi = opts.psi ?? 0.5;
  const scale = opts.anchorScale ?? 4;
  const ratios = opts.ratios ?? [0.5, 1, 2];
  const loc = locationTable(layout);
  const L = layout.locations;
  const A = ratios.length;
  const anchors = new Float64Array(L * A * 4);
  for (let l = 0; l < L; l++)
    ratios.forEach((r, a) => {
      const side = scale * loc.stride[l];
      const [hw, hh] = [side / Math.sqrt(r) / 2, (side * Math.sqrt(r)) / 2];
      anchors.set([loc.x[l] - hw, loc.y[l] - hh, loc.x[l] + hw, loc.y[l] + hh], (l * A + a) * 4);
    });
  const offsets = levelOffsets(layout);
  const out = layout.levels.map((lv) => new Float32Array(images.length * lv.size[0] * lv.size[1]));
  images.forEach((img, n) => {
    for (let g = 0; g < img.classes.length; g++) {
      const box = [img.boxes[4 * g], img.boxes[4 * g + 1], img.boxes[4 * g + 2], img.boxes[4 * g + 3]];
      const ious = new Float64Array(L * A);
      let max = 0;
      for (let k = 0; k < L * A; k++) max = Math.max(max, (ious[k] = iou(anchors.subarray(4 * k, 4 * k + 4), box)));
      if (max <= 0) continue;
      for (let l = 0; l < L; l++) {
        let hit = false;
        for (let a = 0; a < A && !hit; a++) hit = ious[l * A + a] > psi * max;
        if (!hit) continue;
        const li = loc.level[l];
        const hw = layout.levels[li].size[0] * layout.levels[li].size[1];
        out[li][n * hw + (l - offsets[li])] = 1;
      }
    }
  });
  return out;
}
