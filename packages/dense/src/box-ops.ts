/** Tensor helpers for GFL-style box heads. */
import * as tf from '@tensorflow/tfjs-core';
import type { Tensor } from '@tensorflow/tfjs-core';
import { locationTable, type DetectorLayout } from './layout';

/**
 * GFL's integral: the expected value Σ_i i·softmax(logits)_i of each distribution over 0..n
 * (last axis) → the distances in strides, shape without the last axis.
 */
export function integral(boxLogits: Tensor): Tensor {
  return tf.tidy(() => {
    const n = boxLogits.shape[boxLogits.shape.length - 1];
    return tf.sum(tf.mul(tf.softmax(boxLogits), tf.range(0, n, 1, 'float32')), -1);
  });
}

/** Distances l, t, r, b in strides [N, L, 4] → boxes x1, y1, x2, y2 in pixels [N, L, 4] (not clipped). */
export function distancesToBoxes(distances: Tensor, layout: DetectorLayout): tf.Tensor3D {
  const t = locationTable(layout);
  return tf.tidy(() => {
    const L = layout.locations;
    const s = tf.tensor3d(t.stride, [1, L, 1]);
    const d = tf.mul(distances, s);
    const cx = tf.tensor3d(t.x, [1, L, 1]);
    const cy = tf.tensor3d(t.y, [1, L, 1]);
    const [l, tp, r, b] = tf.split(d, 4, 2);
    return tf.concat([tf.sub(cx, l), tf.sub(cy, tp), tf.add(cx, r), tf.add(cy, b)], 2) as tf.Tensor3D;
  });
}

/**
 * 1 − GIoU of aligned boxes [..., 4] (x1, y1, x2, y2), as mmdet's `giou_loss` (eps 1e-6 in the
 * union and enclosing area). Shape: the boxes' shape without the last axis.
 */
export function giouLoss(pred: Tensor, target: Tensor, eps = 1e-6): Tensor {
  return tf.tidy(() => {
    const [px1, py1, px2, py2] = tf.unstack(pred, -1);
    const [tx1, ty1, tx2, ty2] = tf.unstack(target, -1);
    const areaP = tf.mul(tf.sub(px2, px1), tf.sub(py2, py1));
    const areaT = tf.mul(tf.sub(tx2, tx1), tf.sub(ty2, ty1));
    const iw = tf.relu(tf.sub(tf.minimum(px2, tx2), tf.maximum(px1, tx1)));
    const ih = tf.relu(tf.sub(tf.minimum(py2, ty2), tf.maximum(py1, ty1)));
    const inter = tf.mul(iw, ih);
    const union = tf.add(tf.sub(tf.add(areaP, areaT), inter), eps);
    const ew = tf.relu(tf.sub(tf.maximum(px2, tx2), tf.minimum(px1, tx1)));
    const eh = tf.relu(tf.sub(tf.maximum(py2, ty2), tf.minimum(py1, ty1)));
    const enclose = tf.add(tf.mul(ew, eh), eps);
    const giou = tf.sub(tf.div(inter, union), tf.div(tf.sub(enclose, union), enclose));
    return tf.sub(1, giou);
  });
}
