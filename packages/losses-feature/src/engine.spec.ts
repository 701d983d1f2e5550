import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { Registry, prepareRun, runSpec } from '@tfkd/engine';
import { RunSpec, definePlugin, type BatchSummary, type KdError, type Plugin, type PluginDefinition, type RunSpecInput } from '@tfkd/kd-core';
import { testModule } from '@tfkd/kd-core/testing';
import { logitLossesModule } from '@tfkd/losses-logit';
import { z } from 'zod';
import { testConvModule } from './__fixtures__/models';
import { expectClose } from './__fixtures__/reference';
import { fitnetsLoss } from './fitnets';
import { featureLossesModule } from './module';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Records each batchEnd payload and tf.memory().numTensors after each step. */
function recorder(batches: BatchSummary[], counts: number[]): PluginDefinition {
  return definePlugin({
    id: 'obs/record',
    kind: 'observer',
    describe: 'records batchEnd payloads, for tests',
    options: z.object({}).strict(),
    create: (_o, deps) => ({
      name: deps.name,
      register: (bus) =>
        bus.on('batchEnd', (b) => {
          batches.push(b);
          counts.push(tf.memory().numTensors);
        }),
    }),
  });
}

const base = (over: Partial<RunSpecInput>): RunSpec =>
  RunSpec.parse({
    seed: 5,
    backend: 'cpu',
    data: { name: 'blobs', train: 40, test: 4 },
    teacher: { model: 'test-dense', seed: 11, train: { epochs: 1 } },
    student: { model: 'test-dense' },
    train: { epochs: 3, batchSize: 4, optimizer: { name: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 0 } },
    evalEvery: 100,
    ...over,
  });

const pair = [['student.fc1', 'teacher.fc1']];

/** Term name → weight in the total (spec weight × term weight). */
function checkTotals(batches: BatchSummary[], weights: Record<string, number>): void {
  for (const b of batches) {
    expect(Object.keys(b.terms).sort()).toEqual(Object.keys(weights).sort());
    for (const v of Object.values(b.terms)) expect(Number.isFinite(v)).toBe(true);
    expectClose(b.loss, Object.entries(weights).reduce((s, [k, w]) => s + w * b.terms[k], 0), 1e-4);
  }
}

describe('Engine runs', () => {
  it('test-dense fc1 taps: stacks SP, PKT, RKD, FitNets, AB, CRD with CE + hinton-kd; no tensor leak (step 5 = step 30)', async () => {
    const batches: BatchSummary[] = [];
    const counts: number[] = [];
    const registry = new Registry([testModule(recorder(batches, counts)), logitLossesModule, featureLossesModule]);
    const spec = base({
      plugins: [
        { use: 'loss/cross-entropy', weight: 0.1 },
        { use: 'loss/hinton-kd', weight: 0.9 },
        { use: 'loss/sp', with: { pairs: pair }, weight: 30 },
        { use: 'loss/pkt', with: { pairs: pair }, weight: 300 },
        { use: 'loss/rkd', with: { pairs: pair }, weight: 0.1 },
        { use: 'loss/fitnets', with: { pairs: pair }, weight: 1 },
        { use: 'loss/activation-boundary', with: { pairs: pair }, weight: 0.01 },
        { use: 'loss/crd', with: { pairs: pair, dim: 4 }, weight: 0.1 },
        { use: 'obs/record' },
      ],
    });
    const result = await runSpec(spec, { registry });
    result.models.forEach((m) => m.dispose());
    expect(batches).toHaveLength(30);
    checkTotals(batches, {
      'loss/cross-entropy': 0.1,
      'loss/hinton-kd': 0.9,
      'loss/sp': 30,
      'loss/pkt': 300,
      'loss/rkd:distance': 0.1 * 25,
      'loss/rkd:angle': 0.1 * 50,
      'loss/fitnets': 1,
      'loss/activation-boundary': 0.01,
      'loss/crd': 0.1,
    });
    expect(batches[0].terms['loss/rkd:distance']).toBeGreaterThan(0);
    expect(counts[29]).toBe(counts[4]);
  });

  it('test-conv NHWC taps: AT (pooled), NST (pooled), FitNets (stride-2 conv), AB (1×1 connector), FSP; no tensor leak', async () => {
    const batches: BatchSummary[] = [];
    const counts: number[] = [];
    const registry = new Registry([testModule(recorder(batches, counts)), testConvModule, logitLossesModule, featureLossesModule]);
    const spec = base({
      teacher: { model: 'test-conv', seed: 11, train: { epochs: 1 } },
      student: { model: 'test-conv' },
      plugins: [
        { use: 'loss/cross-entropy' },
        { use: 'loss/hinton-kd' },
        { use: 'loss/attention', with: { pairs: [['student.c1', 'teacher.p1'], ['student.c2', 'teacher.c2']] }, weight: 100 },
        { use: 'loss/nst', with: { pairs: [['student.c1', 'teacher.p1']] }, weight: 5 },
        { use: 'loss/fitnets', with: { pairs: [['student.c1', 'teacher.c2']] }, weight: 10 },
        { use: 'loss/activation-boundary', with: { pairs: [['student.p1', 'teacher.c2']] }, weight: 0.1 },
        { use: 'loss/fsp', with: { student: [['student.c1', 'student.p1']], teacher: [['teacher.c1', 'teacher.p1']] }, weight: 5 },
        { use: 'obs/record' },
      ],
    });
    const result = await runSpec(spec, { registry });
    result.models.forEach((m) => m.dispose());
    expect(batches).toHaveLength(30);
    checkTotals(batches, {
      'loss/cross-entropy': 1,
      'loss/hinton-kd': 1,
      'loss/attention': 100,
      'loss/nst': 5,
      'loss/fitnets': 10,
      'loss/activation-boundary': 0.1,
      'loss/fsp': 5,
    });
    expect(batches[0].terms['loss/attention']).toBeGreaterThan(0);
    expect(counts[29]).toBe(counts[4]);
  });

  it('FitNets: the adapter is trained (its variables change after one step), and is disposed with the engine', async () => {
    let plugin: Plugin | null = null;
    const spy: PluginDefinition = {
      ...(fitnetsLoss as PluginDefinition),
      create(o, deps) {
        plugin = (fitnetsLoss as PluginDefinition).create(o, deps);
        return plugin;
      },
    };
    const registry = new Registry([testModule(spy), logitLossesModule]);
    const engine = await prepareRun(base({ plugins: [{ use: 'loss/fitnets', with: { pairs: pair } }] }), { registry });
    const stepper = await engine.stepper();
    const vars = (plugin as unknown as Plugin).variables?.() ?? [];
    expect(vars.map((v) => v.shape)).toEqual([[8, 8], [8]]);
    const before = vars.map((v) => Array.from(v.dataSync()));
    const r = stepper.step();
    expect(r.loss).toBeGreaterThan(0);
    vars.forEach((v, i) => expect(Array.from(v.dataSync())).not.toEqual(before[i]));
    engine.dispose();
    expect(vars.every((v) => v.isDisposed)).toBe(true);
  });
});

describe('start-up shape errors (KD_SHAPE_MISMATCH, before any training)', () => {
  const prepareError = async (plugins: RunSpecInput['plugins'], teacher: RunSpecInput['teacher'] = { model: 'test-conv', seed: 11, train: { epochs: 1 } }) => {
    const registry = new Registry([testModule(), testConvModule, logitLossesModule, featureLossesModule]);
    // planned, not trained: the teacher (trained from labels) is checked as an untrained model
    const e = await prepareRun(base({ data: { name: 'blobs', train: 8, test: 4 }, teacher, student: { model: 'test-conv' }, plugins }), { registry }).then(
      (engine) => void engine.dispose(),
      (x) => x as KdError,
    );
    if (!e) throw new Error('expected the plan to fail');
    return e;
  };

  it('FitNets: a student map smaller than the target prints both shapes and the declared taps that fit', async () => {
    const e = await prepareError([{ use: 'loss/fitnets', with: { pairs: [['student.p1', 'teacher.c1'], ['student.c1', 'teacher.p1']] } }]);
    expect(e.code).toBe('KD_SHAPE_MISMATCH');
    expect(e.path).toBe('plugins[0].with.pairs[0]');
    expect(e.message).toContain('student.p1 [2,2,2] and teacher.c1 [4,4,2]');
    expect(e.fix).toContain('pair student.p1 with teacher.p1 [2,2,2]');
  });

  it('AT/NST need NHWC taps', async () => {
    const e = await prepareError([{ use: 'loss/attention', with: { pairs: pair } }], { model: 'test-dense', seed: 11, train: { epochs: 1 } });
    expect(e.code).toBe('KD_TAP_UNKNOWN'); // student test-conv has no fc1
    const registry = new Registry([testModule(), logitLossesModule, featureLossesModule]);
    await expect(prepareRun(base({ data: { name: 'blobs', train: 8, test: 4 }, plugins: [{ use: 'loss/nst', with: { pairs: pair } }] }), { registry })).rejects.toMatchObject({
      code: 'KD_SHAPE_MISMATCH',
      path: 'plugins[0].with.pairs[0][0]',
    });
  });

  it('FSP: channel counts that differ name both matrices', async () => {
    const e = await prepareError(
      [{ use: 'loss/fsp', with: { student: [['student.c1', 'student.c2']], teacher: [['teacher.c1', 'teacher.c2']] } }],
      { model: 'test-conv', seed: 11, options: { width: 4 }, train: { epochs: 1 } },
    );
    expect(e.code).toBe('KD_SHAPE_MISMATCH');
    expect(e.message).toContain('gives 2×4');
    expect(e.message).toContain('teacher.c1 [4,4,4]');
    expect(e.message).toContain('gives 4×8');
  });
});
