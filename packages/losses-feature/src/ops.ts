import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';

/** torch `F.normalize`'s default eps: x / max(‖x‖₂, eps). */
export const NORM_EPS = 1e-12;

/** `[B, ...]` → `[B, D]`. */
export function flatten2d(x: Tensor): tf.Tensor2D {
  return tf.reshape(x, [x.shape[0] as number, -1]) as tf.Tensor2D;
}

/**
 * ‖x‖₂ along `axis` (kept), floored at eps: sqrt(max(Σ x², eps²)). The floor is taken *before* the
 * square root so that an all-zero row has a zero gradient instead of tfjs's sqrt'(0) = ∞ → NaN.
 */
export function safeNorm(x: Tensor, axis: number, eps = NORM_EPS): Tensor {
  return tf.sqrt(tf.maximum(tf.sum(tf.square(x), axis, true), eps * eps));
}

/** torch `F.normalize(x, p=2, dim=axis)`: x / max(‖x‖₂, eps); a zero row stays zero. */
export function l2Normalize(x: Tensor, axis = -1, eps = NORM_EPS): Tensor {
  return tf.div(x, safeNorm(x, axis < 0 ? x.rank + axis : axis, eps));
}

/**
 * torch `F.smooth_l1_loss(a, b)` (β = 1) summed elementwise, unreduced: 0.5 d² for |d| < 1, |d| − 0.5
 * otherwise, as q·(d − q/2) with q = clip(d, −1, 1). No `abs`, so the gradient at d = 0 is exactly 0.
 */
export function smoothL1(a: Tensor, b: Tensor): Tensor {
  const d = tf.sub(a, b);
  const q = tf.clipByValue(d, -1, 1);
  return tf.mul(q, tf.sub(d, tf.mul(q, 0.5)));
}

/**
 * The (out × in) averaging matrix of torch's `adaptive_avg_pool` along one axis: output cell i
 * averages inputs floor(i·in/out) … ceil((i+1)·in/out) − 1.
 */
export function adaptivePoolMatrix(inSize: number, outSize: number): number[][] {
  return Array.from({ length: outSize }, (_, i) => {
    const start = Math.floor((i * inSize) / outSize);
    const end = Math.ceil(((i + 1) * inSize) / outSize);
    return Array.from({ length: inSize }, (_, j) => (j >= start && j < end ? 1 / (end - start) : 0));
  });
}

/**
 * torch `F.adaptive_avg_pool2d` on an NHWC tensor, as two matrix products (differentiable, any
 * sizes, including the non-divisible 7 → 3 that `tf.avgPool` cannot express).
 */
export function adaptiveAvgPool2d(x: tf.Tensor4D, size: [number, number]): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  const [oh, ow] = size;
  if (oh === h && ow === w) return x;
  return tf.tidy(() => {
    const ph = tf.tensor2d(adaptivePoolMatrix(h, oh)); // [oh, h]
    const pw = tf.tensor2d(adaptivePoolMatrix(w, ow)); // [ow, w]
    // rows: [B, H, W·C] → [B, oh, W·C]
    const rows = tf.matMul(tf.tile(tf.expandDims(ph, 0), [b, 1, 1]) as tf.Tensor3D, tf.reshape(x, [b, h, w * c]) as tf.Tensor3D);
    // columns: [B·oh, W, C] → [B·oh, ow, C]
    const cols = tf.matMul(tf.tile(tf.expandDims(pw, 0), [b * oh, 1, 1]) as tf.Tensor3D, tf.reshape(rows, [b * oh, w, c]) as tf.Tensor3D);
    return tf.reshape(cols, [b, oh, ow, c]) as tf.Tensor4D;
  });
}

/**
 * RepDistiller's spatial matching (AT, NST, FT, FSP): the larger map is adaptive-average-pooled to
 * the smaller one's size. Shapes must be ordered (both sides ≥ or both ≤), which `create` checks.
 */
export function poolToSmaller(a: tf.Tensor4D, b: tf.Tensor4D): [tf.Tensor4D, tf.Tensor4D] {
  const [ha, wa] = [a.shape[1], a.shape[2]];
  const [hb, wb] = [b.shape[1], b.shape[2]];
  if (ha === hb && wa === wb) return [a, b];
  if (ha >= hb && wa >= wb) return [adaptiveAvgPool2d(a, [hb, wb]), b];
  return [a, adaptiveAvgPool2d(b, [ha, wa])];
}

/** True if two [H, W, …] shapes can be matched by pooling the larger one (both axes ordered alike). */
export function spatiallyOrdered(a: number[], b: number[]): boolean {
  return (a[0] >= b[0] && a[1] >= b[1]) || (a[0] <= b[0] && a[1] <= b[1]);
}

/** Σ of scalars, or 0 for an empty list. */
export function sumScalars(xs: Scalar[]): Scalar {
  return (xs.length === 1 ? xs[0] : tf.addN(xs)) as Scalar;
}
