import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { dot, expectClose, mean, norm, normalize, num, rows, values, type Matrix } from './__fixtures__/reference';
import { pktLoss } from './pkt';
import { similarityLoss } from './similarity';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const gram = (x: Matrix): Matrix => x.map((a) => x.map((b) => dot(a, b)));

function referenceSp(s: Matrix, t: Matrix): number {
  const gs = gram(s).map((r) => normalize(r));
  const gt = gram(t).map((r) => normalize(r));
  const b = s.length;
  return gs.reduce((acc, r, i) => acc + r.reduce((a, v, j) => a + (v - gt[i][j]) ** 2, 0), 0) / (b * b);
}

function referencePkt(s: Matrix, t: Matrix, eps = 1e-7): number {
  const probs = (x: Matrix) => {
    const u = x.map((r) => r.map((v) => v / (norm(r) + eps)));
    const sim = u.map((a) => u.map((b) => (dot(a, b) + 1) / 2));
    return sim.map((r) => r.map((v) => v / r.reduce((p, q) => p + q, 0)));
  };
  const ps = probs(s);
  const pt = probs(t);
  return mean(pt.flatMap((r, i) => r.map((p, j) => p * Math.log((p + eps) / (ps[i][j] + eps)))));
}

describe('loss/sp', () => {
  it('hand-computed value on B = 2', () => {
    // F_s = [[1, 0], [0, 1]] → G = I → rows already unit: G_s = I
    // F_t = [[1, 0], [1, 1]] → G = [[1, 1], [1, 2]] → rows (1,1)/√2, (1,2)/√5
    // ‖G_s − G_t‖² = (1 − 1/√2)² + (1/√2)² + (1/√5)² + (1 − 2/√5)², divided by B² = 4
    const r2 = Math.SQRT2;
    const r5 = Math.sqrt(5);
    const expected = ((1 - 1 / r2) ** 2 + (1 / r2) ** 2 + (1 / r5) ** 2 + (1 - 2 / r5) ** 2) / 4;
    expectClose(num(similarityLoss(tf.tensor2d([1, 0, 0, 1], [2, 2]), tf.tensor2d([1, 0, 1, 1], [2, 2]))), expected, 1e-6);
  });

  it('matches the reference on NHWC maps of different sizes (flattened)', () => {
    const s = values(3 * 2 * 2 * 2, 11);
    const t = values(3 * 1 * 1 * 5, 12);
    const got = num(similarityLoss(tf.tensor4d(s, [3, 2, 2, 2]), tf.tensor4d(t, [3, 1, 1, 5])));
    expectClose(got, referenceSp(rows(s, 3), rows(t, 3)), 1e-5);
  });

  it('is unchanged by a positive scale of the features', () => {
    const s = values(4 * 6, 13);
    const t = values(4 * 3, 14);
    const base = num(similarityLoss(tf.tensor2d(s, [4, 6]), tf.tensor2d(t, [4, 3])));
    expect(base).toBeGreaterThan(0);
    for (const c of [0.1, 7]) {
      expectClose(num(similarityLoss(tf.tensor2d(s.map((v) => c * v), [4, 6]), tf.tensor2d(t, [4, 3]))), base, 1e-5);
      expectClose(num(similarityLoss(tf.tensor2d(s, [4, 6]), tf.tensor2d(t.map((v) => c * v), [4, 3]))), base, 1e-5);
    }
  });

  it('gradient matches finite differences', () => {
    const t = tf.tensor2d(values(3 * 4, 15), [3, 4]);
    const r = finiteDifferenceCheck((x) => tf.mul(similarityLoss(x, t), 100) as tf.Scalar, values(3 * 5, 16), [3, 5], 1e-3);
    expect(r.maxRelError).toBeLessThan(2e-2);
  });
});

describe('loss/pkt', () => {
  it('hand-computed value on B = 2', () => {
    // student rows (1, 0), (0, 1): cos = I → (cos+1)/2 = [[1, .5], [.5, 1]] → rows / 1.5 → P_s = [[2/3, 1/3], [1/3, 2/3]]
    // teacher rows (1, 0), (1, 0): cos all 1 → all 1 → P_t = [[.5, .5], [.5, .5]]
    // mean of P_t log(P_t/P_s) = mean(.5 log(.75), .5 log(1.5), .5 log(1.5), .5 log(.75)) = (log .75 + log 1.5)/4
    // (ε = 1e-7 moves this by < 1e-6; x/(‖x‖+ε) by < 1e-6 too)
    const expected = (Math.log(0.75) + Math.log(1.5)) / 4;
    expectClose(num(pktLoss(tf.tensor2d([1, 0, 0, 1], [2, 2]), tf.tensor2d([1, 0, 1, 0], [2, 2]))), expected, 1e-5);
  });

  it('matches the reference (mean over the B×B entries, not batchmean)', () => {
    const s = values(4 * 6, 21);
    const t = values(4 * 3, 22);
    expectClose(num(pktLoss(tf.tensor2d(s, [4, 6]), tf.tensor2d(t, [4, 3]))), referencePkt(rows(s, 4), rows(t, 4)), 1e-5);
  });

  it('is unchanged by a positive scale of the features, and 0 for identical directions', () => {
    const s = values(4 * 5, 23);
    const t = values(4 * 5, 24);
    const base = num(pktLoss(tf.tensor2d(s, [4, 5]), tf.tensor2d(t, [4, 5])));
    expect(base).toBeGreaterThan(0);
    expectClose(num(pktLoss(tf.tensor2d(s.map((v) => 5 * v), [4, 5]), tf.tensor2d(t.map((v) => 0.2 * v), [4, 5]))), base, 1e-5);
    expectClose(num(pktLoss(tf.tensor2d(s.map((v) => 3 * v), [4, 5]), tf.tensor2d(s, [4, 5]))), 0, 1e-6);
  });

  it('gradient matches finite differences; an all-zero student row has a finite gradient', () => {
    const t = tf.tensor2d(values(3 * 4, 25), [3, 4]);
    const r = finiteDifferenceCheck((x) => tf.mul(pktLoss(x, t), 1000) as tf.Scalar, values(3 * 4, 26), [3, 4], 1e-3);
    expect(r.maxRelError).toBeLessThan(2e-2);
    const g = tf.grad((x: tf.Tensor) => pktLoss(x, t))(tf.tensor2d([0, 0, 0, 0, ...values(8, 27)], [3, 4]));
    expect(Array.from(g.dataSync()).every(Number.isFinite)).toBe(true);
  });
});
