import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import type { Rng } from '@tfkd/kd-core';
import { l2Normalize } from './ops';

/**
 * CRD's memory-bank NCE (Tian et al. 2020), as RepDistiller `crd/memory.py` (ContrastMemory) and
 * `crd/criterion.py` (ContrastLoss), as plain functions on tensors. Notation: v1 = student
 * embeddings, v2 = teacher embeddings [B, d] (l2-normalised); memory_v1 / memory_v2 [N, d] hold one
 * row per training sample; `idx` [B, K+1] holds, per row, the sample's own index then K negatives.
 */

/** RepDistiller `crd/criterion.py` eps. */
export const NCE_EPS = 1e-7;

/**
 * exp(memory[idx[b, j]] · v[b] / T) [B, K+1] (`torch.bmm(weight, v)` then `exp(·/T)`). Computed as
 * the full score matrix v · memoryᵀ [B, N] and a gather: O(B·N·d) time, O(B·N) memory, instead of
 * materialising the [B, K+1, d] rows (B·16385·128 floats). `memory` is a constant: gradients reach v only.
 */
export function memoryScores(v: Tensor, memory: Tensor, idx: Int32Array, temperature: number): tf.Tensor2D {
  return tf.tidy(() => {
    const [b] = v.shape as number[];
    const n = memory.shape[0] as number;
    const k1 = idx.length / b;
    const scores = tf.reshape(tf.matMul(v as tf.Tensor2D, memory as tf.Tensor2D, false, true), [b * n]);
    const flat = new Int32Array(idx.length);
    for (let i = 0; i < b; i++) for (let j = 0; j < k1; j++) flat[i * k1 + j] = i * n + idx[i * k1 + j];
    const picked = tf.reshape(tf.gather(scores, tf.tensor1d(flat, 'int32')), [b, k1]);
    return tf.exp(tf.div(picked, temperature)) as tf.Tensor2D;
  });
}

/**
 * The normalisation constant the reference sets on its first batch: Z = mean(exp-scores) · N
 * (`self.params[2] = out_v1.mean() * outputSize`), then fixed for the rest of training.
 */
export function estimateZ(expScores: Tensor, nData: number): number {
  return tf.tidy(() => tf.mean(expScores).dataSync()[0] * nData);
}

/**
 * RepDistiller `ContrastLoss` (Eq. 18) on x = exp-scores / Z [B, K+1], positive in column 0, noise
 * distribution Pn = 1/N, m = K:
 * L = −( Σ_b log(x_b0 / (x_b0 + m·Pn + eps)) + Σ_{b, j≥1} log(m·Pn / (x_bj + m·Pn + eps)) ) / B.
 */
export function contrastLoss(x: Tensor, nData: number): Scalar {
  return tf.tidy(() => {
    const [b, k1] = x.shape as number[];
    const m = k1 - 1;
    const mPn = m / nData;
    const pos = tf.slice(x, [0, 0], [b, 1]);
    const neg = tf.slice(x, [0, 1], [b, m]);
    const logD1 = tf.log(tf.div(pos, tf.add(pos, mPn + NCE_EPS)));
    const logD0 = tf.log(tf.div(mPn, tf.add(neg, mPn + NCE_EPS)));
    return tf.div(tf.neg(tf.add(tf.sum(logD1), tf.sum(logD0))), b) as Scalar;
  });
}

/**
 * The memory after one batch: rows `rows` become normalize(momentum·memory[row] + (1 − momentum)·v),
 * the others are unchanged (`l_pos.mul_(momentum).add_(v·(1 − momentum))`, divided by its L2 norm,
 * `index_copy_`). Returns a new tensor; `memory` is not modified. Rows must be distinct (a batch's
 * sample indices are).
 *
 * Built from scatterND + where, not `tf.tensorScatterUpdate`: tfjs-backend-cpu 4.22's
 * TensorScatterUpdate writes into its input's buffer, which would change `memory` itself (and any
 * tensor sharing its data, such as a clone the gradient tape holds for the backward pass).
 */
export function memoryUpdate(memory: Tensor, rows: Int32Array, v: Tensor, momentum: number): tf.Tensor2D {
  return tf.tidy(() => {
    const [n, d] = memory.shape as [number, number];
    const r = tf.tensor1d(rows, 'int32');
    const mixed = tf.add(tf.mul(tf.gather(memory, r), momentum), tf.mul(v, 1 - momentum));
    const updated = l2Normalize(mixed, 1);
    const at = tf.reshape(r, [rows.length, 1]);
    const hit = tf.cast(tf.scatterND(at, tf.ones([rows.length, 1], 'int32'), [n, 1]), 'bool');
    return tf.where(hit, tf.scatterND(at, updated, [n, d]), memory) as tf.Tensor2D;
  });
}

/**
 * The memory's initial rows: U(−stdv, stdv), stdv = 1/√(d/3) (`torch.rand(N, d).mul_(2·stdv).add_(−stdv)`).
 */
export function initialMemory(n: number, dim: number, rng: Rng): Float32Array {
  const stdv = 1 / Math.sqrt(dim / 3);
  return Float32Array.from({ length: n * dim }, () => (2 * rng.next() - 1) * stdv);
}

/**
 * Per class c, the training samples of every other class: the negatives pool of RepDistiller's
 * `CIFAR100InstanceSample` in its default mode `exact` (`cls_negative`).
 */
export function negativePools(labels: Int32Array): Map<number, Int32Array> {
  const classes = [...new Set(labels)].sort((a, b) => a - b);
  return new Map(
    classes.map((c) => {
      const pool: number[] = [];
      labels.forEach((y, i) => {
        if (y !== c) pool.push(i);
      });
      return [c, Int32Array.from(pool)];
    }),
  );
}

/** The largest K every class can draw without replacement: the smallest pool. */
export function maxNegatives(pools: Map<number, Int32Array>): number {
  return Math.min(...[...pools.values()].map((p) => p.length));
}

/**
 * Contrast indices [B, K+1]: per row the sample itself (`pos_idx = index`, mode exact), then K
 * distinct negatives drawn uniformly from the other classes' samples (`np.random.choice(…,
 * replace=False)`; K must not exceed the pool). A partial Fisher–Yates on the pool, undone
 * afterwards, so the draws depend only on the Rng's stream.
 */
export function contrastIndices(batch: Int32Array, labels: Int32Array, pools: Map<number, Int32Array>, k: number, rng: Rng): Int32Array {
  const out = new Int32Array(batch.length * (k + 1));
  const swaps = new Int32Array(k);
  batch.forEach((sample, b) => {
    const pool = pools.get(labels[sample]) as Int32Array;
    out[b * (k + 1)] = sample;
    for (let j = 0; j < k; j++) {
      const r = j + rng.int(pool.length - j);
      swaps[j] = r;
      const t = pool[j];
      pool[j] = pool[r];
      pool[r] = t;
      out[b * (k + 1) + 1 + j] = pool[j];
    }
    for (let j = k - 1; j >= 0; j--) {
      const r = swaps[j];
      const t = pool[j];
      pool[j] = pool[r];
      pool[r] = t;
    }
  });
  return out;
}

/**
 * The CRD NCE loss of one batch given both memories and the constants: s_loss + t_loss with
 * out_v1 = exp(memory_v2[idx]·v1/T)/Z_v1 (student embedding against the teacher memory) and
 * out_v2 = exp(memory_v1[idx]·v2/T)/Z_v2 (teacher embedding against the student memory).
 */
export function crdMemoryLoss(
  v1: Tensor,
  v2: Tensor,
  memoryV1: Tensor,
  memoryV2: Tensor,
  idx: Int32Array,
  o: { temperature: number; zV1: number; zV2: number; nData: number },
): Scalar {
  return tf.tidy(() => {
    const outV1 = tf.div(memoryScores(v1, memoryV2, idx, o.temperature), o.zV1);
    const outV2 = tf.div(memoryScores(v2, memoryV1, idx, o.temperature), o.zV2);
    return tf.add(contrastLoss(outV1, o.nData), contrastLoss(outV2, o.nData)) as Scalar;
  });
}
