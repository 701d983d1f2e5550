import * as tf from '@tensorflow/tfjs-core';
import './gradients';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { KdError } from './errors';

/**
 * Identity in the forward pass, zero gradient in the backward pass. tfjs has no stopGradient; this is
 * what DML/ONE peers' targets, BYOT's deepest head and every teacher-side term go through.
 * The stopped tensor stays on the gradient tape: ops without a gradient (comparisons, argMax)
 * applied to it still break the backward pass when it depends on trainable variables.
 */
export function stopGradient<T extends Tensor>(x: T): T {
  const f = tf.customGrad(((input: Tensor) => ({
    value: tf.clone(input),
    gradFunc: (dy: Tensor) => tf.zerosLike(dy),
  })) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x) as T;
}

/**
 * The logits of a forward pass: a model's first output. Models with auxiliary outputs after the
 * logits (BYOT's early-exit heads) return an array from `apply`/`predict`; the rest of the engine
 * only ever needs the first.
 */
export function firstOutput(out: Tensor | Tensor[]): Tensor {
  return Array.isArray(out) ? (out[0] as Tensor) : out;
}

/** log softmax(z / T) along the last axis. */
export function logSoftmaxT(z: Tensor, temperature = 1): Tensor {
  return tf.logSoftmax(temperature === 1 ? z : tf.div(z, temperature));
}

export function softmaxT(z: Tensor, temperature = 1): Tensor {
  return tf.softmax(temperature === 1 ? z : tf.div(z, temperature));
}

/** Floor for log-probabilities in `klRows`: −∞ becomes −1e30, so a p = 0 entry contributes 0, not NaN. */
const LOG_FLOOR = -1e30;

/**
 * Per-row KL(p ‖ q) = Σ_k p (log p − log q) from log-probabilities `[B, K]` → `[B]`. Entries with
 * p = 0 (underflow, masked classes) contribute 0, as in torch's `kl_div` (xlogy).
 *
 * No comparison op (`tf.greater` + `tf.where`) is used: a target that went through `stopGradient`
 * is still on the gradient tape when it depends on trainable variables (a DML peer), and tfjs then
 * fails on ops without a gradient ("gradient function not found for Greater"). `tf.maximum` has a
 * gradient; with finite logits the floor never binds.
 */
export function klRows(logP: Tensor, logQ: Tensor): tf.Tensor1D {
  return tf.tidy(() => {
    const lp = tf.maximum(logP, LOG_FLOOR);
    const lq = tf.maximum(logQ, LOG_FLOOR);
    return tf.sum(tf.mul(tf.exp(lp), tf.sub(lp, lq)), 1) as tf.Tensor1D;
  });
}

/** KL(p ‖ q) summed over classes, averaged over the batch (PyTorch `kl_div(..., reduction='batchmean')`). */
export function klBatchMean(logP: Tensor, logQ: Tensor): Scalar {
  return tf.tidy(() => tf.mean(klRows(logP, logQ)) as Scalar);
}

/** Throw KD_SHAPE_MISMATCH unless the shapes are equal. */
export function assertSameShape(a: Tensor, b: Tensor, what: string, path?: string): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new KdError('KD_SHAPE_MISMATCH', `${what}: shapes [${a.shape}] and [${b.shape}] differ`, {
      path,
      fix: 'pair taps/outputs of the same shape, or ask for an adapter (connector) in the plugin options',
    });
  }
}

/** One-hot float targets from int labels. */
export function oneHotFloat(labels: Tensor, numClasses: number): Tensor {
  return tf.cast(tf.oneHot(tf.cast(labels, 'int32') as tf.Tensor1D, numClasses), 'float32');
}
