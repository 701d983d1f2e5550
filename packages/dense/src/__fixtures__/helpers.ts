import * as tf from '@tensorflow/tfjs-core';

/** |a − b| ≤ tol · max(1, |b|). */
export function expectClose(a: number, b: number, tol = 1e-5): void {
  if (!(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)))) throw new Error(`expected ${a} to be within ${tol} (relative) of ${b}`);
}

/** The value of a scalar-returning call, with its result disposed. */
export function value(f: () => tf.Scalar): number {
  const s = f();
  const v = s.dataSync()[0];
  s.dispose();
  return v;
}

/** Tensors left behind by one value and one gradient of g at x (g's result and the gradient disposed). */
export function leaked(g: (x: tf.Tensor) => tf.Scalar, x: tf.Tensor): number {
  const before = tf.memory().numTensors;
  tf.dispose(g(x));
  tf.dispose(tf.grad(g)(x));
  return tf.memory().numTensors - before;
}
