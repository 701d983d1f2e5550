/**
 * `fashion-scenes`: detection and segmentation scenes composed from real Fashion-MNIST items, for
 * the dense tasks (issue 24). Plain typed arrays, as every dataset here; deterministic per seed.
 *
 * A scene is a `size`×`size`×1 canvas (default 64) holding `items[0]`..`items[1]` items (default
 * 1–4). Each item is one Fashion-MNIST image, scaled by s ~ U[scale[0], scale[1]] (default 0.6–1.4;
 * side round(28·s) px, bilinear with half-pixel centres) and placed at a random integer offset such
 * that its box lies inside the canvas. Declared bounds:
 * - **box**: tight around the scaled item's non-zero pixels (x1, y1, x2, y2 in pixel-edge
 *   coordinates: a one-pixel item at column 5, row 7 has the box [5, 7, 6, 8]);
 * - **overlap**: every pair of boxes in a scene has IoU ≤ `maxIou` (default 0.3) and covers at most
 *   `maxCover` (default 0.6) of the smaller box (intersection / smaller area); a placement that
 *   breaks a bound is drawn again, up to 30 times, then the item is left out (so a crowded scene may
 *   hold fewer items than drawn, never fewer than `items[0]` when it is 1 or less);
 * - **mask**: pixels where the item's scaled value is > `threshold` (default 0.05) get class + 1
 *   (0 is background), later items on top; in the image such pixels are the item's value (opaque),
 *   fainter non-zero pixels blend by max.
 * Train scenes draw items from the train split only, test scenes from the test split only.
 */
import { KdError, Rng, type Dataset as KdDataset, type DatasetDefinition } from '@tfkd/kd-core';
import * as path from 'path';
import { z } from 'zod';
import { FASHION_MNIST_CLASSES, loadFashionMnist } from './fashion-mnist';
import type { Dataset } from './types';

/** The items scenes are composed from: any single-channel image set with class labels. */
export type SceneItems = Pick<Dataset, 'images' | 'labels' | 'shape'>;

export interface ComposeScenesOptions {
  /** Scenes to make. */
  count: number;
  seed: number;
  /** Canvas side in pixels (square). Default 64. */
  size?: number;
  /** Inclusive range of items drawn per scene. Default [1, 4]. */
  items?: [number, number];
  /** Range of the scale factor s (item side = round(28·s) for 28-px items). Default [0.6, 1.4]. */
  scale?: [number, number];
  /** Largest IoU allowed between two boxes of a scene. Default 0.3. */
  maxIou?: number;
  /** Largest intersection / smaller-box area allowed between two boxes. Default 0.6. */
  maxCover?: number;
  /** Mask threshold on the scaled item's values in [0, 1]. Default 0.05. */
  threshold?: number;
  name?: string;
}

/** One split of scenes. Objects are stored flat: scene i owns objects offsets[i] … offsets[i+1]−1. */
export interface SceneSet {
  name: string;
  /** count·H·W floats in [0, 1] (NHWC with C = 1). */
  images: Float32Array;
  /** [H, W, 1]. */
  shape: [number, number, number];
  count: number;
  /** 4 per object: x1, y1, x2, y2 in pixels (x2, y2 exclusive edges). */
  boxes: Float32Array;
  /** One class index in [0, numClasses) per object. */
  classes: Int32Array;
  /** count + 1 entries. */
  offsets: Int32Array;
  /** count·H·W: 0 background, 1..numClasses = class + 1. */
  masks: Int32Array;
  /** Per object: the index of its item in the source split (provenance; tests use it). */
  sourceItems: Int32Array;
  numClasses: number;
  classNames: string[];
  source: 'full' | 'subset' | 'items';
  note?: string;
}

export interface SceneSplits {
  train: SceneSet;
  test: SceneSet;
}

/** The objects of scene `i`: boxes as [x1, y1, x2, y2] rows and their classes. */
export function sceneObjects(set: SceneSet, i: number): { boxes: number[][]; classes: number[] } {
  const boxes: number[][] = [];
  const classes: number[] = [];
  for (let o = set.offsets[i]; o < set.offsets[i + 1]; o++) {
    boxes.push(Array.from(set.boxes.subarray(4 * o, 4 * o + 4)));
    classes.push(set.classes[o]);
  }
  return { boxes, classes };
}

/** Bilinear resize of one single-channel image, half-pixel centres, edge-clamped (tf.image.resizeBilinear with halfPixelCenters). */
export function resizeBilinear(src: Float32Array, sh: number, sw: number, dh: number, dw: number): Float32Array {
  const out = new Float32Array(dh * dw);
  for (let y = 0; y < dh; y++) {
    const fy = Math.min(Math.max((y + 0.5) * (sh / dh) - 0.5, 0), sh - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, sh - 1);
    const wy = fy - y0;
    for (let x = 0; x < dw; x++) {
      const fx = Math.min(Math.max((x + 0.5) * (sw / dw) - 0.5, 0), sw - 1);
      const x0 = Math.floor(fx);
      const x1 = Math.min(x0 + 1, sw - 1);
      const wx = fx - x0;
      const top = src[y0 * sw + x0] * (1 - wx) + src[y0 * sw + x1] * wx;
      const bottom = src[y1 * sw + x0] * (1 - wx) + src[y1 * sw + x1] * wx;
      out[y * dw + x] = top * (1 - wy) + bottom * wy;
    }
  }
  return out;
}

/** IoU and intersection / smaller area of two [x1, y1, x2, y2] boxes. */
export function boxOverlap(a: ArrayLike<number>, b: ArrayLike<number>): { iou: number; cover: number } {
  const w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  if (w <= 0 || h <= 0) return { iou: 0, cover: 0 };
  const inter = w * h;
  const areaA = (a[2] - a[0]) * (a[3] - a[1]);
  const areaB = (b[2] - b[0]) * (b[3] - b[1]);
  return { iou: inter / (areaA + areaB - inter), cover: inter / Math.min(areaA, areaB) };
}

const PLACEMENT_ATTEMPTS = 30;

function invalid(key: string, message: string, fix: string): KdError {
  return new KdError('KD_SPEC_INVALID', `fashion-scenes: ${message}`, { path: key, fix });
}

function checkRange(key: string, r: [number, number], lo: number, integer: boolean): void {
  const ok = Array.isArray(r) && r.length === 2 && r.every((v) => Number.isFinite(v) && v >= lo && (!integer || Number.isInteger(v))) && r[0] <= r[1];
  if (!ok) throw invalid(key, `${key} must be [min, max] with ${lo} ≤ min ≤ max${integer ? ', integers' : ''}, got ${JSON.stringify(r)}`, `pass e.g. ${key}: ${integer ? '[1, 4]' : '[0.6, 1.4]'}`);
}

/** Composes `count` scenes from `items` (pure: same items and options → identical bytes). */
export function composeScenes(items: SceneItems, o: ComposeScenesOptions): SceneSet {
  const size = o.size ?? 64;
  const [nMin, nMax] = o.items ?? [1, 4];
  const [sMin, sMax] = o.scale ?? [0.6, 1.4];
  const maxIou = o.maxIou ?? 0.3;
  const maxCover = o.maxCover ?? 0.6;
  const threshold = o.threshold ?? 0.05;
  if (!Number.isInteger(o.count) || o.count < 0) throw invalid('count', `count must be a non-negative integer, got ${o.count}`, 'pass e.g. count: 1000');
  if (!Number.isInteger(size) || size < 1) throw invalid('size', `size must be a positive integer, got ${size}`, 'pass e.g. size: 64');
  checkRange('items', [nMin, nMax], 0, true);
  checkRange('scale', [sMin, sMax], 1e-6, false);
  for (const [k, v] of [['maxIou', maxIou], ['maxCover', maxCover], ['threshold', threshold]] as const) {
    if (!(v >= 0 && v <= 1)) throw invalid(k, `${k} must be in [0, 1], got ${v}`, `pass e.g. ${k}: 0.3`);
  }
  const [ih, iw, ic] = items.shape;
  if (ic !== 1) throw invalid('items', `items must be single-channel, got shape ${items.shape.join('x')}`, 'compose scenes from grey-scale items such as Fashion-MNIST');
  const nItems = items.labels.length;
  if (nItems === 0 && nMax > 0) throw invalid('items', 'the item set is empty', 'load at least one item (check limit:)');
  if (o.count * size * size > 2 ** 28) throw invalid('count', `${o.count} scenes of ${size}x${size} exceed 2^28 values`, 'make fewer or smaller scenes');

  const rng = new Rng(o.seed);
  const plane = size * size;
  const images = new Float32Array(o.count * plane);
  const masks = new Int32Array(o.count * plane);
  const boxes: number[] = [];
  const classes: number[] = [];
  const sources: number[] = [];
  const offsets = new Int32Array(o.count + 1);
  for (let s = 0; s < o.count; s++) {
    const n = nMin + rng.int(nMax - nMin + 1);
    const placed: number[][] = [];
    for (let k = 0; k < n; k++) {
      for (let attempt = 0; attempt < PLACEMENT_ATTEMPTS; attempt++) {
        const idx = rng.int(nItems);
        const f = sMin + (sMax - sMin) * rng.next();
        const dh = Math.max(1, Math.round(ih * f));
        const dw = Math.max(1, Math.round(iw * f));
        const px = resizeBilinear(items.images.subarray(idx * ih * iw, (idx + 1) * ih * iw), ih, iw, dh, dw);
        let r0 = dh, r1 = -1, c0 = dw, c1 = -1;
        for (let y = 0; y < dh; y++)
          for (let x = 0; x < dw; x++)
            if (px[y * dw + x] > 0) {
              r0 = Math.min(r0, y); r1 = Math.max(r1, y); c0 = Math.min(c0, x); c1 = Math.max(c1, x);
            }
        const bw = c1 - c0 + 1;
        const bh = r1 - r0 + 1;
        if (r1 < 0 || bw > size || bh > size) continue; // a blank item, or one larger than the canvas
        const ox = -c0 + rng.int(size - bw + 1);
        const oy = -r0 + rng.int(size - bh + 1);
        const box = [ox + c0, oy + r0, ox + c1 + 1, oy + r1 + 1];
        if (placed.some((b) => { const v = boxOverlap(b, box); return v.iou > maxIou || v.cover > maxCover; })) continue;
        placed.push(box);
        const label = items.labels[idx];
        for (let y = r0; y <= r1; y++)
          for (let x = c0; x <= c1; x++) {
            const v = px[y * dw + x];
            if (v <= 0) continue;
            const at = s * plane + (oy + y) * size + (ox + x);
            if (v > threshold) {
              images[at] = v;
              masks[at] = label + 1;
            } else images[at] = Math.max(images[at], v);
          }
        boxes.push(...box);
        classes.push(label);
        sources.push(idx);
        break;
      }
    }
    offsets[s + 1] = classes.length;
  }
  return {
    name: o.name ?? `fashion-scenes-${o.seed}`,
    images,
    shape: [size, size, 1],
    count: o.count,
    boxes: Float32Array.from(boxes),
    classes: Int32Array.from(classes),
    offsets,
    masks,
    sourceItems: Int32Array.from(sources),
    numClasses: 10,
    classNames: FASHION_MNIST_CLASSES.slice(),
    source: 'items',
    note: `${nMin}-${nMax} items per ${size}x${size} scene, scale ${sMin}-${sMax}, IoU ≤ ${maxIou}, cover ≤ ${maxCover}, mask > ${threshold}, seed ${o.seed}`,
  };
}

export interface LoadFashionScenesOptions extends Omit<ComposeScenesOptions, 'count' | 'name'> {
  /** Scenes per split. Defaults 5000 / 1000. */
  train?: number;
  test?: number;
  /** Fashion-MNIST folder (else KD_DATA_DIR, the Debian package, the shipped subset). */
  path?: string;
  subset?: boolean;
  /** Use only the first N items of each Fashion-MNIST split. */
  limit?: { train?: number; test?: number };
}

/** Train scenes from train items, test scenes from test items (independent streams of one seed). */
export function loadFashionScenes(o: LoadFashionScenesOptions): SceneSplits {
  const fm = loadFashionMnist({ path: o.path, subset: o.subset, limit: o.limit });
  const root = new Rng(o.seed);
  const [trainSeed, testSeed] = [root.nextUint32(), root.nextUint32()];
  const common = { size: o.size, items: o.items, scale: o.scale, maxIou: o.maxIou, maxCover: o.maxCover, threshold: o.threshold };
  const make = (split: 'train' | 'test', count: number, seed: number): SceneSet => ({
    ...composeScenes(fm[split], { ...common, count, seed, name: `fashion-scenes:${split}` }),
    source: fm[split].source === 'full' ? 'full' : 'subset',
    note: fm[split].note,
  });
  return { train: make('train', o.train ?? 5000, trainSeed), test: make('test', o.test ?? 1000, testSeed) };
}

/**
 * Like kd-core's DatasetDefinition but yielding {@link SceneSplits} (boxes and masks at once), for
 * code that wants the scenes themselves. Runs use {@link fashionScenesTaskDataset}, bound to
 * DATASET_DEFINITION; nothing binds this token any more.
 */
export interface SceneDatasetDefinition {
  id: string;
  describe: string;
  options: z.ZodType;
  pathOptions?: string[];
  load(options: Record<string, unknown>, ctx: { seed: number; specPath: string; specDir?: string }): Promise<SceneSplits>;
}
export const SCENE_DATASET_DEFINITION = Symbol.for('kd.SceneDatasetDefinition');

const pairOf = (lo: number) => z.tuple([z.number().min(lo), z.number().min(lo)]);

/** `data: { name: fashion-scenes }` (detection boxes + segmentation masks). */
export const fashionScenesDataset: SceneDatasetDefinition = {
  id: 'fashion-scenes',
  pathOptions: ['path'],
  describe: 'scenes of 1-4 scaled Fashion-MNIST items on a 64x64 canvas: boxes, classes and per-pixel masks (0 = background, 1..10)',
  options: z
    .object({
      path: z.string().optional().describe('Fashion-MNIST folder'),
      subset: z.boolean().default(false),
      train: z.number().int().min(0).default(5000),
      test: z.number().int().min(0).default(1000),
      size: z.number().int().positive().default(64),
      items: pairOf(0).default([1, 4]),
      scale: pairOf(0).default([0.6, 1.4]),
      maxIou: z.number().min(0).max(1).default(0.3),
      maxCover: z.number().min(0).max(1).default(0.6),
      threshold: z.number().min(0).max(1).default(0.05),
      seed: z.number().int().min(0).optional().describe('default: the run seed'),
      limit: z.object({ train: z.number().int().positive().optional(), test: z.number().int().positive().optional() }).strict().optional(),
    })
    .strict(),
  async load(o, ctx) {
    const opts = o as unknown as LoadFashionScenesOptions & { seed?: number };
    const p = opts.path === undefined ? undefined : path.resolve(ctx.specDir ?? process.cwd(), opts.path);
    return loadFashionScenes({ ...opts, path: p, seed: opts.seed ?? ctx.seed });
  },
};

/**
 * One split of scenes as a run's dataset for `task`: detection gets the objects (numClasses 10, the
 * Fashion-MNIST classes), segmentation the masks (numClasses 11: background 0, then class + 1).
 * `labels` holds no class (zeros, one per scene). The arrays are shared, not copied.
 */
export function sceneDataset(set: SceneSet, task: 'detection' | 'segmentation'): KdDataset {
  const base = { name: set.name, images: set.images, labels: new Int32Array(set.count), shape: set.shape, source: set.source, ...(set.note ? { note: set.note } : {}) };
  return task === 'detection'
    ? { ...base, numClasses: set.numClasses, classNames: set.classNames, objects: { boxes: set.boxes, classes: set.classes, offsets: set.offsets } }
    : { ...base, numClasses: set.numClasses + 1, classNames: ['background', ...set.classNames], masks: set.masks };
}

/** `data: { name: fashion-scenes }` for a `task: detection` or `task: segmentation` run (the options of {@link fashionScenesDataset}). */
export const fashionScenesTaskDataset: DatasetDefinition = {
  id: 'fashion-scenes',
  pathOptions: ['path'],
  tasks: ['detection', 'segmentation'],
  describe: `${fashionScenesDataset.describe}; task detection: boxes + classes (10), task segmentation: masks (11 classes with background)`,
  options: fashionScenesDataset.options,
  async load(o, ctx) {
    const task = ctx.task;
    if (task !== 'detection' && task !== 'segmentation') {
      throw new KdError('KD_TASK_MISMATCH', `fashion-scenes supports detection, segmentation; this run's task is ${task ?? 'classification'}`, {
        path: `${ctx.specPath}.name`,
        fix: 'set `task: detection` or `task: segmentation`, or use fashion-mnist for classification',
      });
    }
    const splits = await fashionScenesDataset.load(o, ctx);
    return { train: sceneDataset(splits.train, task), test: sceneDataset(splits.test, task) };
  },
};
