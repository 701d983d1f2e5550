/**
 * The task losses a dense model is trained with from labels (the teachers, and the students'
 * label terms): GFL-style detection loss and per-pixel cross-entropy.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { distancesToBoxes, giouLoss, integral } from '../box-ops';
import type { DetectorHeads } from '../detector';
import type { DetectorLayout } from '../layout';
import { checkShape } from './common';

/** log(1 + e^−|x|) + max(x, 0) − x·y: binary cross-entropy with logits, stable. */
function bceWithLogits(x: Tensor, y: Tensor): Tensor {
  return tf.add(tf.sub(tf.relu(x), tf.mul(x, y)), tf.softplus(tf.neg(tf.abs(x))));
}

/**
 * Sigmoid focal loss (mmdet `py_sigmoid_focal_loss`): BCE(x, y) · (α·y + (1 − α)(1 − y)) · |y − σ(x)|^γ,
 * summed. α = 0.25, γ = 2.
 */
export function sigmoidFocalLoss(logits: Tensor, onehot: Tensor, alpha = 0.25, gamma = 2): Scalar {
  return tf.tidy(() => {
    const p = tf.sigmoid(logits);
    const pt = tf.abs(tf.sub(onehot, p));
    const w = tf.mul(tf.add(tf.mul(onehot, alpha), tf.mul(tf.sub(1, onehot), 1 - alpha)), tf.pow(pt, gamma));
    return tf.sum(tf.mul(bceWithLogits(logits, onehot), w)) as Scalar;
  });
}

/**
 * Distribution focal loss (GFL, mmdet `distribution_focal_loss`), per distribution:
 * −((⌊y⌋ + 1 − y)·log S_⌊y⌋ + (y − ⌊y⌋)·log S_⌊y⌋+1), y clamped to [0, n − 0.1] (`bbox2distance` eps).
 * @param logits [M, n+1]; @param y [M] distances in strides. Returns [M].
 */
export function distributionFocalLoss(logits: Tensor, y: Tensor): Tensor {
  return tf.tidy(() => {
    const bins = logits.shape[logits.shape.length - 1];
    const yc = tf.clipByValue(y, 0, bins - 1 - 0.1);
    const left = tf.floor(yc);
    const wl = tf.sub(tf.add(left, 1), yc);
    const wr = tf.sub(yc, left);
    const logp = tf.logSoftmax(logits);
    const li = tf.cast(left, 'int32');
    const pick = (idx: Tensor) => tf.sum(tf.mul(logp, tf.oneHot(idx as tf.Tensor1D, bins)), -1);
    return tf.neg(tf.add(tf.mul(wl, pick(li)), tf.mul(wr, pick(tf.add(li, tf.scalar(1, 'int32'))))));
  });
}

export interface DetectionLossOptions {
  /** Focal loss α, γ. Defaults 0.25, 2. */
  alpha?: number;
  gamma?: number;
  /** Weights of the GIoU and DFL terms. Defaults 2 and 0.25 (GFL). */
  giouWeight?: number;
  dflWeight?: number;
}

/** Targets as tensors ({@link targetTensors}). */
export interface DetectionTargetTensors {
  labels: Tensor;
  distances: Tensor;
  boxes: Tensor;
  positive: Tensor;
}

/**
 * FCOS/GFL-style training loss: focal loss over all locations and classes / N_pos, plus on
 * positives the mean GIoU loss of the decoded boxes (× 2) and the mean DFL over the 4 sides (× 0.25).
 * N_pos is at least 1, so an image without objects is trained on its background only. Returns the
 * total and its terms (unweighted).
 */
export function detectionLossTerms(heads: DetectorHeads, targets: DetectionTargetTensors, layout: DetectorLayout, opts: DetectionLossOptions = {}): { total: Scalar; cls: Scalar; giou: Scalar; dfl: Scalar } {
  const [n, l, k] = heads.cls.shape;
  checkShape(targets.labels, [n, l], 'detectionLoss labels');
  return tf.tidy(() => {
    const pos = tf.cast(targets.positive, 'float32');
    const npos = tf.maximum(tf.sum(pos), 1);
    const onehot = tf.reshape(tf.slice(tf.oneHot(tf.reshape(tf.cast(targets.labels, 'int32'), [n * l]) as tf.Tensor1D, k + 1), [0, 0], [n * l, k]), [n, l, k]);
    const cls = tf.div(sigmoidFocalLoss(heads.cls, tf.cast(onehot, 'float32'), opts.alpha ?? 0.25, opts.gamma ?? 2), npos) as Scalar;
    const pred = distancesToBoxes(integral(heads.box), layout);
    const giouPer = giouLoss(pred, targets.boxes);
    const giou = tf.div(tf.sum(tf.mul(giouPer, pos)), npos) as Scalar;
    const dflPer = tf.reshape(distributionFocalLoss(tf.reshape(heads.box, [n * l * 4, layout.regMax + 1]), tf.reshape(targets.distances, [n * l * 4])), [n, l, 4]);
    const dfl = tf.div(tf.sum(tf.mul(tf.mean(dflPer, -1), pos)), npos) as Scalar;
    const total = tf.addN([cls, tf.mul(giou, opts.giouWeight ?? 2), tf.mul(dfl, opts.dflWeight ?? 0.25)]) as Scalar;
    return { total, cls, giou, dfl };
  });
}

/** {@link detectionLossTerms}' total alone. */
export function detectionLoss(heads: DetectorHeads, targets: DetectionTargetTensors, layout: DetectorLayout, opts: DetectionLossOptions = {}): Scalar {
  return tf.tidy(() => detectionLossTerms(heads, targets, layout, opts).total);
}

/** Mean per-pixel softmax cross-entropy of logits [N, H, W, C] against class maps [N, H, W] (int). */
export function segmentationLoss(logits: Tensor, masks: Tensor): Scalar {
  return tf.tidy(() => {
    const c = logits.shape[logits.shape.length - 1];
    const z = tf.reshape(logits, [-1, c]);
    const y = tf.oneHot(tf.reshape(tf.cast(masks, 'int32'), [-1]) as tf.Tensor1D, c);
    return tf.neg(tf.mean(tf.sum(tf.mul(tf.logSoftmax(z), y), -1))) as Scalar;
  });
}
