/**
 * Plain-double (float64) reference arithmetic for the tests, independent of tfjs: expected values
 * are computed with these loops and Math.* only.
 */
import * as tf from '@tensorflow/tfjs-core';

export type Matrix = number[][];

export function expectClose(actual: number, expected: number, tol = 1e-5): void {
  const err = Math.abs(actual - expected) / Math.max(1, Math.abs(expected));
  if (!(err <= tol)) throw new Error(`expected ${expected}, got ${actual} (rel. error ${err} > ${tol})`);
}

/** Deterministic pseudo-random values in [lo, hi) (LCG), for tiny test tensors. */
export function values(n: number, seed: number, lo = -1, hi = 1): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return lo + ((s >>> 8) / 2 ** 24) * (hi - lo);
  });
}

export const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
export const dot = (a: number[], b: number[]): number => a.reduce((s, v, i) => s + v * b[i], 0);
export const norm = (a: number[]): number => Math.sqrt(dot(a, a));
export const normalize = (a: number[], eps = 1e-12): number[] => a.map((v) => v / Math.max(norm(a), eps));

/** rows of a flat [B, D] array. */
export function rows(flat: number[], b: number): Matrix {
  const d = flat.length / b;
  return Array.from({ length: b }, (_, i) => flat.slice(i * d, (i + 1) * d));
}

/** NHWC flat array → per sample, per channel: [b][c][h·w]. */
export function channels(flat: number[], shape: [number, number, number, number]): number[][][] {
  const [b, h, w, c] = shape;
  return Array.from({ length: b }, (_, n) =>
    Array.from({ length: c }, (_, k) => Array.from({ length: h * w }, (_, p) => flat[(n * h * w + p) * c + k])),
  );
}

export function smoothL1(d: number): number {
  const a = Math.abs(d);
  return a < 1 ? 0.5 * d * d : a - 0.5;
}

/** Read a scalar and dispose it. */
export function num(t: tf.Tensor): number {
  const v = t.dataSync()[0];
  t.dispose();
  return v;
}
