import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { runLossOnce } from './__fixtures__/harness';
import { expectClose, kl, softmax } from './__fixtures__/reference';
import { hintonKd, hintonKdLoss } from './hinton-kd';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// Two samples, three classes.
const ZS = [
  [1, 2, 0.5],
  [0.2, -1, 1.5],
];
const ZT = [
  [2, 1, 0],
  [0, 0.5, 2],
];

function kd(temperature: number, zs = ZS, zt = ZT): number {
  return tf.tidy(() => hintonKd(tf.tensor2d(zs), tf.tensor2d(zt), { temperature }).dataSync()[0]);
}

function expected(temperature: number): number {
  const rows = ZS.map((r, b) => kl(softmax(ZT[b], temperature), softmax(r, temperature)));
  return (temperature * temperature * (rows[0] + rows[1])) / 2;
}

describe('hintonKd', () => {
  it('T = 4: T²·mean_b KL(p_t^T ‖ p_s^T) (hand-computed)', () => {
    // p_s^4 = [[0.315804, 0.405500, 0.278696], [0.320015, 0.237073, 0.442911]]
    // p_t^4 = [[0.419229, 0.326496, 0.254275], [0.264419, 0.299627, 0.435954]]
    // KL0 = 0.419229·log(0.419229/0.315804) + 0.326496·log(0.326496/0.405500) + 0.254275·log(0.254275/0.278696) = 0.024695
    // KL1 = 0.012801; 16 · (0.024695 + 0.012801) / 2 = 0.299963
    expectClose(expected(4), 0.299963, 1e-6);
    expectClose(kd(4), expected(4));
  });

  it('T = 1: plain batch-mean KL (hand-computed)', () => {
    // KL0 = 0.432260, KL1 = 0.091678 → 0.261969
    expectClose(expected(1), 0.261969, 1e-6);
    expectClose(kd(1), expected(1));
  });

  it('is 0 when the student matches the teacher', () => {
    expectClose(kd(4, ZT, ZT), 0);
  });

  it('gradient w.r.t. z_s is T·(p_s^T − p_t^T)/B (the T² keeps its scale)', () => {
    const T = 4;
    const zt = tf.tensor2d(ZT);
    const g = tf.tidy(() => tf.grad((z: tf.Tensor) => hintonKd(z, zt, { temperature: T }))(tf.tensor2d(ZS)).arraySync() as number[][]);
    zt.dispose();
    ZS.forEach((row, b) => {
      const ps = softmax(row, T);
      const pt = softmax(ZT[b], T);
      row.forEach((_, k) => expectClose(g[b][k], (T * (ps[k] - pt[k])) / 2));
    });
  });

  it('passes a finite-difference gradient check', () => {
    for (const temperature of [1, 4]) {
      const zt = tf.tensor2d(ZT);
      const { maxRelError } = finiteDifferenceCheck((z) => hintonKd(z, zt, { temperature }), ZS.flat(), [2, 3]);
      zt.dispose();
      expect(maxRelError).toBeLessThan(1e-2);
    }
  });

  it('rejects logits of different shapes', () => {
    expect(() => kd(4, ZS, [[1, 2, 3, 4], [1, 2, 3, 4]])).toThrow(/shapes \[2,3\] and \[2,4\] differ/);
  });
});

describe('loss/hinton-kd plugin', () => {
  it('defaults: T = 4 (RepDistiller), roles student/teacher', () => {
    const o = hintonKdLoss.options.parse({});
    expect(o).toEqual({ temperature: 4, student: 'student', teacher: 'teacher' });
    expect(hintonKdLoss.requires?.(o)).toEqual({ roles: ['student', 'teacher'] });
  });

  it('reads the student and teacher logits of the configured roles', () => {
    const logits = { student: tf.tensor2d(ZS), teacher: tf.tensor2d(ZT) };
    expectClose(runLossOnce(hintonKdLoss, {}, { logits })['loss/hinton-kd'], expected(4));
    // swapped roles (a DML-style peer): KL(p_s ‖ p_t) instead
    const roles = [
      { name: 'student', kind: 'student' as const, trainable: true },
      { name: 'teacher', kind: 'teacher' as const, trainable: false },
    ];
    const swapped = runLossOnce(hintonKdLoss, { student: 'teacher', teacher: 'student', temperature: 1 }, { logits, roles })['loss/hinton-kd'];
    expectClose(swapped, ZS.reduce((s, r, b) => s + kl(softmax(r), softmax(ZT[b])), 0) / 2);
    tf.dispose(Object.values(logits));
  });

  it('fails at creation when a role option names no role of the run', () => {
    expect(() => runLossOnce(hintonKdLoss, { student: 'student.0' }, { logits: {} })).toThrow(
      "'loss/hinton-kd' reads the logits of role 'student.0' (option `student`), and the run has no such role",
    );
    expect(() => runLossOnce(hintonKdLoss, { teacher: 'student' }, { logits: {} })).toThrow('the student and teacher roles are both');
  });
});
