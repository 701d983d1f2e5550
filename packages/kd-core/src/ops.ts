import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { KdError } from './errors';

/**
 * Identity in the forward pass, zero gradient in the backward pass. tfjs has no stopGradient; this is
 * what DML/ONE peers' targets, BYOT's deepest head and every teacher-side term go through.
 */
export function stopGradient<T extends Tensor>(x: T): T {
  const f = tf.customGrad(((input: Tensor) => ({
    value: tf.clone(input),
    gradFunc: (dy: Tensor) => tf.zerosLike(dy),
  })) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x) as T;
}

/** log softmax(z / T) along the last axis. */
export function logSoftmaxT(z: Tensor, temperature = 1): Tensor {
  return tf.logSoftmax(temperature === 1 ? z : tf.div(z, temperature));
}

export function softmaxT(z: Tensor, temperature = 1): Tensor {
  return tf.softmax(temperature === 1 ? z : tf.div(z, temperature));
}

/**
 * KL(p ‖ q) = Σ p (log p − log q), summed over classes, averaged over the batch (PyTorch's
 * `kl_div(log q, p, reduction='batchmean')`). Terms with p = 0 contribute 0.
 */
export function klBatchMean(logP: Tensor, logQ: Tensor): Scalar {
  return tf.tidy(() => {
    const p = tf.exp(logP);
    const term = tf.mul(p, tf.sub(logP, logQ));
    const safe = tf.where(tf.greater(p, 0), term, tf.zerosLike(term));
    return tf.div(tf.sum(safe), logP.shape[0] as number) as Scalar;
  });
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
