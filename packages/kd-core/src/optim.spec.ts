import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { makeOptimizer, setLearningRate } from './optim';
import { TrainSpec } from './spec';

describe('makeOptimizer', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it.each([
    ['sgd + momentum', { name: 'sgd', lr: 0.1, momentum: 0.9 }],
    ['sgd + nesterov', { name: 'sgd', lr: 0.1, momentum: 0.9, nesterov: true }],
    ['plain sgd', { name: 'sgd', lr: 0.1, momentum: 0 }],
    ['adam', { name: 'adam', lr: 0.01 }],
  ] as const)('%s: dispose() frees every tensor the optimizer made (tfjs MomentumOptimizer leaks its lr scalar)', (_, optimizer) => {
    const w = tf.variable(tf.tensor1d([1, 2, 3]));
    const before = tf.memory().numTensors;
    const opt = makeOptimizer(TrainSpec.parse({ optimizer }));
    for (let step = 0; step < 3; step++) {
      setLearningRate(opt, 0.1 / (step + 1));
      tf.tidy(() => void opt.minimize(() => tf.sum(tf.square(w)) as tf.Scalar, false, [w]));
    }
    expect(tf.memory().numTensors).toBeGreaterThan(before);
    opt.dispose();
    expect(tf.memory().numTensors).toBe(before);
    // the weights did move: the optimizer worked before it was freed
    expect(Array.from(w.dataSync())[0]).toBeLessThan(1);
    w.dispose();
  });
});
