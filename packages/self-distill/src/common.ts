import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { KdError, klBatchMean, oneHotFloat } from '@tfkd/kd-core';
import { z } from 'zod';

/**
 * How a KL divergence is reduced. `batchmean`: summed over classes, averaged over the batch (the
 * definition, PyTorch `kl_div(reduction='batchmean')`). `mean`: averaged over all B·K entries, i.e.
 * batchmean / K — what `nn.KLDivLoss()` does with its default `reduction='mean'` (PyTorch 1.x), and
 * so what the Tf-KD reference code and KD-Lib compute.
 */
export type KlReduction = 'batchmean' | 'mean';

export const klReductionOption = (def: KlReduction, where: string) =>
  z
    .enum(['batchmean', 'mean'])
    .default(def)
    .describe(`KL reduction: 'batchmean' (sum over classes, mean over the batch) or 'mean' (over all B·K entries = batchmean / K, nn.KLDivLoss()); default '${def}': ${where}`);

/** KL(p ‖ q) from log-probabilities `[B, K]`, reduced as asked. */
export function klDivergence(logP: Tensor, logQ: Tensor, reduction: KlReduction): Scalar {
  return tf.tidy(() => {
    const bm = klBatchMean(logP, logQ);
    return (reduction === 'batchmean' ? bm : tf.div(bm, logP.shape[logP.rank - 1] as number)) as Scalar;
  });
}

/**
 * The virtual teacher of Tf-KD (Yuan et al. 2020): for each sample a probability vector with `a`
 * on the true class and (1 − a)/(K − 1) on every other class. `[B, K]` float32.
 *
 * `labels` may be soft targets `[B, K]` (mixup/CutMix, `labelTargets`): the virtual teacher is then
 * the targets' mixture of the per-label ones, Σ_c t_c·v(c) = rest + (a − rest)·t.
 */
export function virtualTeacher(labels: Tensor, numClasses: number, correctProb: number): Tensor {
  if (!(correctProb > 0 && correctProb < 1) || numClasses < 2) {
    throw new KdError('KD_PLUGIN_OPTIONS', `virtual teacher: correctProb must be in (0, 1) and K ≥ 2, got ${correctProb} and K = ${numClasses}`, {
      fix: 'use e.g. correctProb: 0.9',
    });
  }
  const rest = (1 - correctProb) / (numClasses - 1);
  return tf.tidy(() => {
    const onehot = labels.rank === 2 ? tf.cast(labels, 'float32') : oneHotFloat(labels, numClasses);
    return tf.add(tf.mul(onehot, correctProb - rest), rest);
  });
}

export const alphaOption = (def: number, where: string) =>
  z.number().min(0).max(1).default(def).describe(`α: the distillation term has weight α, the cross-entropy 1 − α; default ${def}: ${where}`);
