import { KdError, type ModelBuildOptions } from '@tfkd/kd-core';
import { initializers } from '@tensorflow/tfjs-layers';

/** Seed used when a build call gives none, so an unseeded build is still reproducible. */
export const DEFAULT_SEED = 1;

/** Build options after validation: the three common fields are known to be well formed. */
export interface CheckedBuildOptions {
  inputShape: [number, number, number];
  numClasses: number;
  seed: number;
  raw: ModelBuildOptions;
}

function invalid(modelId: string, key: string, message: string, fix: string): KdError {
  return new KdError('KD_SPEC_INVALID', `model '${modelId}': ${message}`, { path: `options.${key}`, fix });
}

function isPositiveInt(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x > 0;
}

/** Validates the options every zoo model shares (NHWC `inputShape`, `numClasses`, `seed`). */
export function checkCommonOptions(modelId: string, opts: ModelBuildOptions): CheckedBuildOptions {
  const shape = opts?.inputShape;
  if (!Array.isArray(shape) || shape.length !== 3 || !shape.every(isPositiveInt)) {
    throw invalid(
      modelId,
      'inputShape',
      `inputShape must be one NHWC image shape [height, width, channels] of positive integers, got ${JSON.stringify(shape)}`,
      'pass e.g. inputShape: [28, 28, 1] for MNIST or [32, 32, 3] for CIFAR',
    );
  }
  if (!isPositiveInt(opts.numClasses)) {
    throw invalid(
      modelId,
      'numClasses',
      `numClasses must be a positive integer, got ${JSON.stringify(opts.numClasses)}`,
      'pass e.g. numClasses: 10',
    );
  }
  const seed = opts.seed ?? DEFAULT_SEED;
  if (typeof seed !== 'number' || !Number.isInteger(seed)) {
    throw invalid(
      modelId,
      'seed',
      `seed must be an integer, got ${JSON.stringify(opts.seed)}`,
      'pass an integer seed such as 42, or omit it',
    );
  }
  return { inputShape: [shape[0], shape[1], shape[2]], numClasses: opts.numClasses, seed, raw: opts };
}

/** Reads an optional list of positive integers (layer widths). */
export function intListOption(
  modelId: string,
  opts: ModelBuildOptions,
  key: string,
  fallback: number[],
): number[] {
  const v = opts[key];
  if (v === undefined) return [...fallback];
  if (!Array.isArray(v) || v.length === 0 || !v.every(isPositiveInt)) {
    throw invalid(
      modelId,
      key,
      `${key} must be a non-empty list of positive integers, got ${JSON.stringify(v)}`,
      `pass e.g. ${key}: ${JSON.stringify(fallback)}`,
    );
  }
  return [...(v as number[])];
}

/** Reads an optional positive integer. */
export function intOption(modelId: string, opts: ModelBuildOptions, key: string, fallback: number): number {
  const v = opts[key];
  if (v === undefined) return fallback;
  if (!isPositiveInt(v)) {
    throw invalid(
      modelId,
      key,
      `${key} must be a positive integer, got ${JSON.stringify(v)}`,
      `pass e.g. ${key}: ${fallback}`,
    );
  }
  return v;
}

/** Reads an optional rate in [0, 1). */
export function rateOption(modelId: string, opts: ModelBuildOptions, key: string, fallback: number): number {
  const v = opts[key];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !(v >= 0 && v < 1)) {
    throw invalid(
      modelId,
      key,
      `${key} must be a number in [0, 1), got ${JSON.stringify(v)}`,
      `pass e.g. ${key}: ${fallback}`,
    );
  }
  return v;
}

/**
 * Seed of one layer, derived from the build seed and the layer's (stable) name: FNV-1a of the name
 * mixed with the seed through a murmur3 finaliser. Depends only on (seed, name), so adding a layer
 * never reshuffles the initial weights of the others.
 */
export function layerSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  h ^= Math.imul(seed >>> 0, 0x9e3779b1) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** Glorot-uniform kernel initialiser seeded for one layer (dense layers, logits). */
export function glorot(seed: number, name: string) {
  return initializers.glorotUniform({ seed: layerSeed(seed, name) });
}

/** He-normal kernel initialiser seeded for one layer (ReLU convolutions). */
export function he(seed: number, name: string) {
  return initializers.heNormal({ seed: layerSeed(seed, name) });
}
