import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { expectClose, num, values } from './__fixtures__/reference';
import { activationBoundary } from './activation-boundary';
import { crdInBatch } from './crd';
import { fspLoss, fspMatrix } from './fsp';
import { nstLoss } from './nst';
import { adaptivePoolMatrix, smoothL1 } from './ops';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const t4 = (v: number[], s: [number, number, number, number]) => tf.tensor4d(v, s);

describe('ops', () => {
  it('adaptive pool 7 → 3 uses torch bins [0,3), [2,5), [4,7)', () => {
    const m = adaptivePoolMatrix(7, 3);
    expect(m.map((r) => r.map((v) => (v > 0 ? 1 : 0)).join(''))).toEqual(['1110000', '0011100', '0000111']);
    expectClose(m[1][3], 1 / 3, 1e-12);
  });

  it('smooth-L1: 0.5 d² inside |d| < 1, |d| − 0.5 outside', () => {
    expect(Array.from(smoothL1(tf.tensor1d([0.5, -0.5, 3, -2]), tf.zeros([4])).dataSync())).toEqual([0.125, 0.125, 2.5, 1.5]);
  });
});

describe('loss/nst', () => {
  it('hand-computed value', () => {
    // student, one channel over 2 pixels: (3, 4) → (0.6, 0.8). teacher, 2 channels: (1, 0), (0, 1).
    // K(s,s) = 1 → mean 1; K(t,t) = [[1,0],[0,1]] → mean 0.5; K(s,t) = (0.36, 0.64) → mean 0.5
    // loss = 1 + 0.5 − 2·0.5 = 0.5
    expectClose(num(nstLoss(t4([3, 4], [1, 1, 2, 1]), t4([1, 0, 0, 1], [1, 1, 2, 2]))), 0.5, 1e-6);
  });

  it('is 0 for the same map, unchanged by per-channel positive scales, and pools 4×4 to 2×2', () => {
    const f = values(2 * 2 * 2 * 3, 41);
    expectClose(num(nstLoss(t4(f, [2, 2, 2, 3]), t4(f, [2, 2, 2, 3]))), 0, 1e-6);
    const s = values(2 * 4 * 4 * 2, 42);
    const t = values(2 * 2 * 2 * 3, 43);
    const a = num(nstLoss(t4(s, [2, 4, 4, 2]), t4(t, [2, 2, 2, 3])));
    const b = num(nstLoss(t4(s.map((v) => 4 * v), [2, 4, 4, 2]), t4(t, [2, 2, 2, 3])));
    expect(a).toBeGreaterThan(0);
    expectClose(a, b, 1e-5);
  });

  it('gradient matches finite differences', () => {
    const t = t4(values(2 * 2 * 2 * 3, 44), [2, 2, 2, 3]);
    const r = finiteDifferenceCheck((x) => tf.mul(nstLoss(x as tf.Tensor4D, t), 100) as tf.Scalar, values(2 * 2 * 2 * 2, 45), [2, 2, 2, 2], 1e-3);
    expect(r.maxRelError).toBeLessThan(2e-2);
  });
});

describe('loss/fsp', () => {
  it('hand-computed value', () => {
    // student F1 = (1, 2), F2 = (3, 4) over 2 pixels → G = (1·3 + 2·4)/2 = 5.5
    // teacher F1 = (1, 1), F2 = (2, 2) → G = (2 + 2)/2 = 2 → loss (5.5 − 2)² = 12.25
    const s: [tf.Tensor4D, tf.Tensor4D] = [t4([1, 2], [1, 1, 2, 1]), t4([3, 4], [1, 1, 2, 1])];
    const t: [tf.Tensor4D, tf.Tensor4D] = [t4([1, 1], [1, 1, 2, 1]), t4([2, 2], [1, 1, 2, 1])];
    expectClose(num(fspLoss(s, t)), 12.25, 1e-6);
  });

  it('G is C1×C2 with entries mean_p F1[p,i]·F2[p,j]', () => {
    const f1 = values(1 * 2 * 2 * 2, 46);
    const f2 = values(1 * 2 * 2 * 3, 47);
    const g = fspMatrix(t4(f1, [1, 2, 2, 2]), t4(f2, [1, 2, 2, 3]));
    expect(g.shape).toEqual([1, 2, 3]);
    const e01 = [0, 1, 2, 3].reduce((a, p) => a + f1[p * 2 + 0] * f2[p * 3 + 1], 0) / 4;
    expectClose(g.dataSync()[1], e01, 1e-6);
  });

  it('gradient matches finite differences', () => {
    const t: [tf.Tensor4D, tf.Tensor4D] = [t4(values(8, 48), [1, 2, 2, 2]), t4(values(8, 49), [1, 2, 2, 2])];
    const f2 = t4(values(8, 50), [1, 2, 2, 2]);
    const r = finiteDifferenceCheck((x) => fspLoss([x as tf.Tensor4D, f2], t), values(8, 51), [1, 2, 2, 2], 1e-3);
    expect(r.maxRelError).toBeLessThan(2e-2);
  });
});

describe('loss/activation-boundary', () => {
  it('hand-computed value (μ = 1)', () => {
    // (r, t): (−2, 1) on, r < μ → (1 − (−2))² = 9;  (−0.5, −1) off, r > −μ → (−0.5 + 1)² = 0.25
    //         (0.5, 1) on → (1 − 0.5)² = 0.25;     (2, −1) off → (2 + 1)² = 9
    //         (2, 1) on, r ≥ μ → 0;                (−2, 0) off (t ≤ 0), r ≤ −μ → 0
    const r = tf.tensor1d([-2, -0.5, 0.5, 2, 2, -2]);
    const t = tf.tensor1d([1, -1, 1, -1, 1, 0]);
    expectClose(num(activationBoundary(r, t)), 18.5 / 6, 1e-6);
  });

  it('gradient flows through (μ ± r)² only: matches finite differences', () => {
    const t = tf.tensor2d(values(4 * 6, 52), [4, 6]);
    const r = finiteDifferenceCheck((x) => activationBoundary(x, t), values(4 * 6, 53, -3, 3), [4, 6], 1e-3);
    expect(r.maxRelError).toBeLessThan(1e-2);
    // r beyond the margin on the right side: zero gradient
    const g = tf.grad((x: tf.Tensor) => activationBoundary(x, tf.tensor1d([1, -1])))(tf.tensor1d([3, -3]));
    expect(Array.from(g.dataSync())).toEqual([0, 0]);
  });
});

describe('loss/crd (in-batch negatives)', () => {
  it('hand-computed value', () => {
    // z_s = z_t = I₂, τ: logits = I/τ; each row CE = −log(e^{1/τ}/(e^{1/τ} + 1)) = log(1 + e^{−1/τ}); 2 directions
    const z = tf.tensor2d([1, 0, 0, 1], [2, 2]);
    expectClose(num(crdInBatch(z, z, 1)), 2 * Math.log(1 + Math.exp(-1)), 1e-6);
    expectClose(num(crdInBatch(z, z, 0.5)), 2 * Math.log(1 + Math.exp(-2)), 1e-6);
  });

  it('gradient matches finite differences', () => {
    const zt = tf.tensor2d(values(3 * 4, 54), [3, 4]);
    const r = finiteDifferenceCheck((x) => crdInBatch(x, zt, 0.5), values(3 * 4, 55), [3, 4], 1e-3);
    expect(r.maxRelError).toBeLessThan(2e-2);
  });
});
