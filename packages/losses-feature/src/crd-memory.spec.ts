import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { Rng } from '@tfkd/kd-core';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { dot, expectClose, normalize, num, rows, values, type Matrix } from './__fixtures__/reference';
import { NCE_EPS, contrastIndices, contrastLoss, crdMemoryLoss, estimateZ, initialMemory, maxNegatives, memoryScores, memoryUpdate, negativePools } from './crd-memory';
import { l2Normalize } from './ops';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Plain-double RepDistiller ContrastLoss on x [B][K+1]. */
function referenceContrastLoss(x: Matrix, nData: number): number {
  const m = x[0].length - 1;
  const mPn = m / nData;
  let s = 0;
  for (const row of x) {
    s += Math.log(row[0] / (row[0] + mPn + NCE_EPS));
    for (let j = 1; j <= m; j++) s += Math.log(mPn / (row[j] + mPn + NCE_EPS));
  }
  return -s / x.length;
}

/** Plain-double out = exp(memory[idx]·v/T)/Z, [B][K+1]. */
function referenceOut(v: Matrix, memory: Matrix, idx: number[][], t: number, z: number): Matrix {
  return v.map((vb, b) => idx[b].map((k) => Math.exp(dot(memory[k], vb) / t) / z));
}

describe('CRD memory: ContrastLoss (crd/criterion.py)', () => {
  it('hand-computed value: B = 1, K = 2, N = 4', () => {
    // m·Pn = 2/4 = 0.5; −[log(2/2.5) + log(0.5/1) + log(0.5/1.5)] = −[log 0.8 + log 0.5 + log(1/3)]
    const expected = -(Math.log(0.8) + Math.log(0.5) + Math.log(1 / 3));
    expectClose(expected, 2.014903, 1e-6);
    expectClose(num(contrastLoss(tf.tensor2d([[2, 0.5, 1]]), 4)), expected, 1e-5);
  });

  it('matches the plain-double reference on B = 3, K = 4', () => {
    const x = rows(values(3 * 5, 201, 0.01, 3), 3);
    expectClose(num(contrastLoss(tf.tensor2d(x), 50)), referenceContrastLoss(x, 50), 1e-5);
  });
});

describe('CRD memory: the bank (crd/memory.py ContrastMemory)', () => {
  it('memory update equals the momentum formula on a hand example', () => {
    const memory = tf.tensor2d([
      [1, 0],
      [0, 1],
      [0.6, 0.8],
    ]);
    // rows 2 and 0 get v = (0, 1) and (0, −1), momentum 0.5:
    // row 2: 0.5·(0.6, 0.8) + 0.5·(0, 1) = (0.3, 0.9) → /√0.9; row 0: (0.5, −0.5) → /√0.5; row 1 unchanged
    const got = memoryUpdate(memory, Int32Array.from([2, 0]), tf.tensor2d([[0, 1], [0, -1]]), 0.5).arraySync();
    const s9 = Math.sqrt(0.9);
    const expected = [
      [0.5 / Math.sqrt(0.5), -0.5 / Math.sqrt(0.5)],
      [0, 1],
      [0.3 / s9, 0.9 / s9],
    ];
    got.forEach((r, i) => r.forEach((v, j) => expectClose(v, expected[i][j], 1e-6)));
    // the input is left as it was (tfjs-cpu's tensorScatterUpdate would have written into it)
    expect(Array.from(memory.dataSync())).toEqual(Array.from(Float32Array.from([1, 0, 0, 1, 0.6, 0.8])));
    // momentum 1 keeps the (unit) rows; momentum 0 copies v
    expect(memoryUpdate(memory, Int32Array.from([1]), tf.tensor2d([[1, 0]]), 1).arraySync()).toEqual(memory.arraySync());
    expect(memoryUpdate(memory, Int32Array.from([1]), tf.tensor2d([[1, 0]]), 0).arraySync()[1]).toEqual([1, 0]);
  });

  it('updating the bank inside the gradient tape (as the plugin does) leaves the gradient of the loss unchanged', () => {
    const gradient = (update: boolean) => {
      const v = tf.variable(tf.tensor2d([[0.6, 0.8, 0], [0, 0.6, 0.8]]));
      const bank = tf.variable(tf.tensor2d([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.6, 0, 0.8]]), false);
      const g = tf.tidy(() => {
        const { grads } = tf.variableGrads(() => {
          const before = tf.clone(bank);
          const loss = contrastLoss(memoryScores(v, before, Int32Array.from([0, 2, 1, 3]), 0.5), 4);
          if (update) bank.assign(memoryUpdate(before, Int32Array.from([0, 1]), tf.tensor2d([[0, 0, -1], [-1, 0, 0]]), 0.5));
          return loss;
        }, [v]);
        return Array.from(grads[v.name].dataSync());
      });
      v.dispose();
      bank.dispose();
      return g;
    };
    const plain = gradient(false);
    expect(plain.some((x) => Math.abs(x) > 0.01)).toBe(true);
    expect(gradient(true)).toEqual(plain);
  });

  it('initial rows are U(±1/√(d/3)) and seeded', () => {
    const a = initialMemory(50, 12, new Rng(3));
    expect(Array.from(a)).toEqual(Array.from(initialMemory(50, 12, new Rng(3))));
    const stdv = 1 / Math.sqrt(4);
    expect(Math.max(...a)).toBeLessThanOrEqual(stdv);
    expect(Math.min(...a)).toBeGreaterThanOrEqual(-stdv);
    expect(Math.max(...a)).toBeGreaterThan(0.9 * stdv);
  });

  it('scores: exp(memory[idx]·v/T) via the full score matrix equals the direct gather', () => {
    const memory = rows(values(6 * 3, 202), 6);
    const v = rows(values(2 * 3, 203), 2);
    const idx = [
      [4, 0, 2],
      [1, 5, 5],
    ];
    const got = memoryScores(tf.tensor2d(v), tf.tensor2d(memory), Int32Array.from(idx.flat()), 0.5).arraySync();
    const expected = referenceOut(v, memory, idx, 0.5, 1);
    got.forEach((r, b) => r.forEach((x, j) => expectClose(x, expected[b][j], 1e-5)));
  });

  it('Z = mean(exp-scores) · N on the first batch', () => {
    expect(estimateZ(tf.tensor2d([[1, 2], [3, 4]]), 10)).toBeCloseTo(25, 5);
  });

  it('the loss equals a hand computation on a tiny bank (N = 4, d = 2, B = 2, K = 2)', () => {
    const unit = (a: number) => [Math.cos(a), Math.sin(a)];
    const m1 = [unit(0), unit(1), unit(2), unit(3)];
    const m2 = [unit(0.5), unit(1.5), unit(-1), unit(2.5)];
    const v1 = [unit(0.2), unit(2.2)];
    const v2 = [unit(0.4), unit(1.9)];
    const idx = [
      [0, 2, 3],
      [2, 0, 1],
    ];
    const o = { temperature: 0.5, zV1: 3, zV2: 5, nData: 4 };
    const expected =
      referenceContrastLoss(referenceOut(v1, m2, idx, o.temperature, o.zV1), 4) + referenceContrastLoss(referenceOut(v2, m1, idx, o.temperature, o.zV2), 4);
    // spelled out for the first term of sample 0: x = exp(cos(0.2 − 0.5)/0.5)/3, m·Pn = 2/4
    const x00 = Math.exp(Math.cos(-0.3) / 0.5) / 3;
    expectClose(referenceOut(v1, m2, idx, 0.5, 3)[0][0], x00, 1e-12);
    const got = num(crdMemoryLoss(tf.tensor2d(v1), tf.tensor2d(v2), tf.tensor2d(m1), tf.tensor2d(m2), Int32Array.from(idx.flat()), o));
    expectClose(got, expected, 1e-5);
  });

  it('finite-difference gradient check through the l2-normalised student embedding', () => {
    const memory = rows(values(8 * 3, 204), 8).map((r) => normalize(r));
    const m = tf.tensor2d(memory);
    const v2 = l2Normalize(tf.tensor2d(values(2 * 3, 205), [2, 3]), 1);
    const idx = Int32Array.from([1, 3, 4, 7, 6, 0, 2, 5]);
    const o = { temperature: 0.5, zV1: 6, zV2: 9, nData: 8 };
    const r = finiteDifferenceCheck((x) => crdMemoryLoss(l2Normalize(x, 1), v2, m, m, idx, o), values(2 * 3, 206), [2, 3], 1e-3);
    expect(r.maxRelError).toBeLessThan(2e-2);
  });
});

describe('CRD memory: contrast indices (RepDistiller CIFAR100InstanceSample, mode exact)', () => {
  const labels = Int32Array.from([0, 0, 1, 1, 2, 2, 2]);

  it('negative pools are the other classes; K is clamped to the smallest pool', () => {
    const pools = negativePools(labels);
    expect(Array.from(pools.get(0) as Int32Array)).toEqual([2, 3, 4, 5, 6]);
    expect(Array.from(pools.get(2) as Int32Array)).toEqual([0, 1, 2, 3]);
    expect(maxNegatives(pools)).toBe(4);
  });

  it('own index first, then K distinct samples of other classes; seeded; pools left as they were', () => {
    const pools = negativePools(labels);
    const snapshot = [...pools.values()].map((p) => Array.from(p));
    const batch = Int32Array.from([0, 4, 3]);
    const idx = contrastIndices(batch, labels, pools, 3, new Rng(7));
    expect(Array.from(idx)).toEqual(Array.from(contrastIndices(batch, labels, pools, 3, new Rng(7))));
    expect([...pools.values()].map((p) => Array.from(p))).toEqual(snapshot);
    for (let b = 0; b < 3; b++) {
      const row = Array.from(idx.subarray(b * 4, b * 4 + 4));
      expect(row[0]).toBe(batch[b]);
      const neg = row.slice(1);
      expect(new Set(neg).size).toBe(3);
      for (const k of neg) expect(labels[k]).not.toBe(labels[batch[b]]);
    }
    // K = the whole pool: every other-class sample exactly once
    const full = contrastIndices(Int32Array.from([5]), labels, pools, 4, new Rng(8));
    expect(Array.from(full.subarray(1)).sort()).toEqual([0, 1, 2, 3]);
  });

  it('draws are uniform over the pool (counts over many rows within 5σ)', () => {
    const pools = negativePools(labels);
    const counts = new Map<number, number>();
    const rng = new Rng(9);
    const trials = 4000;
    for (let i = 0; i < trials; i++) {
      const idx = contrastIndices(Int32Array.from([0]), labels, pools, 2, rng);
      for (const k of idx.subarray(1)) counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    // each of the 5 pool members is drawn with probability 2/5 per row
    const p = 2 / 5;
    for (const k of [2, 3, 4, 5, 6]) expect(Math.abs((counts.get(k) as number) - trials * p)).toBeLessThan(5 * Math.sqrt(trials * p * (1 - p)));
  });
});
