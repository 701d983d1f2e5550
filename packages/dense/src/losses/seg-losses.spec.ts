import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { expectClose, leaked, value } from '../__fixtures__/helpers';
import { REF } from '../__fixtures__/loss-reference';
import { segPairwise } from './seg-pairwise';
import { segPixelKd } from './seg-pixel-kd';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('segPixelKd (Liu et al. 2019, pixel-wise)', () => {
  const P = REF.pk;
  const s = () => tf.tensor4d(P.s, [1, 2, 2, 3]);
  const t = () => tf.tensor4d(P.t, [1, 2, 2, 3]);

  it('T²·mean over pixels of KL(p_t^T ‖ p_s^T) (numpy), 0 at a match', () => {
    expectClose(value(() => segPixelKd(s(), t(), { temperature: 1 })), P.t1);
    expectClose(value(() => segPixelKd(s(), t(), { temperature: 4 })), P.t4);
    expect(value(() => segPixelKd(t(), t(), { temperature: 1 }))).toBeCloseTo(0, 6);
    // The reference's soft cross-entropy differs by the teacher's entropy (and sums over the batch).
    const entropy = tf.tidy(() => {
      const lp = tf.logSoftmax(t());
      return -tf.sum(tf.mul(tf.exp(lp), lp)).dataSync()[0] / 4;
    });
    expectClose(P.t1 + entropy, P.ref_ce, 1e-5);
  });

  it('rejects logits of different shapes; finite differences; no leak', () => {
    expect(() => segPixelKd(s(), tf.zeros([1, 2, 2, 4]), { temperature: 1 })).toThrow(/expected shape \[1,2,2,3\]/);
    const tt = t();
    for (const temperature of [1, 4]) expect(finiteDifferenceCheck((z) => segPixelKd(z, tt, { temperature }), P.s, [1, 2, 2, 3], 1e-3).maxRelError).toBeLessThan(1e-2);
    const x = s();
    expect(leaked((z) => segPixelKd(z, tt, { temperature: 4 }), x)).toBe(0);
    tf.dispose([tt, x]);
  });
});

describe('segPairwise (Liu et al. 2019, pair-wise)', () => {
  const W = REF.pw;

  it('max-pooled nodes, cosine similarities, Σ(a_t − a_s)²/(M²·N) (numpy); channels may differ', () => {
    const run = (scale: number) => value(() => segPairwise(tf.tensor4d(W.fs, [2, 4, 4, 2]), tf.tensor4d(W.ft, [2, 4, 4, 3]), { scale }));
    expectClose(run(0.5), W.half); // 2×2 nodes (the reference default)
    expectClose(run(0.25), W.quarter); // 4×4 nodes, no pooling
    // 5×5 maps with scale 0.5: kernel 2, ceil mode → 3×3 nodes, the last row/column partial.
    expectClose(value(() => segPairwise(tf.tensor4d(W.fs5, [1, 5, 5, 2]), tf.tensor4d(W.ft5, [1, 5, 5, 2]), { scale: 0.5 })), W.five_half);
    expect(value(() => segPairwise(tf.tensor4d(W.ft, [2, 4, 4, 3]), tf.tensor4d(W.ft, [2, 4, 4, 3]), { scale: 0.5 }))).toBeCloseTo(0, 6);
  });

  it('rejects maps of different spatial sizes; finite differences (norm detached as the reference); no leak', () => {
    expect(() => segPairwise(tf.zeros([1, 4, 4, 2]), tf.zeros([1, 2, 2, 2]), { scale: 0.5 })).toThrow(/spatial size/);
    const ft = tf.tensor4d(W.ft, [2, 4, 4, 3]);
    // Detached norm: the gradient is that of Σ(a_t − (f/c)ᵀ(f/c))² with c held fixed, so compare with
    // a finite-difference check of the same function with c frozen at the input.
    const fs0 = tf.tensor4d(W.fs, [2, 4, 4, 2]);
    const c = tf.tidy(() => tf.add(tf.sqrt(tf.sum(tf.square(tf.reshape(fs0, [2, 16, 2])), -1, true)), 1e-8));
    const frozen = (f: tf.Tensor) =>
      tf.tidy(() => {
        const u = tf.div(tf.reshape(f, [2, 16, 2]), c);
        const us = tf.matMul(u, u, false, true);
        const t = tf.reshape(ft, [2, 16, 3]);
        const ut = tf.div(t, tf.add(tf.sqrt(tf.sum(tf.square(t), -1, true)), 1e-8));
        return tf.div(tf.sum(tf.square(tf.sub(tf.matMul(ut, ut, false, true), us))), 16 * 16 * 2) as tf.Scalar;
      });
    const analytic = tf.tidy(() => Array.from(tf.grad((f: tf.Tensor) => segPairwise(f, ft, { scale: 0.25 }))(fs0).dataSync()));
    const { numeric } = finiteDifferenceCheck(frozen, W.fs, [2, 4, 4, 2], 1e-3);
    const scale = Math.max(1e-3, ...Array.from(numeric, Math.abs));
    analytic.forEach((a, i) => expect(Math.abs(a - numeric[i]) / scale).toBeLessThan(1e-2));
    expect(leaked((f) => segPairwise(f, ft, { scale: 0.5 }), fs0)).toBe(0);
    tf.dispose([ft, fs0, c]);
  });
});
