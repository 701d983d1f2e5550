import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { runLossOnce } from './__fixtures__/harness';
import { expectClose } from './__fixtures__/reference';
import { logitMse, logitMseLoss } from './logit-mse';

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

describe('logitMse', () => {
  it('is the mean over batch and classes of (z_s − z_t)² (hand-computed)', () => {
    // z_s − z_t = [[−1, 1, 0.5], [0.2, −1.5, −0.5]]
    // squares: 1 + 1 + 0.25 + 0.04 + 2.25 + 0.25 = 4.79; / 6 = 0.798333
    const expected = 4.79 / 6;
    const v = tf.tidy(() => logitMse(tf.tensor2d(ZS), tf.tensor2d(ZT)).dataSync()[0]);
    expectClose(v, expected);
  });

  it('gradient w.r.t. z_s is 2(z_s − z_t)/(B·K)', () => {
    const zt = tf.tensor2d(ZT);
    const g = tf.tidy(() => tf.grad((z: tf.Tensor) => logitMse(z, zt))(tf.tensor2d(ZS)).arraySync() as number[][]);
    zt.dispose();
    ZS.forEach((row, b) => row.forEach((v, k) => expectClose(g[b][k], (2 * (v - ZT[b][k])) / 6)));
  });

  it('passes a finite-difference gradient check', () => {
    const zt = tf.tensor2d(ZT);
    const { maxRelError } = finiteDifferenceCheck((z) => logitMse(z, zt), ZS.flat(), [2, 3]);
    zt.dispose();
    expect(maxRelError).toBeLessThan(1e-2);
  });
});

describe('loss/logit-mse plugin', () => {
  it('defaults: no temperature, roles student/teacher', () => {
    const o = logitMseLoss.options.parse({});
    expect(o).toEqual({ student: 'student', teacher: 'teacher' });
    expect(logitMseLoss.options.safeParse({ temperature: 4 }).success).toBe(false);
  });

  it('computes the function on the roles’ logits', () => {
    const logits = { student: tf.tensor2d(ZS), teacher: tf.tensor2d(ZT) };
    expectClose(runLossOnce(logitMseLoss, {}, { logits })['loss/logit-mse'], 4.79 / 6);
    tf.dispose(Object.values(logits));
  });
});
