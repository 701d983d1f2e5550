import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { Engine, Registry } from '@tfkd/engine';
import { describePluginContract, halfBatchSampler } from '@tfkd/engine/testing';
import { crossEntropy, isKdError, labelTargets, RunSpec } from '@tfkd/kd-core';
import { testModule } from '@tfkd/kd-core/testing';
import { augmentModule } from './module';

// The contract kit for the four augmentations that keep hard labels. mixup and CutMix set soft
// targets, which the kit's half-batch sampler (run after them, without targets) may not drop:
// that refusal is tested below, and their runs in engine.spec.ts / resume.spec.ts.
describePluginContract({ module: augmentModule, id: 'augment/random-crop', options: { padding: 1 }, needsTeacher: false });
describePluginContract({ module: augmentModule, id: 'augment/flip', needsTeacher: false });
describePluginContract({ module: augmentModule, id: 'augment/random-erasing', options: { p: 1 }, needsTeacher: false });
describePluginContract({ module: augmentModule, id: 'augment/randaugment', options: { numOps: 3 }, invalidOptions: { magnitude: 31 }, needsTeacher: false });

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('crossEntropy with soft targets', () => {
  const z = tf.tensor2d([
    [2, -1, 0.5],
    [0.1, 0.3, -2],
  ]);
  it('CE(z, λ·onehot(a) + (1 − λ)·onehot(b)) = λ·CE(z, a) + (1 − λ)·CE(z, b) (mixup’s criterion), also with label smoothing', () => {
    const a = tf.tensor1d([0, 2], 'int32');
    const b = tf.tensor1d([1, 2], 'int32');
    const lam = 0.3;
    const soft = tf.tensor2d([
      [lam, 1 - lam, 0],
      [0, 0, 1],
    ]);
    for (const labelSmoothing of [0, 0.1]) {
      const mixed = crossEntropy(z, soft, { labelSmoothing }).dataSync()[0];
      const separate = lam * crossEntropy(z, a, { labelSmoothing }).dataSync()[0] + (1 - lam) * crossEntropy(z, b, { labelSmoothing }).dataSync()[0];
      expect(mixed).toBeCloseTo(separate, 6);
    }
    // by hand, row 0: −(0.3·log p0 + 0.7·log p1); row 1: −log p2
    const lse = (r: number[]) => Math.log(r.reduce((s, v) => s + Math.exp(v), 0));
    const want = (-(lam * (2 - lse([2, -1, 0.5])) + (1 - lam) * (-1 - lse([2, -1, 0.5]))) - (-2 - lse([0.1, 0.3, -2]))) / 2;
    expect(crossEntropy(z, soft).dataSync()[0]).toBeCloseTo(want, 6);
  });

  it('labelTargets prefers the batch’s soft targets, else its labels', () => {
    const y = tf.tensor1d([0, 1], 'int32');
    const t = tf.tensor2d([[1, 0], [0, 1]]);
    expect(labelTargets({ y })).toBe(y);
    expect(labelTargets({ y, targets: t })).toBe(t);
  });
});

describe('soft targets and later samplers', () => {
  it.each(['augment/mixup', 'augment/cutmix'])('%s followed by a sampler that drops the targets fails with KD_PLUGIN_DEPENDENCY and the fix', async (id) => {
    const spec = RunSpec.parse({
      seed: 1,
      backend: 'cpu',
      data: { name: 'blobs', train: 16, test: 8 },
      student: { model: 'test-dense' },
      train: { epochs: 1, batchSize: 4, optimizer: { name: 'sgd', lr: 0.05, momentum: 0, weightDecay: 0 } },
      plugins: [{ use: id, with: { p: 1 } }, { use: 'test/half-batch' }, { use: 'test/ce' }],
    });
    const engine = new Engine(spec, { registry: new Registry([testModule(halfBatchSampler), augmentModule]) });
    const e = await engine.run().then(() => null, (x: unknown) => x);
    engine.dispose();
    expect(isKdError(e) && e.code).toBe('KD_PLUGIN_DEPENDENCY');
    expect(String((e as Error).message)).toMatch(/soft label targets/);
  });
});
