import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { expectClose } from './__fixtures__/reference';
import { runLossOnce } from './__fixtures__/harness';
import { crossEntropy, crossEntropyLoss, labelSmoothingLoss } from './cross-entropy';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// Two samples, three classes.
const Z = [
  [1, 2, 0.5],
  [0.2, -1, 1.5],
];
const Y = [1, 2];
// lse0 = log(e^1 + e^2 + e^0.5) = log(2.718282 + 7.389056 + 1.648721) = log(11.756059) ≈ 2.464369
// lse1 = log(e^0.2 + e^-1 + e^1.5) = log(1.221403 + 0.367879 + 4.481689) = log(6.070971) ≈ 1.803519
const lse = Z.map((r) => Math.log(r.reduce((s, v) => s + Math.exp(v), 0)));

function ce(opts: { labelSmoothing?: number } = {}): number {
  return tf.tidy(() => crossEntropy(tf.tensor2d(Z), tf.tensor1d(Y, 'int32'), opts).dataSync()[0]);
}

describe('crossEntropy', () => {
  it('is the mean of lse − z_y (hand-computed)', () => {
    // CE0 = 2.464369 − 2 = 0.464369; CE1 = 1.803519 − 1.5 = 0.303519; mean ≈ 0.383944
    const expected = (lse[0] - Z[0][1] + (lse[1] - Z[1][2])) / 2;
    expectClose(expected, 0.383944, 1e-6);
    expectClose(ce(), expected);
  });

  it('label smoothing ε: target (1 − ε)·onehot + ε/K, ε/K on the true class too (torch label_smoothing)', () => {
    // −log p_k = lse − z_k. Sample 0: [1.464369, 0.464369, 1.964369]; sample 1: [1.603519, 2.803519, 0.303519]
    // ε = 0.1, K = 3: loss_b = 0.9·(−log p_y) + (0.1/3)·Σ_k (−log p_k)
    //   b0 = 0.9·0.464369 + 0.033333·3.893106 = 0.417932 + 0.129770 = 0.547702
    //   b1 = 0.9·0.303519 + 0.033333·4.710556 = 0.273167 + 0.157019 = 0.430185
    const nll = Z.map((r, b) => r.map((v) => lse[b] - v));
    const per = nll.map((row, b) => 0.9 * row[Y[b]] + (0.1 / 3) * row.reduce((s, v) => s + v, 0));
    const expected = (per[0] + per[1]) / 2;
    expectClose(expected, 0.488944, 1e-6);
    expectClose(ce({ labelSmoothing: 0.1 }), expected);
  });

  it('ε = 1 is the cross-entropy with the uniform distribution', () => {
    const expected = (Z[0].reduce((s, v) => s + lse[0] - v, 0) / 3 + Z[1].reduce((s, v) => s + lse[1] - v, 0) / 3) / 2;
    expectClose(ce({ labelSmoothing: 1 }), expected);
  });

  it('passes a finite-difference gradient check (with and without smoothing)', () => {
    for (const labelSmoothing of [0, 0.2]) {
      const y = tf.tensor1d(Y, 'int32');
      const { maxRelError } = finiteDifferenceCheck((z) => crossEntropy(z, y, { labelSmoothing }), Z.flat(), [2, 3]);
      y.dispose();
      expect(maxRelError).toBeLessThan(1e-2);
    }
  });

  it('the gradient w.r.t. z is (softmax(z) − target) / B', () => {
    const y = tf.tensor1d(Y, 'int32');
    const g = tf.tidy(() => tf.grad((z: tf.Tensor) => crossEntropy(z, y))(tf.tensor2d(Z)).arraySync() as number[][]);
    y.dispose();
    Z.forEach((row, b) =>
      row.forEach((v, k) => expectClose(g[b][k], (Math.exp(v - lse[b]) - (k === Y[b] ? 1 : 0)) / 2)),
    );
  });
});

describe('loss/cross-entropy and loss/label-smoothing plugins', () => {
  it('defaults: ε = 0 for cross-entropy, ε = 0.1 for label-smoothing, student role "student"', () => {
    expect(crossEntropyLoss.options.parse({})).toEqual({ labelSmoothing: 0, student: 'student' });
    expect(labelSmoothingLoss.options.parse({})).toEqual({ labelSmoothing: 0.1, student: 'student' });
    expect(crossEntropyLoss.requires?.(crossEntropyLoss.options.parse({}))).toEqual({ roles: ['student'] });
  });

  it('the plugins compute the function on the student logits and the batch labels', () => {
    const step = { logits: { student: tf.tensor2d(Z), teacher: tf.tensor2d([[9, 0, 0], [0, 9, 0]]) }, y: Y };
    expectClose(runLossOnce(crossEntropyLoss, {}, step)['loss/cross-entropy'], ce());
    expectClose(runLossOnce(labelSmoothingLoss, {}, step)['loss/label-smoothing'], ce({ labelSmoothing: 0.1 }));
    tf.dispose(Object.values(step.logits));
  });

  it('option `student` picks another role (DML)', () => {
    const roles = [
      { name: 'student.0', kind: 'student' as const, trainable: true },
      { name: 'student.1', kind: 'student' as const, trainable: true },
    ];
    const step = { logits: { 'student.0': tf.tensor2d([[0, 0, 0], [0, 0, 0]]), 'student.1': tf.tensor2d(Z) }, y: Y, roles };
    expectClose(runLossOnce(crossEntropyLoss, { student: 'student.1' }, step)['loss/cross-entropy'], ce());
    // uniform logits: CE = log 3
    expectClose(runLossOnce(crossEntropyLoss, { student: 'student.0' }, step)['loss/cross-entropy'], Math.log(3));
    tf.dispose(Object.values(step.logits));
  });

  it('rejects a smoothing outside [0, 1]', () => {
    expect(crossEntropyLoss.options.safeParse({ labelSmoothing: 1.5 }).success).toBe(false);
    expect(crossEntropyLoss.options.safeParse({ temperature: 4 }).success).toBe(false);
  });
});
