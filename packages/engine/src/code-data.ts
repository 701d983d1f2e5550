import * as tf from '@tensorflow/tfjs-core';
import { KdError, type Dataset } from '@tfkd/kd-core';

/** A `tf.data.Dataset` as far as the runner uses it (duck-typed: tfjs-data stays the caller's dependency). */
export interface TfDataLike {
  toArray(): Promise<unknown[]>;
}

/**
 * Data handed over in code: a `tf.data.Dataset` of `{ xs, ys }` batches (or single examples), or
 * tensors/arrays `{ xs, ys }`. `ys` are class indices or one-hot rows.
 */
export type DataInput = TfDataLike | { xs: tf.Tensor | ArrayLike<number> | number[][]; ys: tf.Tensor | ArrayLike<number> | number[][] };

function isTfData(d: DataInput): d is TfDataLike {
  return typeof (d as TfDataLike).toArray === 'function';
}

/**
 * The data as the engine keeps it (plain arrays; tensors are made per batch), in the order given.
 * Returns the batch size of a batched `tf.data.Dataset` (its first element's), for the run's `batchSize`.
 */
export async function datasetFromCode(d: DataInput, name: string, specPath: string): Promise<{ dataset: Dataset; batchSize: number | null }> {
  const parts: { xs: tf.Tensor; ys: tf.Tensor }[] = [];
  const owned: tf.Tensor[] = [];
  let batchSize: number | null = null;
  try {
    if (isTfData(d)) {
      const elements = (await d.toArray()) as { xs?: tf.Tensor; ys?: tf.Tensor }[];
      for (const e of elements) {
        if (!(e?.xs instanceof tf.Tensor) || !(e?.ys instanceof tf.Tensor)) {
          throw new KdError('KD_DATA_CORRUPT', `${name}: a dataset element is not { xs, ys } of tensors`, {
            path: specPath,
            fix: 'map the dataset to { xs, ys }, e.g. tf.data.zip({ xs, ys }) or ds.map(({ x, y }) => ({ xs: x, ys: y }))',
          });
        }
        owned.push(e.xs, e.ys);
        parts.push({ xs: e.xs, ys: e.ys });
      }
      // batched when xs has a leading axis that ys shares (ys: [n] indices or [n, K] one-hot)
      const batched = parts.length > 0 && parts[0].xs.rank >= 2 && parts[0].ys.rank >= 1 && parts[0].xs.shape[0] === parts[0].ys.shape[0];
      if (batched) batchSize = parts[0].xs.shape[0] as number;
      else {
        for (const p of parts) {
          p.xs = tf.expandDims(p.xs, 0);
          p.ys = tf.expandDims(p.ys, 0);
          owned.push(p.xs, p.ys);
        }
      }
    } else {
      const xs = d.xs instanceof tf.Tensor ? d.xs : tf.tensor(d.xs as number[][]);
      const ys = d.ys instanceof tf.Tensor ? d.ys : tf.tensor(d.ys as number[]);
      if (!(d.xs instanceof tf.Tensor)) owned.push(xs);
      if (!(d.ys instanceof tf.Tensor)) owned.push(ys);
      parts.push({ xs, ys });
    }
    if (parts.length === 0) throw new KdError('KD_DATA_MISSING', `${name} is empty`, { path: specPath, fix: 'give at least one example' });
    return { dataset: toDataset(parts, name, specPath), batchSize };
  } finally {
    tf.dispose(owned);
  }
}

function toDataset(parts: { xs: tf.Tensor; ys: tf.Tensor }[], name: string, specPath: string): Dataset {
  const sample = parts[0].xs.shape.slice(1);
  const per = sample.reduce((a, b) => a * b, 1);
  const n = parts.reduce((s, p) => s + (p.xs.shape[0] as number), 0);
  const images = new Float32Array(n * per);
  const labels = new Int32Array(n);
  let numClasses = 0;
  let at = 0;
  for (const p of parts) {
    if (p.xs.shape.slice(1).join() !== sample.join()) {
      throw new KdError('KD_SHAPE_MISMATCH', `${name}: examples of shape [${p.xs.shape.slice(1)}] and [${sample}]`, { path: specPath, fix: 'give every example the same shape' });
    }
    const k = p.xs.shape[0] as number;
    images.set(p.xs.dataSync() as Float32Array, at * per);
    const oneHot = p.ys.rank === 2;
    if (oneHot) numClasses = Math.max(numClasses, p.ys.shape[1] as number);
    const y = oneHot ? tf.tidy(() => tf.argMax(p.ys, 1).dataSync()) : p.ys.dataSync();
    for (let i = 0; i < k; i++) {
      labels[at + i] = y[i];
      numClasses = Math.max(numClasses, y[i] + 1);
    }
    at += k;
  }
  // The engine's batches are [n, h, w, c]: a flat example [d] is kept as [1, 1, d] and reshaped back
  // to the model's input by the role's view.
  const shape: [number, number, number] = sample.length === 3 ? [sample[0], sample[1], sample[2]] : sample.length === 2 ? [sample[0], sample[1], 1] : [1, 1, per];
  return { name, images, labels, shape, numClasses, source: 'code' };
}
