import { KdError, logSoftmaxT, stopGradient } from '@tfkd/kd-core';
import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { checkShape, maskTensor, type MaskLike } from './common';

export interface DetLogitKdOptions {
  /** T. Default 1. */
  temperature: number;
  /** Weight of background (Chen et al.: w_0 = 1.5 for the background class). Default 1.5. */
  backgroundWeight: number;
  /**
   * `sigmoid` (default; the zoo detector's per-class sigmoid head, K logits): per-class Bernoulli
   * KL, background weighting per location. `softmax`: C logits with a background class, Chen et
   * al.'s class-weighted soft cross-entropy.
   */
  activation?: 'sigmoid' | 'softmax';
  /** softmax: index of the background class. Default C − 1 (mmdet's order). */
  backgroundIndex?: number;
}

/** log σ(x) and log(1 − σ(x)) = log σ(−x), stable: −softplus(∓x). */
const logSigmoid = (x: Tensor) => tf.neg(tf.softplus(tf.neg(x)));

/**
 * Class-head distillation with background weighting, after Chen et al. (NeurIPS 2017).
 *
 * `sigmoid`: q = σ(z/T) per class; per location
 * `D = T² · Σ_k [q_t log(q_t/q_s) + (1 − q_t) log((1 − q_t)/(1 − q_s))]`, and
 * `L = Σ_loc w·D / Σ_loc w`, w = 1 at foreground locations (the positives of the assignment),
 * `backgroundWeight` elsewhere — Chen's weight of the background class moved to background
 * locations, as a dense head has no background class.
 *
 * `softmax`: p = softmax(z/T) over C classes (background included);
 * `L = −T² · mean_loc Σ_c w_c p_t,c log p_s,c`, w_c = `backgroundWeight` for the background class,
 * 1 otherwise (the reference L_soft; its gradient equals that of the weighted KL). `foreground` is
 * not used.
 *
 * @param student class logits [N, L, K] (or [N, L, C] for softmax)
 * @param teacher same shape (no gradient)
 * @param foreground [N, L], 1 at foreground locations (sigmoid)
 */
export function detLogitKd(student: Tensor, teacher: Tensor, foreground: MaskLike | undefined, opts: DetLogitKdOptions): Scalar {
  checkShape(teacher, student.shape, 'det-logit-kd teacher logits');
  const t = opts.temperature;
  return tf.tidy(() => {
    const zt = stopGradient(teacher);
    if ((opts.activation ?? 'sigmoid') === 'softmax') {
      const c = student.shape[student.shape.length - 1];
      const bg = opts.backgroundIndex ?? c - 1;
      if (!(bg >= 0 && bg < c)) throw new KdError('KD_PLUGIN_OPTIONS', `det-logit-kd: backgroundIndex ${bg} is not one of the ${c} classes`, { fix: `pass 0…${c - 1}` });
      const w = tf.tensor1d(Array.from({ length: c }, (_, k) => (k === bg ? opts.backgroundWeight : 1)));
      const pt = tf.exp(logSoftmaxT(zt, t));
      const ce = tf.neg(tf.sum(tf.mul(tf.mul(pt, logSoftmaxT(student, t)), w), -1));
      return tf.mul(tf.mean(ce), t * t) as Scalar;
    }
    const [n, l] = student.shape;
    const fg = foreground === undefined ? tf.zeros([n, l]) : maskTensor(foreground, [n, l], 'det-logit-kd foreground');
    const xs = tf.div(student, t);
    const xt = tf.div(zt, t);
    const qt = tf.sigmoid(xt);
    const kl = tf.add(
      tf.mul(qt, tf.sub(logSigmoid(xt), logSigmoid(xs))),
      tf.mul(tf.sub(1, qt), tf.sub(logSigmoid(tf.neg(xt)), logSigmoid(tf.neg(xs)))),
    );
    const perLoc = tf.mul(tf.sum(kl, -1), t * t);
    const w = tf.add(fg, tf.mul(tf.sub(1, fg), opts.backgroundWeight));
    return tf.div(tf.sum(tf.mul(perLoc, w)), tf.maximum(tf.sum(w), 1e-12)) as Scalar;
  });
}
