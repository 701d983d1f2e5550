import * as tf from '@tensorflow/tfjs-core';
import { Rng } from './rng';
import type { ObjectList } from './task';
import type { Dataset, DatasetObjects } from './tokens';

/**
 * The batches of one epoch: a permutation that depends only on (seed, epoch), so a resumed run
 * replays the same order. The last partial batch is kept unless `dropLast`.
 */
export function epochBatches(
  n: number,
  opts: { batchSize: number; seed: number; epoch: number; shuffle?: boolean; dropLast?: boolean },
): Int32Array[] {
  const order =
    opts.shuffle === false ? Int32Array.from({ length: n }, (_, i) => i) : new Rng(opts.seed).fork(opts.epoch).permutation(n);
  const out: Int32Array[] = [];
  for (let s = 0; s < n; s += opts.batchSize) {
    if (opts.dropLast && s + opts.batchSize > n) break;
    out.push(order.subarray(s, Math.min(n, s + opts.batchSize)));
  }
  return out;
}

/**
 * Images and labels of the given samples as tensors: x [n, H, W, C] float32, y [n] int32 — and the
 * task's targets when the dataset has them: `objects` (detection: per sample, views of the dataset's
 * arrays) or `masks` (segmentation: int32 [n, H, W]).
 */
export function batchTensors(ds: Dataset, indices: ArrayLike<number>): { x: tf.Tensor4D; y: tf.Tensor1D; objects?: ObjectList[]; masks?: tf.Tensor3D } {
  const [h, w, c] = ds.shape;
  const per = h * w * c;
  const n = indices.length;
  const xs = new Float32Array(n * per);
  const ys = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const k = indices[i];
    xs.set(ds.images.subarray(k * per, (k + 1) * per), i * per);
    ys[i] = ds.labels[k];
  }
  const out: { x: tf.Tensor4D; y: tf.Tensor1D; objects?: ObjectList[]; masks?: tf.Tensor3D } = { x: tf.tensor4d(xs, [n, h, w, c]), y: tf.tensor1d(ys, 'int32') };
  const o = ds.objects;
  if (o) {
    out.objects = Array.from(indices, (k) => ({ boxes: o.boxes.subarray(4 * o.offsets[k], 4 * o.offsets[k + 1]), classes: o.classes.subarray(o.offsets[k], o.offsets[k + 1]) }));
  }
  if (ds.masks) {
    const plane = h * w;
    const ms = new Int32Array(n * plane);
    for (let i = 0; i < n; i++) ms.set(ds.masks.subarray(indices[i] * plane, (indices[i] + 1) * plane), i * plane);
    out.masks = tf.tensor3d(ms, [n, h, w], 'int32');
  }
  return out;
}

export function datasetSize(ds: Dataset): number {
  return ds.labels.length;
}

/** The samples at `indices` as a new Dataset (copies; a dense task's objects and masks too). */
export function selectSamples(ds: Dataset, indices: ArrayLike<number>, name: string): Dataset {
  const per = ds.shape[0] * ds.shape[1] * ds.shape[2];
  const images = new Float32Array(indices.length * per);
  const labels = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    images.set(ds.images.subarray(indices[i] * per, (indices[i] + 1) * per), i * per);
    labels[i] = ds.labels[indices[i]];
  }
  const out: Dataset = { ...ds, name, images, labels };
  if (ds.objects) out.objects = selectObjects(ds.objects, indices);
  if (ds.masks) {
    const plane = ds.shape[0] * ds.shape[1];
    const masks = new Int32Array(indices.length * plane);
    for (let i = 0; i < indices.length; i++) masks.set(ds.masks.subarray(indices[i] * plane, (indices[i] + 1) * plane), i * plane);
    out.masks = masks;
  }
  return out;
}

function selectObjects(o: DatasetObjects, indices: ArrayLike<number>): DatasetObjects {
  const offsets = new Int32Array(indices.length + 1);
  for (let i = 0; i < indices.length; i++) offsets[i + 1] = offsets[i] + o.offsets[indices[i] + 1] - o.offsets[indices[i]];
  const boxes = new Float32Array(4 * offsets[indices.length]);
  const classes = new Int32Array(offsets[indices.length]);
  for (let i = 0; i < indices.length; i++) {
    const [a, b] = [o.offsets[indices[i]], o.offsets[indices[i] + 1]];
    boxes.set(o.boxes.subarray(4 * a, 4 * b), 4 * offsets[i]);
    classes.set(o.classes.subarray(a, b), offsets[i]);
  }
  return { boxes, classes, offsets };
}

/**
 * The seeded split of a training set into (train, held-out): `max(1, round(n * fraction))` samples,
 * chosen by a permutation that depends only on (n, seed), are held out; both sides keep the original
 * order. This is the one hold-out split (the runner's `calibrate.holdout` uses it), so a seed names
 * the same split wherever it is taken.
 */
export function holdOut(ds: Dataset, fraction: number, seed: number): { train: Dataset; heldOut: Dataset } {
  const n = ds.labels.length;
  const order = new Rng(seed ^ 0x68e31da4).permutation(n);
  const k = Math.max(1, Math.round(n * fraction));
  const held = Int32Array.from(order.subarray(0, k)).sort();
  const kept = Int32Array.from(order.subarray(k)).sort();
  return { train: selectSamples(ds, kept, `${ds.name} (minus held-out)`), heldOut: selectSamples(ds, held, `${ds.name} (held-out)`) };
}

/**
 * Class imbalance by declared fractions: of class c, the first `round(n_c * fractions[c])` samples in
 * the dataset's order are kept (so the same samples for every seed); the kept samples keep their order.
 */
export function keepClassFractions(ds: Dataset, fractions: readonly number[]): Dataset {
  const counts = new Array<number>(fractions.length).fill(0);
  for (const y of ds.labels) counts[y]++;
  const quota = counts.map((n, c) => Math.round(n * fractions[c]));
  const seen = new Array<number>(fractions.length).fill(0);
  const kept: number[] = [];
  ds.labels.forEach((y, i) => {
    if (seen[y]++ < quota[y]) kept.push(i);
  });
  const label = fractions.map((f) => String(f)).join(',');
  return selectSamples(ds, kept, `${ds.name} (class fractions ${label})`);
}
