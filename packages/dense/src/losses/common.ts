import { KdError } from '@tfkd/kd-core';
import * as tf from '@tensorflow/tfjs-core';
import type { Tensor } from '@tensorflow/tfjs-core';
import { integral } from '../box-ops';

/** A mask or weight map given as a tensor or as plain numbers (a target computed on the host). */
export type MaskLike = Tensor | ArrayLike<number>;

/** The mask as a float tensor of `shape` (plain arrays are copied in; tensors must already match). */
export function maskTensor(m: MaskLike, shape: number[], what: string): Tensor {
  if (m instanceof tf.Tensor) {
    checkShape(m, shape, what);
    return tf.cast(m, 'float32');
  }
  const n = shape.reduce((a, b) => a * b, 1);
  if (m.length !== n) throw new KdError('KD_SHAPE_MISMATCH', `${what}: ${m.length} values for shape [${shape}] (${n})`, { fix: 'compute the mask for the same batch and layout as the outputs' });
  return tf.tensor(m as ArrayLike<number> as number[], shape, 'float32');
}

export function checkShape(t: Tensor, shape: number[], what: string): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new KdError('KD_SHAPE_MISMATCH', `${what}: expected shape [${shape}], got [${t.shape}]`, {
      fix: 'pass outputs, teacher outputs and targets of the same batch and layout',
    });
  }
}

/** Distances [N, L, 4]: the integral of box logits [N, L, 4, n+1], or the tensor itself when it already ends in 4. */
export function asDistances(t: Tensor): Tensor {
  return t.rank === 4 ? integral(t) : t;
}
