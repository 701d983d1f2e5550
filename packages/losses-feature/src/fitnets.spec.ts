import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { Rng } from '@tfkd/kd-core';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { expectClose, num, values } from './__fixtures__/reference';
import { Adapter, planAdapter } from './adapters';
import { hintLoss } from './fitnets';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('loss/fitnets', () => {
  it('plans RepDistiller ConvReg geometry from the tap shapes', () => {
    expect(planAdapter([7, 7, 32], [7, 7, 64])).toMatchObject({ kind: 'conv', kh: 1, kw: 1, stride: 1, outChannels: 64 });
    expect(planAdapter([14, 14, 16], [7, 7, 64])).toMatchObject({ kind: 'conv', kh: 3, kw: 3, stride: 2, padding: 'same' });
    expect(planAdapter([7, 7, 32], [3, 3, 128])).toMatchObject({ kind: 'conv', kh: 5, kw: 5, stride: 1, padding: 'valid' });
    expect(planAdapter([8], [16])).toEqual({ kind: 'dense', inUnits: 8, outUnits: 16 });
    expect(planAdapter([3, 3, 8], [7, 7, 8])).toBeNull();
    expect(planAdapter([1568], [7, 7, 64])).toBeNull();
  });

  it('hand-computed value through a 1×1 conv adapter', () => {
    // f_s: 1×1×2 pixels with 1 channel: 1, 2. Adapter 1 → 2 channels, kernel [[1, −1]], bias (0.5, 0), no ReLU:
    // r = pixel 0: (1.5, −1), pixel 1: (2.5, −2). f_t = pixel 0: (1, 0), pixel 1: (2, −2)
    // squared errors: .25, 1, .25, 0 → mean 1.5/4 = 0.375
    const a = new Adapter(planAdapter([1, 2, 1], [1, 2, 2])!, new Rng(1), false);
    a.kernel.assign(tf.tensor4d([1, -1], [1, 1, 1, 2]));
    a.bias.assign(tf.tensor1d([0.5, 0]));
    const r = a.apply(tf.tensor4d([1, 2], [1, 1, 2, 1]));
    expectClose(num(hintLoss(r, tf.tensor4d([1, 0, 2, -2], [1, 1, 2, 2]))), 0.375, 1e-6);
    a.variables.forEach((v) => v.dispose());
  });

  it('adapter output has the target shape; gradient w.r.t. the student map matches finite differences', () => {
    const a = new Adapter(planAdapter([5, 5, 2], [3, 3, 3])!, new Rng(2), true);
    const ft = tf.tensor4d(values(2 * 3 * 3 * 3, 61, 0, 1), [2, 3, 3, 3]);
    expect(a.apply(tf.zeros([2, 5, 5, 2])).shape).toEqual([2, 3, 3, 3]);
    const r = finiteDifferenceCheck((x) => hintLoss(a.apply(x), ft), values(2 * 5 * 5 * 2, 62), [2, 5, 5, 2], 1e-3);
    expect(r.maxRelError).toBeLessThan(2e-2);
    a.variables.forEach((v) => v.dispose());
  });

  it('initialisation is seeded: same Rng seed, same kernel', () => {
    const [a, b] = [new Adapter({ kind: 'dense', inUnits: 3, outUnits: 2 }, new Rng(9), false), new Adapter({ kind: 'dense', inUnits: 3, outUnits: 2 }, new Rng(9), false)];
    expect(Array.from(a.kernel.dataSync())).toEqual(Array.from(b.kernel.dataSync()));
    expect(Math.max(...Array.from(a.kernel.dataSync()).map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(3));
    [...a.variables, ...b.variables].forEach((v) => v.dispose());
  });
});
