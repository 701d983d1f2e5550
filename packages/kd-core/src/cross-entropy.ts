import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import type { Batch } from './hooks';
import { oneHotFloat } from './ops';

export interface CrossEntropyOptions {
  /** ε in [0, 1): target (1 − ε)·onehot + ε/K. Default 0. */
  labelSmoothing?: number;
}

/**
 * Softmax cross-entropy of logits `z` [B, K] against integer labels `y` [B], mean over the batch,
 * with optional label smoothing: target = (1 − ε)·onehot(y) + ε/K (ε/K to every class, the true one
 * included) — the same as torch `F.cross_entropy(z, y, label_smoothing=ε)`. The one CE of the
 * project: `loss/cross-entropy`, DML/ONE's per-student terms, Tf-KD, born-again and BYOT use it.
 *
 * `y` may also be soft targets [B, K] (rows summing to 1: mixup/cutmix, `labelTargets`), used in
 * place of onehot(y) — torch's `F.cross_entropy` with class probabilities. Since CE is linear in the
 * target, CE(z, λ·onehot(a) + (1 − λ)·onehot(b)) = λ·CE(z, a) + (1 − λ)·CE(z, b), the form of the
 * mixup and CutMix reference code.
 */
export function crossEntropy(z: Tensor, y: Tensor, opts: CrossEntropyOptions = {}): Scalar {
  const eps = opts.labelSmoothing ?? 0;
  return tf.tidy(() => {
    const k = z.shape[z.rank - 1] as number;
    const onehot = y.rank === 2 ? tf.cast(y, 'float32') : oneHotFloat(y, k);
    const target = eps === 0 ? onehot : tf.add(tf.mul(onehot, 1 - eps), eps / k);
    const picked = tf.sum(tf.mul(target, tf.logSoftmax(z)), -1);
    return tf.neg(tf.mean(picked)) as Scalar;
  });
}

/**
 * What a loss trains on as labels: the batch's soft targets [B, K] when a mixing augmentation set
 * them, else its integer labels [B]. Either goes to `crossEntropy` as it is.
 */
export function labelTargets(batch: Pick<Batch, 'y' | 'targets'>): Tensor {
  return batch.targets ?? batch.y;
}
