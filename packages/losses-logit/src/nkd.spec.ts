import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { runLossOnce } from './__fixtures__/harness';
import { expectClose, mean, softmax } from './__fixtures__/reference';
import { nkd, nkdLabels, nkdLoss, nkdParts, nonTargetLogits } from './nkd';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// Two samples, three classes; labels 0 and 2.
const ZS = [
  [1, 2, 0.5],
  [0.2, -1, 1.5],
];
const ZT = [
  [2, 1, 0],
  [0, 0.5, 2],
];
const Y = [0, 2];

/** NKD in doubles from the paper's definitions: target column dropped, both sides renormalised. */
function reference(temperature: number, gamma: number): { target: number; nonTarget: number } {
  const target = -mean(ZS.map((r, b) => softmax(ZT[b])[Y[b]] * Math.log(softmax(r)[Y[b]])));
  const rest = (r: number[], b: number) => r.filter((_, k) => k !== Y[b]);
  const cross = mean(
    ZS.map((r, b) => {
      const q = softmax(rest(ZT[b], b), temperature);
      const p = softmax(rest(r, b), temperature);
      return q.reduce((s, qk, k) => s + qk * Math.log(p[k]), 0);
    }),
  );
  return { target, nonTarget: -gamma * temperature * temperature * cross };
}

function run<T>(f: (zs: tf.Tensor, zt: tf.Tensor, y: tf.Tensor) => T): T {
  const zs = tf.tensor2d(ZS);
  const zt = tf.tensor2d(ZT);
  const y = tf.tensor1d(Y, 'int32');
  try {
    return f(zs, zt, y);
  } finally {
    tf.dispose([zs, zt, y]);
  }
}

describe('nonTargetLogits', () => {
  it('drops the label’s column and keeps the others in class order', () => {
    const z = [
      [1, 2, 0.5],
      [0.25, -1, 1.5],
      [7, 8, 9],
    ];
    const out = tf.tidy(() => nonTargetLogits(tf.tensor2d(z), tf.tensor1d([0, 2, 1], 'int32')).arraySync());
    expect(out).toEqual([
      [2, 0.5],
      [0.25, -1],
      [7, 9],
    ]);
  });

  it('scatters the gradient back to the kept entries, 0 to the label’s', () => {
    const g = tf.tidy(() =>
      tf.grad((x: tf.Tensor) => tf.sum(tf.mul(nonTargetLogits(x, tf.tensor1d([1, 0], 'int32')), tf.tensor2d([[1, 2], [3, 4]]))) as tf.Scalar)(tf.tensor2d(ZS)).arraySync(),
    );
    expect(g).toEqual([
      [1, 0, 2],
      [0, 3, 4],
    ]);
  });
});

describe('nkd', () => {
  it('defaults T = 1, γ = 1.5 (hand-computed)', () => {
    // torch float64 re-run of cls_KD mmcls/models/dis_losses/nkd.py NKDLoss(temp=1.0, gamma=1.5):
    //   loss_t = 0.59879282, loss_non = 1.21129431, total 1.81008713
    // by hand, sample 0 (y = 0): p_t[0] = 0.665241, log p_s[0] = 1 − lse(1, 2, 0.5) = −1.464369 → 0.974158;
    //   non-target: softmax([1, 0]) = [0.731059, 0.268941] against log softmax([2, 0.5]) = [−0.201413, −1.701413]
    //   → Σ = −0.604825; sample 1 (y = 2): 0.736125 · 0.303519 = 0.223428 and Σ = −1.010234
    //   target = (0.974158 + 0.223428)/2 = 0.598793; non = −1.5 · (−0.604825 − 1.010234)/2 = 1.211294
    const ref = reference(1, 1.5);
    expectClose(ref.target, 0.59879282, 1e-7);
    expectClose(ref.nonTarget, 1.21129431, 1e-7);
    const parts = run((zs, zt, y) => tf.tidy(() => {
      const p = nkdParts(zs, zt, y, { temperature: 1, gamma: 1.5 });
      return [p.target.dataSync()[0], p.nonTarget.dataSync()[0]];
    }));
    expectClose(parts[0], 0.59879282);
    expectClose(parts[1], 1.21129431);
    expectClose(run((zs, zt, y) => tf.tidy(() => nkd(zs, zt, y, { temperature: 1, gamma: 1.5 }).dataSync()[0])), 1.81008713);
  });

  it('CIFAR-100 recipe T = 3, γ = 3.5: the target term keeps T = 1 and no γ (torch: 0.59879282 + 22.24585639 = 22.84464921)', () => {
    const ref = reference(3, 3.5);
    expectClose(ref.nonTarget, 22.24585639, 1e-7);
    const v = run((zs, zt, y) => tf.tidy(() => nkd(zs, zt, y, { temperature: 3, gamma: 3.5 }).dataSync()[0]));
    expectClose(v, 22.84464921);
  });

  it('gradient w.r.t. z_s: torch autograd values (T = 1, γ = 1.5 and T = 3, γ = 3.5)', () => {
    // torch float64: NKDLoss(...)(zs, zt, y).backward(); zs.grad
    const cases: [number, number, number[][]][] = [
      [1, 1.5, [[-0.25571067, 0.27394944, -0.01823877], [0.36728759, -0.27093481, -0.09635278]]],
      [3, 3.5, [[-0.25571067, 0.41848043, -0.16276975], [0.81040475, -0.71405197, -0.09635278]]],
    ];
    for (const [temperature, gamma, expected] of cases) {
      const g = run((zs, zt, y) => tf.tidy(() => tf.grad((z: tf.Tensor) => nkd(z, zt, y, { temperature, gamma }))(zs).arraySync() as number[][]));
      expected.forEach((row, b) => row.forEach((v, k) => expectClose(g[b][k], v)));
    }
  });

  it('passes a finite-difference gradient check', () => {
    const zt = tf.tensor2d(ZT);
    const y = tf.tensor1d(Y, 'int32');
    for (const [temperature, gamma] of [[1, 1.5], [3, 3.5]]) {
      const { maxRelError } = finiteDifferenceCheck((z) => nkd(z, zt, y, { temperature, gamma }), ZS.flat(), [2, 3]);
      expect(maxRelError).toBeLessThan(1e-2);
    }
    tf.dispose([zt, y]);
  });

  it('γ = 0 leaves the target term alone: −mean_b p_t[y]·log p_s[y]', () => {
    const v = run((zs, zt, y) => tf.tidy(() => nkd(zs, zt, y, { temperature: 3, gamma: 0 }).dataSync()[0]));
    expectClose(v, reference(1, 1.5).target);
  });
});

describe('nkdLabels', () => {
  it('the integer labels, or the argmax of mixed soft targets (the reference’s score labels)', () => {
    const [plain, mixed] = tf.tidy(() => {
      const y = tf.tensor1d([0, 2], 'int32');
      const targets = tf.tensor2d([[0.3, 0.7, 0], [0, 0.4, 0.6]]);
      return [Array.from(nkdLabels({ y }).dataSync()), Array.from(nkdLabels({ y, targets }).dataSync())];
    });
    expect(plain).toEqual([0, 2]);
    expect(mixed).toEqual([1, 2]);
  });
});

describe('loss/nkd plugin', () => {
  it('defaults: T = 1, γ = 1.5 (the reference’s NKDLoss and ImageNet configs)', () => {
    const o = nkdLoss.options.parse({});
    expect(o).toEqual({ temperature: 1, gamma: 1.5, student: 'student', teacher: 'teacher' });
    expect(nkdLoss.requires?.(o)).toEqual({ roles: ['student', 'teacher'] });
    expect(nkdLoss.options.safeParse({ gamma: -1 }).success).toBe(false);
  });

  it('reads the batch labels', () => {
    const logits = { student: tf.tensor2d(ZS), teacher: tf.tensor2d(ZT) };
    expectClose(runLossOnce(nkdLoss, {}, { logits, y: Y })['loss/nkd'], 1.81008713);
    expectClose(runLossOnce(nkdLoss, { temperature: 3, gamma: 3.5 }, { logits, y: Y })['loss/nkd'], 22.84464921);
    // other labels, another value
    const ref = reference(1, 1.5);
    expect(Math.abs(runLossOnce(nkdLoss, {}, { logits, y: [1, 1] })['loss/nkd'] - (ref.target + ref.nonTarget))).toBeGreaterThan(1e-2);
    tf.dispose(Object.values(logits));
  });
});
