import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { runLossOnce } from './__fixtures__/harness';
import { expectClose, kl, mean, softmax } from './__fixtures__/reference';
import { hintonKd } from './hinton-kd';
import { logitStdKd, logitStdKdLoss, zScoreLogits } from './logit-std-kd';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// Two samples, three classes (as the hinton-kd spec).
const ZS = [
  [1, 2, 0.5],
  [0.2, -1, 1.5],
];
const ZT = [
  [2, 1, 0],
  [0, 0.5, 2],
];

/** The reference's `normalize` in doubles: (z − mean) / (1e-7 + unbiased std). */
function zScore(row: number[]): number[] {
  const m = mean(row);
  const std = Math.sqrt(row.reduce((s, v) => s + (v - m) ** 2, 0) / (row.length - 1));
  return row.map((v) => (v - m) / (1e-7 + std));
}

function expected(temperature: number, zs = ZS, zt = ZT): number {
  const rows = zs.map((r, b) => kl(softmax(zScore(zt[b]), temperature), softmax(zScore(r), temperature)));
  return temperature * temperature * mean(rows);
}

function value(temperature: number, zs = ZS, zt = ZT): number {
  return tf.tidy(() => logitStdKd(tf.tensor2d(zs), tf.tensor2d(zt), { temperature }).dataSync()[0]);
}

describe('zScoreLogits', () => {
  it('(z − mean) / (1e-7 + unbiased std) per row, as the reference’s normalize', () => {
    // torch float64, `normalize(torch.tensor(ZS))` of logit-standardization-KD mdistiller/distillers/KD.py:
    // row 0: mean 7/6, unbiased std 0.763763 → [−0.21821786, 1.09108931, −0.87287145]
    // teacher row 0: mean 1, std 1 → [0.9999999, 0, −0.9999999] (the 1e-7 shows)
    const [s, t] = tf.tidy(() => [zScoreLogits(tf.tensor2d(ZS)).arraySync() as number[][], zScoreLogits(tf.tensor2d(ZT)).arraySync() as number[][]]);
    [-0.21821786166456764, 1.0910893083228377, -0.8728714466582703].forEach((v, k) => expectClose(s[0][k], v));
    [-0.02665955626654037, -0.9864035818619948, 1.013063138128535].forEach((v, k) => expectClose(s[1][k], v));
    [0.9999999000000099, 0, -0.9999999000000099].forEach((v, k) => expectClose(t[0][k], v));
    [-0.8006406921023662, -0.3202562768409465, 1.1208969689433124].forEach((v, k) => expectClose(t[1][k], v));
    // the unbiased std (÷ (K − 1)), not the population std (÷ K), which would give 1.224745 for teacher row 0
    expectClose(zScore([2, 1, 0])[0], 0.9999999, 1e-7);
  });

  it('a row of equal logits gives zeros and a finite gradient (the variance floor)', () => {
    const [z, g] = tf.tidy(() => [
      Array.from(zScoreLogits(tf.tensor2d([[3, 3, 3]])).dataSync()),
      Array.from(tf.grad((x: tf.Tensor) => tf.sum(tf.mul(zScoreLogits(x), tf.tensor2d([[1, 2, 3]]))) as tf.Scalar)(tf.tensor2d([[3, 3, 3]])).dataSync()),
    ]);
    expect(z).toEqual([0, 0, 0]);
    g.forEach((v) => expect(Number.isFinite(v)).toBe(true));
  });

  it('refuses a single class (the unbiased std divides by K − 1)', () => {
    expect(() => tf.tidy(() => zScoreLogits(tf.tensor2d([[1], [2]])))).toThrow(/at least 2 classes/);
  });
});

describe('logitStdKd', () => {
  it('T = 2 (the reference’s base temperature): T²·mean_b KL(softmax(ẑ_t/T) ‖ softmax(ẑ_s/T)) (hand-computed)', () => {
    // torch float64 re-run of the reference's kd_loss(zs, zt, 2, logit_stand=True): 0.32871696
    expectClose(expected(2), 0.32871696, 1e-7);
    expectClose(value(2), 0.32871696);
  });

  it('T = 4: 0.32414116 (torch float64, reference kd_loss)', () => {
    expectClose(expected(4), 0.32414116, 1e-7);
    expectClose(value(4), 0.32414116);
  });

  it('is invariant to a positive scale and a shift of each sample’s logits (unlike hinton-kd)', () => {
    const zs = ZS.map((r) => r.map((v) => 3 * v + 5));
    const zt = ZT.map((r) => r.map((v) => 0.5 * v - 2));
    // torch: kd_loss(3·zs + 5, 0.5·zt − 2, 2, True) = 0.3287169518 against 0.3287169581 (only the 1e-7 differs)
    expectClose(value(2, zs, zt), 0.32871695);
    const plain = tf.tidy(() => [hintonKd(tf.tensor2d(ZS), tf.tensor2d(ZT), { temperature: 2 }).dataSync()[0], hintonKd(tf.tensor2d(zs), tf.tensor2d(zt), { temperature: 2 }).dataSync()[0]]);
    expect(Math.abs(plain[0] - plain[1])).toBeGreaterThan(0.1);
  });

  it('gradient w.r.t. z_s flows through the student’s mean and std: torch autograd values', () => {
    // torch float64: kd_loss(zs, zt, 2, True).backward(); zs.grad
    const torchGrad = [
      [-0.26374522, 0.0879151, 0.17583012],
      [0.07905713, -0.04110971, -0.03794742],
    ];
    const zt = tf.tensor2d(ZT);
    const g = tf.tidy(() => tf.grad((z: tf.Tensor) => logitStdKd(z, zt, { temperature: 2 }))(tf.tensor2d(ZS)).arraySync() as number[][]);
    zt.dispose();
    torchGrad.forEach((row, b) => row.forEach((v, k) => expectClose(g[b][k], v)));
    // each row sums to 0: the loss does not see a shift of the logits
    g.forEach((row) => expectClose(row[0] + row[1] + row[2], 0));
  });

  it('passes a finite-difference gradient check (T = 2 and T = 4)', () => {
    for (const temperature of [2, 4]) {
      const zt = tf.tensor2d(ZT);
      const { maxRelError } = finiteDifferenceCheck((z) => logitStdKd(z, zt, { temperature }), ZS.flat(), [2, 3]);
      zt.dispose();
      expect(maxRelError).toBeLessThan(1e-2);
    }
  });

  it('rejects logits of different shapes', () => {
    expect(() => value(2, ZS, [[1, 2, 3, 4], [1, 2, 3, 4]])).toThrow(/shapes \[2,3\] and \[2,4\] differ/);
  });
});

describe('loss/logit-std-kd plugin', () => {
  it('defaults: T = 2 (the reference’s base temperature); the describe names the recipe’s weight 9', () => {
    const o = logitStdKdLoss.options.parse({});
    expect(o).toEqual({ temperature: 2, student: 'student', teacher: 'teacher' });
    expect(logitStdKdLoss.describe).toContain('weight: 9');
    expect(logitStdKdLoss.requires?.(o)).toEqual({ roles: ['student', 'teacher'] });
  });

  it('computes the function on the roles’ logits', () => {
    const logits = { student: tf.tensor2d(ZS), teacher: tf.tensor2d(ZT) };
    expectClose(runLossOnce(logitStdKdLoss, {}, { logits, y: [0, 2] })['loss/logit-std-kd'], 0.32871696);
    expectClose(runLossOnce(logitStdKdLoss, { temperature: 4 }, { logits, y: [0, 2] })['loss/logit-std-kd'], 0.32414116);
    tf.dispose(Object.values(logits));
  });

  it('bad options fail with a zod error at the option', () => {
    expect(logitStdKdLoss.options.safeParse({ temperature: 0 }).success).toBe(false);
    expect(logitStdKdLoss.options.safeParse({ temp: 2 }).success).toBe(false);
  });
});
