import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { Engine, Registry, runSpec } from '@tfkd/engine';
import { nodeModule } from '@tfkd/engine/node';
import { datasetsModule } from '@tfkd/datasets';
import { MODEL_DEFINITION, RunSpec, type RunSpecInput } from '@tfkd/kd-core';
import { testModule } from '@tfkd/kd-core/testing';
import { logitLossesModule } from '@tfkd/losses-logit';
import { MODEL_ZOO, modelsModule, modelTools } from '@tfkd/models';
import { ContainerModule } from 'inversify';
import { netaugModule } from './module';

jest.setTimeout(120_000);

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const registry = () => new Registry([nodeModule, datasetsModule, modelsModule, logitLossesModule, netaugModule]);

// The shipped Fashion-MNIST subset, a few batches: mlp-student at width 0.25 (784-32-32-10).
const base: RunSpecInput = {
  seed: 2,
  backend: 'cpu',
  data: { name: 'fashion-mnist', subset: true, limit: { train: 256, test: 128 } },
  student: { model: 'mlp-student', options: { width: 0.25 } },
  train: { epochs: 1, batchSize: 64, optimizer: { name: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 0 } },
  plugins: [{ use: 'loss/cross-entropy' }, { use: 'train/netaug' }],
  eval: ['accuracy'],
};
const TINY_PARAMS = 784 * 32 + 32 + (32 * 32 + 32) + (32 * 10 + 10); // 26506

describe('Engine + train/netaug on the shipped subset', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tfkd-netaug-'));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('trains: loss = CE(tiny) + α·CE(augmented); the saved student is the tiny model, its parameter count unchanged', async () => {
    const spec = RunSpec.parse({ ...base, plugins: [{ use: 'loss/cross-entropy' }, { use: 'train/netaug', with: { alpha: 0.5 } }] });
    const result = await runSpec(spec, { registry: registry(), cacheDir: null });
    const student = result.models.get('student') as LayersModel;
    try {
      const tr = result.history[0].train;
      expect(Object.keys(tr).sort()).toEqual(['loss', 'loss/cross-entropy', 'train/netaug:aug']);
      // the term's value is checked against an independent CE in 'widths: [1] …' below
      expect(Number.isFinite(tr['train/netaug:aug'])).toBe(true);
      expect(tr.loss).toBeCloseTo(tr['loss/cross-entropy'] + 0.5 * tr['train/netaug:aug'], 4);
      expect(student.countParams()).toBe(TINY_PARAMS);
      // what `kd run` writes to student/: the models package's save, loaded back
      const dir = path.join(tmp, 'student');
      await modelTools.save(student, dir);
      const loaded = await modelTools.load(dir);
      expect(loaded.countParams()).toBe(TINY_PARAMS);
      expect(loaded.layers.map((l) => l.name)).toEqual(['input', 'flatten', 'fc1', 'fc2', 'embedding', 'logits']);
      const x = tf.tensor4d(result.data.test.images.subarray(0, 8 * 784), [8, 28, 28, 1]);
      const [a, b] = [student, loaded].map((m) => (m.predict(x) as tf.Tensor).dataSync());
      expect(Array.from(b)).toEqual(Array.from(a));
      x.dispose();
      loaded.dispose();
      expect(result.eval.student.accuracy).toBeGreaterThan(0.1);
    } finally {
      student.dispose();
    }
  });

  it('changes what the student learns (same seed with and without NetAug), and is seeded: a rerun is bit-identical', async () => {
    const weights = async (plugins: RunSpecInput['plugins']) => {
      const r = await runSpec(RunSpec.parse({ ...base, train: { ...base.train, maxBatches: 2 }, plugins }), { registry: registry(), cacheDir: null });
      const m = r.models.get('student') as LayersModel;
      const w = m.getWeights().map((t) => Array.from(t.dataSync()));
      m.dispose();
      return w;
    };
    const scratch = await weights([{ use: 'loss/cross-entropy' }]);
    const netaug = await weights(base.plugins);
    expect(netaug.map((w) => w.length)).toEqual(scratch.map((w) => w.length));
    expect(netaug[0]).not.toEqual(scratch[0]);
    expect(await weights(base.plugins)).toEqual(netaug);
  });
});

describe('the augmented term against the tiny CE (test-dense on blobs, stepped)', () => {
  const stepTerms = async (widths: number[]) => {
    const spec = RunSpec.parse({
      seed: 1,
      backend: 'cpu',
      data: { name: 'blobs', train: 32, test: 8 },
      student: { model: 'test-dense' },
      train: { epochs: 1, batchSize: 8, optimizer: { name: 'sgd', lr: 0.1, momentum: 0, weightDecay: 0 } },
      plugins: [{ use: 'test/ce' }, { use: 'train/netaug', with: { widths, alpha: 0.5 } }],
    });
    const engine = new Engine(spec, { registry: new Registry([testModule(), netaugModule]) });
    try {
      const stepper = await engine.stepper();
      return Array.from({ length: 6 }, () => stepper.step());
    } finally {
      engine.dispose();
    }
  };

  it('widths: [1] — the augmented network is the student itself, so train/netaug:aug = CE(student logits, y) = test/ce, step by step', async () => {
    const steps = await stepTerms([1]);
    expect(steps).toHaveLength(6);
    for (const r of steps) {
      expect(r.terms['train/netaug:aug']).toBeCloseTo(r.terms['test/ce'], 6);
      // L = CE + α·CE_aug = 1.5·CE at α = 0.5
      expect(r.loss).toBeCloseTo(1.5 * r.terms['test/ce'], 5);
    }
    // not vacuous: with a wider network (extras initialised non-zero) the two terms differ
    const wide = await stepTerms([2]);
    expect(Math.abs(wide[0].terms['train/netaug:aug'] - wide[0].terms['test/ce'])).toBeGreaterThan(1e-4);
  });
});

describe('tf.memory() is flat across steps', () => {
  // Seeded 4×4 blobs (kd-core's fixtures) keep 30 steps of a CNN quick on the cpu backend.
  const zoo = new ContainerModule((o) => {
    for (const d of MODEL_ZOO) o.bind(MODEL_DEFINITION).toConstantValue(d);
  });
  it.each([
    ['mlp-teacher at width 0.02 (dropout in the augmented forward too)', { model: 'mlp-teacher', options: { width: 0.02 } }],
    ['cnn-small at width 0.25', { model: 'cnn-small', options: { width: 0.25 } }],
  ])('%s: numTensors after step 5 equals numTensors after step 30', async (_what, student) => {
    const spec = RunSpec.parse({
      seed: 1,
      backend: 'cpu',
      data: { name: 'blobs', train: 64, test: 8 },
      student,
      train: { epochs: 1, batchSize: 8, optimizer: { name: 'adam', lr: 0.01, weightDecay: 0 } },
      plugins: [{ use: 'test/ce' }, { use: 'train/netaug' }],
    });
    const engine = new Engine(spec, { registry: new Registry([testModule(), zoo, netaugModule]) });
    const stepper = await engine.stepper();
    const counts: number[] = [];
    for (let i = 0; i < 30; i++) {
      const r = stepper.step();
      expect(Number.isFinite(r.loss)).toBe(true);
      counts.push(tf.memory().numTensors);
    }
    engine.dispose();
    expect(counts[29]).toBe(counts[4]);
  });
});
