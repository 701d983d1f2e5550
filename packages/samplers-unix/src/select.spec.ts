import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { entropyRows, mixAndKeep, mixRatios, rankDescending, unixSelect } from './select';

const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

function expectAllClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-6): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (Math.abs(actual[i] - expected[i]) > tol) throw new Error(`element ${i}: ${actual[i]} vs ${expected[i]} (tol ${tol})`);
  }
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('entropyRows', () => {
  it('equals −Σ p ln p per row (hand values)', () => {
    const probs = tf.tensor2d([
      [0.7, 0.2, 0.1],
      [1, 0, 0],
      [1 / 3, 1 / 3, 1 / 3],
      [0.6, 0.3, 0.1],
    ]);
    const u = entropyRows(probs).dataSync();
    // 0.7·ln(1/0.7) + 0.2·ln 5 + 0.1·ln 10 = 0.7·0.356675 + 0.2·1.609438 + 0.1·2.302585 = 0.801819
    // [1, 0, 0]: 1·ln 1 + 0 + 0 = 0 (the 0·ln 0 terms are 0, not NaN as torch.log would give)
    // uniform over 3: ln 3 = 1.098612
    // 0.6·0.510826 + 0.3·1.203973 + 0.1·2.302585 = 0.306495 + 0.361192 + 0.230259 = 0.897946
    expectAllClose(u, [0.801819, 0, 1.098612, 0.897946], 1e-5);
    expect(Array.from(rankDescending(u))).toEqual([2, 3, 0, 1]);
    probs.dispose();
  });

  it('rejects a non-matrix', () => {
    const v = tf.tensor1d([0.5, 0.5]);
    expect(() => entropyRows(v)).toThrow('[batch, classes]');
    v.dispose();
  });
});

describe('rankDescending', () => {
  it('most uncertain first; ties keep batch order; NaN last', () => {
    expect(Array.from(rankDescending([0.1, 0.9, 0.5, 0.9, NaN, 0.3]))).toEqual([1, 3, 2, 5, 0, 4]);
  });
});

describe('mixRatios', () => {
  it('N = 4, w = 10, b = 2: c_r = sigmoid(10·(r/4 − 3/8))', () => {
    // r = 0: 10·(0 − 0.375) = −3.75 → 1/(1 + e^3.75) = 0.0229774
    // r = 1: 10·(0.25 − 0.375) = −1.25 → 0.2227001; r = 2: +1.25 → 0.7772999; r = 3: +3.75 → 0.9770226
    expectAllClose(mixRatios(4, { w: 10, b: 2 }), [0.0229774, 0.2227001, 0.7772999, 0.9770226], 1e-7);
  });

  it('N = 64, w = 10, b = 32 (UNIXKD command.sh): mild for the uncertain half, crossing 1/2 between ranks 31 and 32', () => {
    const c = mixRatios(64, { w: 10, b: 32 });
    // (2b − 1)/(2N) = 63/128. r = 0: sigmoid(−10·63/128 = −4.921875) = 0.0072328
    // r = 31: sigmoid(10·(31/64 − 63/128) = −0.078125) = 0.4804787; r = 32: sigmoid(+0.078125) = 0.5195213
    // r = 47: sigmoid(10·(94 − 63)/128 = 2.421875) = 0.9184802; r = 63: sigmoid(4.921875) = 0.9927672
    expectAllClose([c[0], c[31], c[32], c[47], c[63]], [0.0072328, 0.4804787, 0.5195213, 0.9184802, 0.9927672], 1e-7);
    for (let r = 0; r < 64; r++) {
      expect(c[r] + c[63 - r]).toBeCloseTo(1, 12); // b = N/2: symmetric about the middle
      if (r > 0) expect(c[r]).toBeGreaterThan(c[r - 1]);
    }
  });

  it('w = 1000 (argparse default) is a hard step at rank b', () => {
    const c = mixRatios(64, { w: 1000, b: 32 });
    expect(c[31]).toBeCloseTo(sigmoid(-7.8125), 12); // 4.0e-4
    expect(c[31]).toBeLessThan(5e-4);
    expect(c[32]).toBeGreaterThan(1 - 5e-4);
    // the reference's "conventional KD" rows: --k 64 --b 64 --w 1000 → every c_r ≤ sigmoid(−7.8125)
    expect(Math.max(...mixRatios(64, { w: 1000, b: 64 }))).toBeCloseTo(sigmoid(-7.8125), 12);
  });
});

describe('unixSelect / mixAndKeep', () => {
  // Four 1×1×2 images with distinct scales, labels 0..3.
  const rows = [
    [1, 2],
    [10, 20],
    [100, 200],
    [1000, 2000],
  ];
  const make = () => ({ x: tf.tensor4d(rows.flat(), [4, 1, 1, 2]), y: tf.tensor1d([0, 1, 2, 3], 'int32') });

  it('ranks by u, mixes rank r with x[π(r)] at λ·c_r, keeps the k most uncertain with their own labels (hand values)', () => {
    const { x, y } = make();
    const u = [0.1, 0.9, 0.5, 0.3]; // order: 1, 2, 3, 0
    const perm = [3, 0, 1, 2];
    const r = unixSelect(x, y, u, { w: 10, b: 2, lambda: 0.5, perm, keep: 3 });
    expect(Array.from(r.kept)).toEqual([1, 2, 3]);
    expect(Array.from(r.partners)).toEqual([3, 0, 1]);
    const c = [sigmoid(-3.75), sigmoid(-1.25), sigmoid(1.25)];
    const m = c.map((v) => 0.5 * v); // 0.0114887, 0.1113501, 0.3886499
    expectAllClose(r.m, m, 1e-12);
    // x̃_0 = (1 − m0)·x1 + m0·x3; x̃_1 = (1 − m1)·x2 + m1·x0; x̃_2 = (1 − m2)·x3 + m2·x1
    const expected = [
      [(1 - m[0]) * 10 + m[0] * 1000, (1 - m[0]) * 20 + m[0] * 2000], // 21.3738, 42.7476
      [(1 - m[1]) * 100 + m[1] * 1, (1 - m[1]) * 200 + m[1] * 2], // 88.9763, 177.9525
      [(1 - m[2]) * 1000 + m[2] * 10, (1 - m[2]) * 2000 + m[2] * 20], // 615.236, 1230.47
    ];
    expect(r.x.shape).toEqual([3, 1, 1, 2]);
    expectAllClose(r.x.dataSync(), expected.flat(), 2e-4);
    expect(Array.from(r.y.dataSync())).toEqual([1, 2, 3]); // the kept sources' labels, not the partners' (3, 0, 1)
    expect(r.y.dtype).toBe('int32');
    tf.dispose([x, y, r.x, r.y]);
  });

  it('one λ per batch: every m_r / c_r equals λ', () => {
    const { x, y } = make();
    const r = unixSelect(x, y, [0.4, 0.3, 0.2, 0.1], { w: 10, b: 2, lambda: 0.37, perm: [0, 1, 2, 3], keep: 4 });
    const c = mixRatios(4, { w: 10, b: 2 });
    r.m.forEach((m, i) => expect(m / c[i]).toBeCloseTo(0.37, 14));
    tf.dispose([x, y, r.x, r.y]);
  });

  it('λ = 0 keeps the sorted source rows exactly; π may pair a sample with itself (no change either)', () => {
    const { x, y } = make();
    const r = unixSelect(x, y, [0.2, 0.1, 0.4, 0.3], { w: 10, b: 2, lambda: 0, perm: [2, 1, 0, 3], keep: 4 });
    expect(Array.from(r.kept)).toEqual([2, 3, 0, 1]);
    expect(Array.from(r.x.dataSync())).toEqual([100, 200, 1000, 2000, 1, 2, 10, 20]);
    expect(Array.from(r.y.dataSync())).toEqual([2, 3, 0, 1]);
    tf.dispose([x, y, r.x, r.y]);
    const s = make();
    const self = mixAndKeep(s.x, s.y, { order: [0, 1, 2, 3], c: [1, 1, 1, 1], lambda: 0.8, perm: [0, 1, 2, 3], keep: 2 });
    expectAllClose(self.x.dataSync(), [1, 2, 10, 20], 1e-5); // x̃ = 0.2·x + 0.8·x = x
    tf.dispose([s.x, s.y, self.x, self.y]);
  });

  it('k = min(keep, N); mismatched inputs are rejected', () => {
    const { x, y } = make();
    const r = unixSelect(x, y, [1, 2, 3, 4], { w: 10, b: 2, lambda: 0, perm: [0, 1, 2, 3], keep: 48 });
    expect(Array.from(r.kept)).toEqual([3, 2, 1, 0]);
    expect(() => unixSelect(x, y, [1, 2, 3], { w: 10, b: 2, lambda: 0, perm: [0, 1, 2, 3], keep: 2 })).toThrow('4 images but 3 uncertainties');
    expect(() => mixAndKeep(x, y, { order: [0, 1, 2, 3], c: [0, 0, 0, 0], lambda: 0, perm: [0, 1], keep: 2 })).toThrow('needs 4 labels');
    tf.dispose([x, y, r.x, r.y]);
  });

  it('creates no tensor beyond its two results', () => {
    const { x, y } = make();
    const before = tf.memory().numTensors;
    const r = unixSelect(x, y, [0.1, 0.9, 0.5, 0.3], { w: 10, b: 2, lambda: 0.5, perm: [3, 0, 1, 2], keep: 3 });
    expect(tf.memory().numTensors).toBe(before + 2);
    tf.dispose([x, y, r.x, r.y]);
  });
});
