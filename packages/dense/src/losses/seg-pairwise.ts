import { KdError, stopGradient } from '@tfkd/kd-core';
import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';

export interface PairwiseOptions {
  /** Node size as a fraction of the map: max-pool kernel = stride = ⌊h·scale⌋ × ⌊w·scale⌋ (ceil mode). Default 0.5 (reference `--pool-scale`). */
  scale: number;
}

/** Max-pool with kernel = stride = k and torch's ceil_mode (a last partial window), no padding. */
function poolCeil(f: Tensor, kh: number, kw: number): Tensor {
  const [, h, w] = f.shape;
  const ph = Math.ceil(h / kh) * kh - h;
  const pw = Math.ceil(w / kw) * kw - w;
  const padded = ph || pw ? tf.pad(f, [[0, 0], [0, ph], [0, pw], [0, 0]], -3.4e38) : f;
  return kh === 1 && kw === 1 ? padded : tf.maxPool(padded as tf.Tensor4D, [kh, kw], [kh, kw], 'valid');
}

/** Cosine similarity of every pair of nodes: [N, M, M], M = h·w; the norm is treated as a constant (detached), as the reference. */
function similarity(f: Tensor): Tensor {
  const [n, h, w, c] = f.shape;
  const flat = tf.reshape(f, [n, h * w, c]);
  const norm = tf.add(tf.sqrt(tf.sum(tf.square(stopGradient(flat)), -1, true)), 1e-8);
  const unit = tf.div(flat, norm);
  return tf.matMul(unit, unit, false, true);
}

/**
 * Pair-wise distillation (Liu et al., CVPR 2019): feature maps [N, h, w, C] are max-pooled into
 * nodes (kernel ⌊h·scale⌋ × ⌊w·scale⌋, ceil mode), a_ij = cosine similarity of nodes i and j, and
 * `L = Σ_{n,i,j} (a^t_ij − a^s_ij)² / (M² · N)` with M nodes per image — irfanICMLL/structure_knowledge_distillation
 * `utils/utils.py` `sim_dis_compute` and `CriterionPairWiseforWholeFeatAfterPool` (the L2 norm
 * detached, + 1e−8). Channel counts may differ between student and teacher; the spatial sizes must agree.
 */
export function segPairwise(student: Tensor, teacher: Tensor, opts: PairwiseOptions): Scalar {
  if (student.rank !== 4 || teacher.rank !== 4 || student.shape[0] !== teacher.shape[0] || student.shape[1] !== teacher.shape[1] || student.shape[2] !== teacher.shape[2]) {
    throw new KdError('KD_SHAPE_MISMATCH', `seg-pairwise: student [${student.shape}] and teacher [${teacher.shape}] differ in batch or spatial size`, {
      fix: 'pair feature maps of the same spatial size (channels may differ)',
    });
  }
  return tf.tidy(() => {
    const [, h, w] = teacher.shape;
    const kh = Math.max(1, Math.floor(h * opts.scale));
    const kw = Math.max(1, Math.floor(w * opts.scale));
    const as = similarity(poolCeil(student, kh, kw));
    const at = similarity(poolCeil(stopGradient(teacher), kh, kw));
    const m = as.shape[1] as number;
    return tf.div(tf.sum(tf.square(tf.sub(at, as))), m * m * student.shape[0]) as Scalar;
  });
}
