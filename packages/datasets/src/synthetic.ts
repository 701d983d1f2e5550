/**
 * Seeded synthetic classification data: class-conditional Gaussian blobs. Each class has a mean
 * image drawn uniformly in [0.15, 0.85] from the seed; an example is its class mean plus N(0, noise²)
 * per value, clipped to [0, 1]. Labels are balanced (round-robin) then shuffled. Same options →
 * identical bytes, so tests and smoke runs need no files.
 */
import { KdError, Rng } from '@tfkd/kd-core';
import type { DataSplits, Dataset } from './types';

export interface SyntheticOptions {
  n: number;
  numClasses: number;
  /** [H, W, C] of one example. */
  shape: [number, number, number];
  seed: number;
  /** Standard deviation of the per-value Gaussian noise (default 0.15). */
  noise?: number;
}

export interface SyntheticSplitsOptions extends Omit<SyntheticOptions, 'n'> {
  train: number;
  test: number;
}

function invalid(key: string, message: string, fix: string): KdError {
  return new KdError('KD_SPEC_INVALID', `synthetic: ${message}`, { path: key, fix });
}

/**
 * Synthetic sets are generated in memory as float32: at most 2^28 values (1 GiB) per split and for
 * the class means. Beyond that a typed array cannot be allocated (a RangeError) or fills the machine.
 */
export const SYNTHETIC_MAX_VALUES = 2 ** 28;

function validate(o: Omit<SyntheticOptions, 'n'>, counts: Record<string, number>): void {
  for (const [key, v] of Object.entries(counts)) {
    if (!Number.isInteger(v) || v < 0)
      throw invalid(key, `${key} must be a non-negative integer, got ${v}`, `Pass ${key}: 1000 or similar.`);
  }
  if (!Number.isInteger(o.numClasses) || o.numClasses < 1) {
    throw invalid(
      'numClasses',
      `numClasses must be a positive integer, got ${o.numClasses}`,
      'Pass numClasses: 10 or similar.',
    );
  }
  if (
    !Array.isArray(o.shape) ||
    o.shape.length !== 3 ||
    !o.shape.every((d) => Number.isInteger(d) && d > 0)
  ) {
    throw invalid(
      'shape',
      `shape must be [H, W, C] of positive integers, got ${JSON.stringify(o.shape)}`,
      'Pass shape: [28, 28, 1] or similar.',
    );
  }
  const size = o.shape[0] * o.shape[1] * o.shape[2];
  for (const [key, n] of [...Object.entries(counts), ['numClasses', o.numClasses] as const]) {
    if (n * size > SYNTHETIC_MAX_VALUES) {
      throw invalid(
        key,
        `${key} ${n} × shape ${o.shape.join('x')} is ${n * size} values, more than the ${SYNTHETIC_MAX_VALUES} (1 GiB of float32) a synthetic set may hold`,
        `Use fewer examples or a smaller shape (${key} ≤ ${Math.floor(SYNTHETIC_MAX_VALUES / size)} at this shape).`,
      );
    }
  }
  if (!Number.isFinite(o.seed))
    throw invalid('seed', `seed must be a finite number, got ${o.seed}`, 'Pass seed: 42 or similar.');
  const noise = o.noise ?? 0.15;
  if (!Number.isFinite(noise) || noise < 0)
    throw invalid('noise', `noise must be ≥ 0, got ${noise}`, 'Pass noise: 0.15 or similar.');
}

function classMeans(rng: Rng, numClasses: number, size: number): Float32Array {
  const means = new Float32Array(numClasses * size);
  for (let i = 0; i < means.length; i++) means[i] = 0.15 + 0.7 * rng.next();
  return means;
}

function sample(
  rng: Rng,
  means: Float32Array,
  o: Omit<SyntheticOptions, 'n'>,
  n: number,
  name: string,
): Dataset {
  const size = o.shape[0] * o.shape[1] * o.shape[2];
  const noise = o.noise ?? 0.15;
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) labels[i] = i % o.numClasses;
  rng.shuffleInPlace(labels);
  const images = new Float32Array(n * size);
  for (let i = 0; i < n; i++) {
    const m = labels[i] * size;
    for (let j = 0; j < size; j++) {
      const v = means[m + j] + noise * rng.normal();
      images[i * size + j] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
  }
  return {
    name,
    images,
    labels,
    shape: [o.shape[0], o.shape[1], o.shape[2]],
    numClasses: o.numClasses,
    classNames: Array.from({ length: o.numClasses }, (_, k) => `class_${k}`),
    source: 'synthetic',
    note: `class-conditional Gaussian blobs, seed ${o.seed}, noise ${noise}`,
  };
}

/** One synthetic dataset of `n` examples. */
export function synthetic(o: SyntheticOptions): Dataset {
  validate(o, { n: o.n });
  const root = new Rng(o.seed);
  const means = classMeans(root.fork(0), o.numClasses, o.shape[0] * o.shape[1] * o.shape[2]);
  return sample(root.fork(1), means, o, o.n, `synthetic-${o.seed}`);
}

/**
 * Train and test sets sharing the class means (same distribution), drawn from independent streams.
 * `train` equals `synthetic({ n: train, ... })` with the same seed.
 */
export function syntheticSplits(o: SyntheticSplitsOptions): DataSplits {
  validate(o, { train: o.train, test: o.test });
  const root = new Rng(o.seed);
  const means = classMeans(root.fork(0), o.numClasses, o.shape[0] * o.shape[1] * o.shape[2]);
  return {
    train: sample(root.fork(1), means, o, o.train, `synthetic-${o.seed}:train`),
    test: sample(root.fork(2), means, o, o.test, `synthetic-${o.seed}:test`),
  };
}
