import * as tf from '@tensorflow/tfjs-core';
import type { RecordedTerm } from '@tfkd/kd-core/testing';
import type { RoleInfo } from '@tfkd/kd-core';

export function studentRoles(k: number): RoleInfo[] {
  return Array.from({ length: k }, (_, i) => ({ name: `student.${i}`, kind: 'student' as const, trainable: true }));
}

export { lossTerms, type RecordedTerm } from '@tfkd/kd-core/testing';

/** Σ weight · value, as the engine sums the terms. */
export function total(terms: RecordedTerm[]): tf.Scalar {
  return tf.addN(terms.map((t) => tf.mul(t.value, t.weight))) as tf.Scalar;
}

/** Values of the terms by name (unweighted). */
export function values(terms: RecordedTerm[]): Record<string, number> {
  return Object.fromEntries(terms.map((t) => [t.name, t.value.dataSync()[0]]));
}

export function softmax(row: number[], temperature = 1): number[] {
  const z = row.map((v) => v / temperature);
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** |a − e| ≤ tol · max(1, |e|). */
export function expectClose(actual: number, expected: number, tol = 1e-5): void {
  const err = Math.abs(actual - expected) / Math.max(1, Math.abs(expected));
  if (!(err <= tol)) throw new Error(`expected ${actual} to be within ${tol} of ${expected}`);
}

// Two samples, three classes; labels [1, 2]. Softmax at T = 1 (float64, hand-checked):
// p0 = [[0.231224, 0.628532, 0.140244], [0.201187, 0.060596, 0.738216]]
// p1 = [[0.665241, 0.244728, 0.090031], [0.099624, 0.164252, 0.736125]]
// p2 = [[0.274069, 0.274069, 0.451863], [0.628532, 0.140244, 0.231224]]
export const Z0 = [
  [1, 2, 0.5],
  [0.2, -1, 1.5],
];
export const Z1 = [
  [2, 1, 0],
  [0, 0.5, 2],
];
export const Z2 = [
  [0.5, 0.5, 1],
  [1, -0.5, 0],
];
export const Y = [1, 2];
