import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { prepareRun, Registry, runSpec } from '@tfkd/engine';
import { RunSpec, definePlugin, type BatchSummary, type RunSpecInput } from '@tfkd/kd-core';
import { testModule } from '@tfkd/kd-core/testing';
import { z } from 'zod';
import { expectClose } from './__fixtures__/reference';
import { crossEntropy } from './cross-entropy';
import { hintonKd } from './hinton-kd';
import { logitMse } from './logit-mse';
import { logitLossesModule } from './module';

/** Records every `batchEnd` payload, the tensor count after each step, and — inside the `loss`
 * hook, after the losses — the pure functions recomputed on the same step's logits. */
function recorder(batches: BatchSummary[], counts: number[], recomputed: Record<string, number>[]) {
  return definePlugin({
    id: 'obs/record',
    kind: 'observer',
    describe: 'records batchEnd payloads, for tests',
    options: z.object({}).strict(),
    create: (_o, deps) => ({
      name: deps.name,
      register(bus) {
        bus.on('loss', (ctx) => {
          const zs = ctx.outputs('student').logits;
          const zt = ctx.outputs('teacher').logits;
          recomputed.push({
            'loss/cross-entropy': crossEntropy(zs, ctx.batch.y).dataSync()[0],
            'loss/hinton-kd': hintonKd(zs, zt, { temperature: 4 }).dataSync()[0],
            'loss/logit-mse': logitMse(zs, zt).dataSync()[0],
          });
        });
        bus.on('batchEnd', (b) => {
          batches.push(b);
          counts.push(tf.memory().numTensors);
        });
      },
    }),
  });
}

/** The losses a DML-style run also uses with a peer student as the target. */
const PEER_LOSSES = ['loss/soft-target-ce', 'loss/logit-mse', 'loss/dkd', 'loss/dist', 'loss/logit-std-kd', 'loss/nkd', 'loss/ttm', 'loss/wttm', 'loss/ctkd'];

const WEIGHTS: Record<string, number> = { 'loss/cross-entropy': 0.1, 'loss/hinton-kd': 0.9, 'loss/logit-mse': 0.5 };

function stackedSpec(over: Partial<RunSpecInput> = {}): RunSpec {
  return RunSpec.parse({
    seed: 5,
    backend: 'cpu',
    data: { name: 'blobs', train: 16, test: 4 },
    teacher: { model: 'test-dense', seed: 11, train: { epochs: 1 } },
    student: { model: 'test-dense' },
    train: { epochs: 2, batchSize: 4, optimizer: { name: 'sgd', lr: 0.1, momentum: 0, weightDecay: 0 } },
    plugins: [
      { use: 'loss/cross-entropy', weight: 0.1 },
      { use: 'loss/hinton-kd', weight: 0.9 },
      { use: 'loss/logit-mse', weight: 0.5 },
      { use: 'obs/record' },
    ],
    ...over,
  });
}

describe('stacking the losses in an Engine run', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('each batch: loss = Σ weight · term, and each term equals its pure function on that step', async () => {
    const batches: BatchSummary[] = [];
    const recomputed: Record<string, number>[] = [];
    const registry = new Registry([testModule(recorder(batches, [], recomputed)), logitLossesModule]);
    const result = await runSpec(stackedSpec(), { registry, cacheDir: null });
    result.models.forEach((m) => m.dispose());

    expect(result.teachers.teacher.cached).toBe(false);
    expect(batches).toHaveLength(2 * 4);
    expect(recomputed).toHaveLength(2 * 4);
    batches.forEach((b, i) => {
      expect(b.phase).toBe('distill');
      expect(Object.keys(b.terms).sort()).toEqual(Object.keys(WEIGHTS).sort());
      const sum = Object.entries(WEIGHTS).reduce((s, [name, w]) => s + w * b.terms[name], 0);
      expectClose(b.loss, sum, 1e-5);
      for (const name of Object.keys(WEIGHTS)) {
        expect(b.terms[name]).toBeGreaterThan(0);
        expectClose(b.terms[name], recomputed[i][name], 1e-5);
      }
    });
  });

  it('does not leak tensors: numTensors after step 5 equals numTensors after step 40', async () => {
    const counts: number[] = [];
    const registry = new Registry([testModule(recorder([], counts, [])), logitLossesModule]);
    const s = stackedSpec({
      data: { name: 'blobs', train: 32, test: 4 },
      train: { epochs: 5, batchSize: 4, optimizer: { name: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 5e-4 } },
      plugins: [
        { use: 'loss/cross-entropy', weight: 0.1 },
        { use: 'loss/hinton-kd', weight: 0.9 },
        { use: 'loss/logit-mse', weight: 0.5 },
        { use: 'loss/dkd', with: { warmup: 2 } },
        { use: 'loss/dist', weight: 2 },
        { use: 'loss/soft-target-ce', weight: 0.1 },
        { use: 'loss/label-smoothing', weight: 0.1 },
        { use: 'loss/logit-std-kd', weight: 0.5 },
        { use: 'loss/nkd', weight: 0.1 },
        { use: 'loss/ttm', weight: 0.5 },
        { use: 'loss/wttm', weight: 0.5 },
        { use: 'loss/ctkd', weight: 0.5 },
        { use: 'obs/record' },
      ],
      evalEvery: 100,
    });
    const result = await runSpec(s, { registry, cacheDir: null });
    result.models.forEach((m) => m.dispose());
    expect(counts).toHaveLength(40);
    expect(counts[39]).toBe(counts[4]);
  });

  it('a loss whose role option names a missing role fails at start-up with the option path', async () => {
    const registry = new Registry([testModule(), logitLossesModule]);
    const started = prepareRun(stackedSpec({ plugins: [{ use: 'loss/cross-entropy' }, { use: 'loss/hinton-kd', with: { student: 'student.1' } }] }), { registry, cacheDir: null });
    await expect(started).rejects.toMatchObject({ code: 'KD_PLUGIN_DEPENDENCY', path: 'plugins[1]' });
  });

  it('DML-style: two students distil from each other with `student`/`teacher` options', async () => {
    const registry = new Registry([testModule(), logitLossesModule]);
    const s = RunSpec.parse({
      seed: 5,
      backend: 'cpu',
      data: { name: 'blobs', train: 8, test: 4 },
      students: [{ model: 'test-dense' }, { model: 'test-dense', seed: 99 }],
      train: { epochs: 1, batchSize: 4, optimizer: { name: 'sgd', lr: 0.1, momentum: 0, weightDecay: 0 } },
      plugins: [
        { use: 'loss/cross-entropy', name: 'ce0', with: { student: 'student.0' } },
        { use: 'loss/cross-entropy', name: 'ce1', with: { student: 'student.1' } },
        { use: 'loss/hinton-kd', name: 'kl01', with: { student: 'student.0', teacher: 'student.1', temperature: 1 } },
        { use: 'loss/hinton-kd', name: 'kl10', with: { student: 'student.1', teacher: 'student.0', temperature: 1 } },
        ...PEER_LOSSES.map((use) => ({
          use,
          weight: 0.1,
          with: { student: 'student.0', teacher: 'student.1' },
        })),
      ],
    });
    const result = await runSpec(s, { registry, cacheDir: null });
    result.models.forEach((m) => m.dispose());
    expect(result.history[0].train.kl01).toBeGreaterThan(0);
    expect(result.history[0].train.kl10).toBeGreaterThan(0);
    expect(Number.isFinite(result.history[0].train.loss)).toBe(true);
    for (const id of PEER_LOSSES) expect(result.history[0].train[id]).toBeGreaterThan(0);
  });
});
