/**
 * Deterministic seeded shuffling and batching. The order of an epoch is a pure function of
 * (n, seed, epoch): no generator state is carried between epochs, so a run resumed at epoch k
 * draws exactly the batches the uninterrupted run would have drawn.
 */
import { KdError, Rng, epochBatches } from '@tfkd/kd-core';
import type { Dataset } from './types';
import { exampleSize } from './types';

export interface BatchOptions {
  batchSize: number;
  seed: number;
  epoch: number;
  /** Shuffle the order (default true); false gives 0..n-1 in order. */
  shuffle?: boolean;
  /** Drop a last batch smaller than batchSize (default false). */
  dropLast?: boolean;
}

export interface Batch {
  /** n * H * W * C values, NHWC. */
  x: Float32Array;
  y: Int32Array;
  n: number;
}

function invalid(key: string, message: string, fix: string): KdError {
  return new KdError('KD_SPEC_INVALID', message, { path: key, fix });
}

function checkInt(v: number, key: string, min: number): void {
  if (!Number.isInteger(v) || v < min) {
    throw invalid(
      key,
      `${key} must be an integer ≥ ${min}, got ${v}`,
      `Pass a whole number ≥ ${min} for ${key}.`,
    );
  }
}

/** The permutation used for `epoch`: depends only on (n, seed, epoch). */
export function epochOrder(n: number, seed: number, epoch: number): Int32Array {
  checkOrderArgs(n, seed, epoch);
  return new Rng(seed).fork(epoch).permutation(n);
}

function checkOrderArgs(n: number, seed: number, epoch: number): void {
  checkInt(n, 'n', 0);
  checkInt(epoch, 'epoch', 0);
  if (!Number.isFinite(seed))
    throw invalid('seed', `seed must be a finite number, got ${seed}`, 'Pass seed: 42 or similar.');
}

/** Index batches for one epoch (validated; the engine's own `epochBatches`, so both agree exactly). */
export function batchIndices(n: number, opts: BatchOptions): Int32Array[] {
  checkInt(opts.batchSize, 'batchSize', 1);
  checkInt(n, 'n', 0);
  // Validate only: the permutation itself is drawn once, by epochBatches.
  if (opts.shuffle ?? true) checkOrderArgs(n, opts.seed, opts.epoch);
  return epochBatches(n, opts).map((b) => b.slice());
}

/** Copies the examples at `indices` (in that order) into one contiguous batch. */
export function gatherBatch(ds: Dataset, indices: ArrayLike<number>): Batch {
  const size = exampleSize(ds);
  const count = ds.labels.length;
  const n = indices.length;
  const x = new Float32Array(n * size);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const k = indices[i];
    if (!Number.isInteger(k) || k < 0 || k >= count) {
      throw invalid(
        `indices[${i}]`,
        `gatherBatch: index ${k} is outside [0, ${count}) of dataset ${ds.name}`,
        'Build indices with batchIndices(dataset size, ...).',
      );
    }
    x.set(ds.images.subarray(k * size, (k + 1) * size), i * size);
    y[i] = ds.labels[k];
  }
  return { x, y, n };
}

/** A new Dataset holding the examples at `indices` (in that order). */
export function selectExamples(ds: Dataset, indices: ArrayLike<number>, name = ds.name): Dataset {
  const { x, y } = gatherBatch(ds, indices);
  const out: Dataset = { ...ds, name, images: x, labels: y, shape: [ds.shape[0], ds.shape[1], ds.shape[2]] };
  if (ds.classNames) out.classNames = ds.classNames.slice();
  return out;
}

/**
 * Deterministic held-out split (e.g. for temperature calibration): round(n * fraction) examples,
 * chosen by a permutation seeded with `seed`, go to `validation`; the rest stay in `train`. Both
 * keep the original order, are disjoint and together cover the dataset.
 */
export function splitTrainValidation(
  ds: Dataset,
  fraction: number,
  seed: number,
): { train: Dataset; validation: Dataset; trainIndices: Int32Array; validationIndices: Int32Array } {
  const n = ds.labels.length;
  if (!(fraction > 0 && fraction < 1)) {
    throw invalid(
      'fraction',
      `splitTrainValidation: fraction must be in (0, 1), got ${fraction}`,
      'Pass e.g. 0.1 to hold out 10%.',
    );
  }
  const k = Math.round(n * fraction);
  if (k < 1 || k > n - 1) {
    throw invalid(
      'fraction',
      `splitTrainValidation: fraction ${fraction} of ${n} examples leaves an empty split`,
      'Use a larger dataset or a fraction nearer 0.5.',
    );
  }
  if (!Number.isFinite(seed))
    throw invalid('seed', `seed must be a finite number, got ${seed}`, 'Pass seed: 42 or similar.');
  const perm = new Rng(seed).permutation(n);
  const validationIndices = perm.slice(0, k).sort();
  const trainIndices = perm.slice(k).sort();
  return {
    train: selectExamples(ds, trainIndices, `${ds.name}:train`),
    validation: selectExamples(ds, validationIndices, `${ds.name}:validation`),
    trainIndices,
    validationIndices,
  };
}
