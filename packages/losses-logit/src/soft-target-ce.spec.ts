import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { runLossOnce } from './__fixtures__/harness';
import { expectClose, softmax } from './__fixtures__/reference';
import { hintonKd } from './hinton-kd';
import { softTargetCe, softTargetCeLoss } from './soft-target-ce';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const ZS = [
  [1, 2, 0.5],
  [0.2, -1, 1.5],
];
const ZT = [
  [2, 1, 0],
  [0, 0.5, 2],
];

function stce(temperature: number): number {
  return tf.tidy(() => softTargetCe(tf.tensor2d(ZS), tf.tensor2d(ZT), { temperature }).dataSync()[0]);
}

function expected(temperature: number): number {
  const rows = ZS.map((r, b) => {
    const ps = softmax(r, temperature);
    return -softmax(ZT[b], temperature).reduce((s, p, k) => s + p * Math.log(ps[k]), 0);
  });
  return (temperature * temperature * (rows[0] + rows[1])) / 2;
}

describe('softTargetCe', () => {
  it('T = 4: −T²·mean_b Σ_k p_t^T log p_s^T (hand-computed)', () => {
    // p_s^4, p_t^4 as in the hinton-kd spec.
    // row0 = −(0.419229·log 0.315804 + 0.326496·log 0.405500 + 0.254275·log 0.278696) = 1.102794
    // row1 = −(0.264419·log 0.320015 + 0.299627·log 0.237073 + 0.435954·log 0.442911) = 1.087589
    // 16 · (1.102794 + 1.087589) / 2 = 17.523066
    expectClose(expected(4), 17.523066, 1e-6);
    expectClose(stce(4), expected(4));
  });

  it('T = 1 (hand-computed): (1.264656 + 0.843658) / 2 = 1.054157', () => {
    expectClose(expected(1), 1.054157, 1e-6);
    expectClose(stce(1), expected(1));
  });

  it('equals hinton-kd plus T² times the mean teacher entropy, with the same gradient', () => {
    const T = 4;
    // H(p_t^4) = [1.078100, 1.074788]
    const entropy = ZT.map((r) => -softmax(r, T).reduce((s, p) => s + p * Math.log(p), 0));
    const kd = tf.tidy(() => hintonKd(tf.tensor2d(ZS), tf.tensor2d(ZT), { temperature: T }).dataSync()[0]);
    expectClose(stce(T), kd + (T * T * (entropy[0] + entropy[1])) / 2);
    const zt = tf.tensor2d(ZT);
    const [ga, gb] = tf.tidy(() => [
      tf.grad((z: tf.Tensor) => softTargetCe(z, zt, { temperature: T }))(tf.tensor2d(ZS)).dataSync(),
      tf.grad((z: tf.Tensor) => hintonKd(z, zt, { temperature: T }))(tf.tensor2d(ZS)).dataSync(),
    ]);
    zt.dispose();
    ga.forEach((v, i) => expectClose(v, gb[i]));
  });

  it('passes a finite-difference gradient check', () => {
    const zt = tf.tensor2d(ZT);
    const { maxRelError } = finiteDifferenceCheck((z) => softTargetCe(z, zt, { temperature: 4 }), ZS.flat(), [2, 3]);
    zt.dispose();
    expect(maxRelError).toBeLessThan(1e-2);
  });
});

describe('loss/soft-target-ce plugin', () => {
  it('defaults: T = 4, roles student/teacher', () => {
    const o = softTargetCeLoss.options.parse({});
    expect(o).toEqual({ temperature: 4, student: 'student', teacher: 'teacher' });
    expect(softTargetCeLoss.requires?.(o)).toEqual({ roles: ['student', 'teacher'] });
  });

  it('computes the function on the roles’ logits', () => {
    const logits = { student: tf.tensor2d(ZS), teacher: tf.tensor2d(ZT) };
    expectClose(runLossOnce(softTargetCeLoss, { temperature: 1 }, { logits })['loss/soft-target-ce'], expected(1));
    tf.dispose(Object.values(logits));
  });
});
