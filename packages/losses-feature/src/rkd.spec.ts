import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { dot, expectClose, mean, norm, num, rows, smoothL1, values, type Matrix } from './__fixtures__/reference';
import { rkdAngle, rkdDistance, rkdLoss, tripletAngles, tripletAnglesDirect } from './rkd';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function refDist(e: Matrix): Matrix {
  const d = e.map((a, i) => e.map((b, j) => (i === j ? 0 : norm(a.map((v, k) => v - b[k])))));
  const pos = d.flat().filter((v) => v > 0);
  const m = mean(pos);
  return d.map((r) => r.map((v) => v / m));
}

function refAngle(e: Matrix): number[] {
  const unit = (v: number[]) => {
    const n = norm(v);
    return v.map((x) => x / Math.max(n, 1e-12));
  };
  const out: number[] = [];
  for (let i = 0; i < e.length; i++)
    for (let j = 0; j < e.length; j++)
      for (let k = 0; k < e.length; k++) out.push(dot(unit(e[j].map((v, q) => v - e[i][q])), unit(e[k].map((v, q) => v - e[i][q]))));
  return out;
}

const refDistanceLoss = (s: Matrix, t: Matrix) => {
  const ds = refDist(s);
  const dt = refDist(t);
  return mean(ds.flatMap((r, i) => r.map((v, j) => smoothL1(v - dt[i][j]))));
};
const refAngleLoss = (s: Matrix, t: Matrix) => {
  const as = refAngle(s);
  const at = refAngle(t);
  return mean(as.map((v, i) => smoothL1(v - at[i])));
};

describe('loss/rkd', () => {
  it('hand-computed distance term on 3 points', () => {
    // student (0,0), (1,0), (0,1): distances 1, 1, √2; mean of the 6 positive entries (2+√2)/3
    // teacher (0,0), (2,0), (0,2): distances 2, 2, 2√2; mean (4+2√2)/3 → ψ_D identical → loss 0
    const s = tf.tensor2d([0, 0, 1, 0, 0, 1], [3, 2]);
    expectClose(num(rkdDistance(s, tf.tensor2d([0, 0, 2, 0, 0, 2], [3, 2]))), 0, 1e-6);
    // teacher (0,0), (1,0), (2,0): distances 1, 2, 1; mean 4/3 → ψ_t: d01 = .75, d02 = 1.5, d12 = .75
    // ψ_s: m = (2+√2)/3: d01 = d02 = 3/(2+√2), d12 = 3√2/(2+√2); |diffs| < 1 → 0.5·diff²
    const m = (2 + Math.SQRT2) / 3;
    const diffs = [1 / m - 0.75, 1 / m - 1.5, Math.SQRT2 / m - 0.75];
    const expected = (2 * diffs.reduce((a, d) => a + 0.5 * d * d, 0)) / 9;
    expectClose(num(rkdDistance(s, tf.tensor2d([0, 0, 1, 0, 2, 0], [3, 2]))), expected, 1e-5);
  });

  it('hand-computed angle term on 3 points (degenerate triples count as cos 0)', () => {
    // student right angle at vertex 0: cos(1,2 @ 0) = 0, at vertex 1 and 2: cos 45° = 1/√2
    // teacher collinear (0,0), (1,0), (2,0): at vertex 0: cos 1, at 1: cos 180° = −1, at 2: cos 1
    // non-degenerate entries: for each vertex i, (j,k) = (a,b), (b,a), (a,a), (b,b) → the two
    // diagonal ones are cos 1 on both sides (diff 0); the off-diagonal ones differ by:
    //   vertex 0: 0 − 1 → smoothL1 0.5; vertex 1: 1/√2 + 1 > 1 → (1/√2 + 1) − 0.5; vertex 2: 1/√2 − 1 → 0.5·(1 − 1/√2)²
    const r = 1 / Math.SQRT2;
    const expected = (2 * (0.5 + (r + 1 - 0.5) + 0.5 * (1 - r) ** 2)) / 27;
    const got = num(rkdAngle(tf.tensor2d([0, 0, 1, 0, 0, 1], [3, 2]), tf.tensor2d([0, 0, 1, 0, 2, 0], [3, 2])));
    expectClose(got, expected, 1e-5);
  });

  it('matches the plain-double reference, and w_d·distance + w_a·angle', () => {
    const s = values(5 * 4, 31);
    const t = values(5 * 6, 32);
    const [es, et] = [tf.tensor2d(s, [5, 4]), tf.tensor2d(t, [5, 6])];
    const d = refDistanceLoss(rows(s, 5), rows(t, 5));
    const a = refAngleLoss(rows(s, 5), rows(t, 5));
    expectClose(num(rkdDistance(es, et)), d, 1e-5);
    expectClose(num(rkdAngle(es, et)), a, 1e-5);
    expectClose(num(rkdLoss(es, et)), 25 * d + 50 * a, 1e-5);
  });

  it('distance and angle terms are unchanged by a uniform scale of the embeddings', () => {
    const s = values(5 * 3, 33);
    const t = values(5 * 3, 34);
    const d0 = num(rkdDistance(tf.tensor2d(s, [5, 3]), tf.tensor2d(t, [5, 3])));
    const a0 = num(rkdAngle(tf.tensor2d(s, [5, 3]), tf.tensor2d(t, [5, 3])));
    expect(d0).toBeGreaterThan(0);
    for (const c of [0.05, 20]) {
      expectClose(num(rkdDistance(tf.tensor2d(s.map((v) => c * v), [5, 3]), tf.tensor2d(t, [5, 3]))), d0, 1e-5);
      expectClose(num(rkdDistance(tf.tensor2d(s, [5, 3]), tf.tensor2d(t.map((v) => c * v), [5, 3]))), d0, 1e-5);
      expectClose(num(rkdAngle(tf.tensor2d(s.map((v) => c * v), [5, 3]), tf.tensor2d(t, [5, 3]))), a0, 1e-5);
    }
  });

  it('gradients match finite differences and are finite with duplicate points', () => {
    const t = tf.tensor2d(values(4 * 3, 35), [4, 3]);
    const x0 = values(4 * 3, 36);
    expect(finiteDifferenceCheck((x) => tf.mul(rkdDistance(x, t), 10) as tf.Scalar, x0, [4, 3], 1e-3).maxRelError).toBeLessThan(2e-2);
    expect(finiteDifferenceCheck((x) => tf.mul(rkdAngle(x, t), 10) as tf.Scalar, x0, [4, 3], 1e-3).maxRelError).toBeLessThan(2e-2);
    const dup = [...x0.slice(0, 3), ...x0.slice(0, 3), ...x0.slice(6)];
    const g = tf.grad((x: tf.Tensor) => rkdLoss(x, t))(tf.tensor2d(dup, [4, 3]));
    expect(Array.from(g.dataSync()).every(Number.isFinite)).toBe(true);
  });

  it('the Gram route to ψ_A equals RepDistiller\'s direct route: values (offset features, duplicates) and gradients', () => {
    // 16 rows of 96 post-ReLU-like values around a large common offset: the case where a Gram
    // matrix of the raw rows would cancel badly (the route centres the batch first).
    const raw = values(16 * 96, 37).map((v, i) => Math.max(0, v) + 40 + (i % 7));
    const e = tf.tensor2d(raw, [16, 96]);
    const [a, b] = [tripletAngles(e), tripletAnglesDirect(e)];
    expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBeLessThan(2e-4);
    // duplicated rows: every triple with a zero difference is cos 0 on both routes, as the plain-double reference
    const x = values(5 * 3, 38);
    const dupRows = [...x.slice(0, 3), ...x.slice(0, 3), ...x.slice(6)];
    const want = refAngle(rows(dupRows, 5));
    const got = Array.from(tripletAngles(tf.tensor2d(dupRows, [5, 3])).dataSync());
    got.forEach((v, i) => expectClose(v, want[i], 1e-5));
    // gradients of the angle term through both routes
    const t = tf.tensor2d(values(6 * 5, 39), [6, 5]);
    const s0 = tf.tensor2d(values(6 * 5, 40), [6, 5]);
    const lossWith = (route: (m: tf.Tensor2D) => tf.Tensor3D) => (x: tf.Tensor) =>
      tf.mean(tf.square(tf.sub(route(x as tf.Tensor2D), route(t)))) as tf.Scalar;
    const g1 = tf.grad(lossWith(tripletAngles))(s0);
    const g2 = tf.grad(lossWith(tripletAnglesDirect))(s0);
    expect(tf.max(tf.abs(tf.sub(g1, g2))).dataSync()[0]).toBeLessThan(1e-5 * Math.max(1, tf.max(tf.abs(g2)).dataSync()[0]));
  });

  it('the angle and distance terms are unchanged by translating the embeddings', () => {
    const s = values(6 * 4, 41);
    const t = values(6 * 4, 42);
    const [a0, d0] = [num(rkdAngle(tf.tensor2d(s, [6, 4]), tf.tensor2d(t, [6, 4]))), num(rkdDistance(tf.tensor2d(s, [6, 4]), tf.tensor2d(t, [6, 4])))];
    const moved = tf.tensor2d(s.map((v, i) => v + [3, -2, 0.5, 7][i % 4]), [6, 4]);
    expectClose(num(rkdAngle(moved, tf.tensor2d(t, [6, 4]))), a0, 1e-5);
    expectClose(num(rkdDistance(moved, tf.tensor2d(t, [6, 4]))), d0, 1e-5);
  });
});
