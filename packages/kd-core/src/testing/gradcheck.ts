import * as tf from '@tensorflow/tfjs-core';

/**
 * Central finite differences of a scalar function at x (float64 arithmetic on the outside,
 * float32 inside tfjs): returns the analytic gradient, the numeric one, and the max relative error
 * `max|a − n| / max(1e-3, max|n|)`.
 */
export function finiteDifferenceCheck(
  f: (x: tf.Tensor) => tf.Scalar,
  x0: number[] | Float32Array,
  shape: number[],
  eps = 1e-2,
): { analytic: Float32Array; numeric: Float64Array; maxRelError: number } {
  const analytic = tf.tidy(() => tf.grad(f)(tf.tensor(x0, shape)).dataSync() as Float32Array);
  const base = Float64Array.from(x0);
  const numeric = new Float64Array(base.length);
  const at = (v: Float64Array) => tf.tidy(() => f(tf.tensor(Float32Array.from(v), shape)).dataSync()[0]);
  for (let i = 0; i < base.length; i++) {
    const plus = Float64Array.from(base);
    const minus = Float64Array.from(base);
    plus[i] += eps;
    minus[i] -= eps;
    numeric[i] = (at(plus) - at(minus)) / (2 * eps);
  }
  let maxErr = 0;
  let scale = 1e-3;
  for (let i = 0; i < base.length; i++) {
    maxErr = Math.max(maxErr, Math.abs(analytic[i] - numeric[i]));
    scale = Math.max(scale, Math.abs(numeric[i]));
  }
  return { analytic, numeric, maxRelError: maxErr / scale };
}

/** Run `f` inside a tidy scope and return its plain (non-tensor) result: every tensor it made is freed. */
export function tidyValue<T>(f: () => T): T {
  let out!: T;
  tf.tidy(() => {
    out = f();
  });
  return out;
}
