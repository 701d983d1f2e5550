import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { prepareRun, Registry, runSpec } from '@tfkd/engine';
import { definePlugin, parseSpec, RunSpec, validate, type BatchSummary, type RunSpecInput } from '@tfkd/kd-core';
import { testModule } from '@tfkd/kd-core/testing';
import * as fs from 'fs';
import * as path from 'path';
import { z } from 'zod';
import { expectClose } from './__fixtures__/reference';
import { VIEW_WRITERS, viewWritersModule } from './__fixtures__/views';
import { mlkd, mlkdParts, mlkdSchema, type MlkdLogits, type MlkdOptions } from './mlkd';
import { logitLossesModule } from './module';

// loss/mlkd in real runs: two image views written by the view-writer fixtures (flip → `weak`,
// vertical flip at half contrast → `strong`), the student and the teacher run on both by the loss.

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const DEFAULTS = mlkdSchema.parse({});

interface Recomputed {
  ce: number;
  kd: number;
  cc: number;
  bc: number;
  total: number;
  /** max |student logits on the weak view − on x|: the views are not the main images. */
  weakVsX: number;
}

/** After the losses (stage observe), the pure function on the run's models and the step's views. */
function recorder(out: Recomputed[], counts: number[], batches: BatchSummary[]) {
  return definePlugin({
    id: 'obs/mlkd-record',
    kind: 'observer',
    describe: 'recomputes MLKD from the run’s models on the step’s views (test fixture)',
    options: z.object({}).strict(),
    stage: 'observe',
    create: (_o, deps) => {
      const student = deps.model?.('student') as LayersModel;
      const teacher = deps.model?.('teacher') as LayersModel;
      return {
        name: deps.name,
        register(bus) {
          bus.on('loss', (ctx) => {
            const v = ctx.batch.views as Record<string, tf.Tensor>;
            const run = (m: LayersModel, x: tf.Tensor, training: boolean) => m.apply(x, { training }) as tf.Tensor;
            const l: MlkdLogits = {
              studentWeak: run(student, v.weak, true),
              studentStrong: run(student, v.strong, true),
              teacherWeak: run(teacher, v.weak, false),
              teacherStrong: run(teacher, v.strong, false),
            };
            const p = mlkdParts(l, ctx.batch.y, DEFAULTS);
            const n = (t: tf.Tensor) => t.dataSync()[0];
            out.push({
              ce: n(p.ce),
              kd: n(p.kd),
              cc: n(p.cc),
              bc: n(p.bc),
              total: n(mlkd(l, ctx.batch.y, DEFAULTS)),
              weakVsX: n(tf.max(tf.abs(tf.sub(l.studentWeak, run(student, ctx.batch.x, true))))),
            });
          });
          bus.on('batchEnd', (b) => {
            batches.push(b);
            counts.push(tf.memory().numTensors);
          });
        },
      };
    },
  });
}

function runSpecOf(over: Partial<RunSpecInput> = {}, plugins: RunSpecInput['plugins'] = [...VIEW_WRITERS, { use: 'loss/mlkd' }, { use: 'obs/mlkd-record' }]): RunSpec {
  return RunSpec.parse({
    seed: 5,
    backend: 'cpu',
    data: { name: 'blobs', train: 16, test: 4 },
    teacher: { model: 'test-dense', seed: 11, train: { epochs: 1 } },
    student: { model: 'test-dense' },
    train: { epochs: 2, batchSize: 4, optimizer: { name: 'sgd', lr: 0.1, momentum: 0, weightDecay: 0 } },
    plugins,
    evalEvery: 100,
    ...over,
  });
}

describe('loss/mlkd in an Engine run with two image views', () => {
  it('each step: the terms equal the pure function on the run’s models and views; loss = 0.1·ce + 0.9·(kd + cc + bc)', async () => {
    const out: Recomputed[] = [];
    const batches: BatchSummary[] = [];
    const registry = new Registry([testModule(recorder(out, [], batches)), viewWritersModule, logitLossesModule]);
    const result = await runSpec(runSpecOf(), { registry, cacheDir: null });
    result.models.forEach((m) => m.dispose());
    expect(batches).toHaveLength(8);
    expect(out).toHaveLength(8);
    batches.forEach((b, i) => {
      const r = out[i];
      expect(Object.keys(b.terms)).toEqual(['loss/mlkd:ce', 'loss/mlkd:kd', 'loss/mlkd:cc', 'loss/mlkd:bc']);
      expectClose(b.terms['loss/mlkd:ce'], r.ce);
      expectClose(b.terms['loss/mlkd:kd'], r.kd);
      expectClose(b.terms['loss/mlkd:cc'], r.cc);
      expectClose(b.terms['loss/mlkd:bc'], r.bc);
      expectClose(b.loss, r.total);
      expectClose(b.loss, 0.1 * r.ce + 0.9 * (r.kd + r.cc + r.bc));
      expect(r.kd).toBeGreaterThan(0);
      expect(r.weakVsX).toBeGreaterThan(1e-4);
    });
    // ledger: the student forwards both views of every image (2 × 16 × 2 epochs); the teacher both
    // views too, plus the engine's prefetch of its own input (the clean images: 16 forwards in epoch 1,
    // then 16 cache hits — x is never transformed here)
    expect(result.ledger.roles.student.forwardImages).toBe(64);
    expect(result.ledger.roles.student.backwardImages).toBe(32);
    expect(result.ledger.roles.teacher.forwardImages).toBe(64 + 16);
    expect(result.ledger.roles.teacher.cacheHits).toBe(16);
  });

  it('ccScale and bcScale weigh the class and batch terms: loss = 0.1·ce + 0.9·(kd + 50·cc + 200·bc), terms unchanged', async () => {
    const out: Recomputed[] = [];
    const batches: BatchSummary[] = [];
    const registry = new Registry([testModule(recorder(out, [], batches)), viewWritersModule, logitLossesModule]);
    const spec = runSpecOf({}, [...VIEW_WRITERS, { use: 'loss/mlkd', with: { ccScale: 50, bcScale: 200 } }, { use: 'obs/mlkd-record' }]);
    const result = await runSpec(spec, { registry, cacheDir: null });
    result.models.forEach((m) => m.dispose());
    expect(batches).toHaveLength(8);
    batches.forEach((b, i) => {
      const r = out[i];
      expectClose(b.terms['loss/mlkd:cc'], r.cc);
      expectClose(b.terms['loss/mlkd:bc'], r.bc);
      expectClose(b.loss, 0.1 * r.ce + 0.9 * (r.kd + 50 * r.cc + 200 * r.bc));
      expect(Math.abs(b.loss - r.total)).toBeGreaterThan(1e-3); // the reference weighting would differ
    });
  });

  it('does not leak tensors: numTensors after step 5 equals numTensors after step 32', async () => {
    const counts: number[] = [];
    const registry = new Registry([testModule(recorder([], counts, [])), viewWritersModule, logitLossesModule]);
    const s = runSpecOf({ data: { name: 'blobs', train: 64, test: 4 }, train: { epochs: 2, batchSize: 4, optimizer: { name: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 5e-4 } } });
    const result = await runSpec(s, { registry, cacheDir: null });
    result.models.forEach((m) => m.dispose());
    expect(counts).toHaveLength(32);
    expect(counts[31]).toBe(counts[4]);
  });

  it.each([
    ['no view is written', [], /reads the image views 'weak' and 'strong', and no plugin writes them \(no plugin writes an image view\)/],
    ['only the weak view is written', [{ use: 'test/view-weak' }], /reads the image view 'strong', and no plugin writes it \(the plugins write the views 'weak'/],
  ])('%s: KD_PLUGIN_DEPENDENCY at the plugin’s path at start-up, before anything trains', async (_what, writers, message) => {
    const registry = new Registry([testModule(), viewWritersModule, logitLossesModule]);
    const e = (await prepareRun(runSpecOf({}, [...writers, { use: 'test/ce' }, { use: 'loss/mlkd' }]), { registry, cacheDir: null }).catch((x) => x)) as { code?: string; path?: string; message?: string; fix?: string };
    expect(e.code).toBe('KD_PLUGIN_DEPENDENCY');
    expect(e.path).toBe(`plugins[${writers.length + 1}]`);
    expect(e.message).toMatch(message);
    expect(e.fix).toMatch(/view: (weak|strong)/);
  });
});

describe('examples/logit-mlkd.yaml', () => {
  const file = path.resolve(__dirname, '../../../examples/logit-mlkd.yaml');

  it('parses; loss/mlkd’s options validate; its augmentations write the weak and the strong view, the strong one with RandAugment', () => {
    const spec = parseSpec(fs.readFileSync(file, 'utf8'), 'logit-mlkd.yaml');
    const registry = new Registry([logitLossesModule]);
    const i = spec.plugins.findIndex((p) => p.use === 'loss/mlkd');
    expect(i).toBeGreaterThan(0);
    const o = validate(registry.plugin('loss/mlkd', 'use').options, spec.plugins[i].with, { code: 'KD_PLUGIN_OPTIONS', prefix: `plugins[${i}].with` }) as MlkdOptions & { weakView: string; strongView: string };
    const writers = (view: string) => spec.plugins.slice(0, i).filter((p) => (p.with as { view?: string } | undefined)?.view === view).map((p) => p.use);
    expect(writers(o.weakView)).toEqual(['augment/random-crop', 'augment/flip']);
    expect(writers(o.strongView)).toContain('augment/randaugment');
    expect(spec.plugins.slice(0, i).every((p) => (p.with as { view?: string } | undefined)?.view !== undefined)).toBe(true);
    expect(spec.teacher).toBeDefined();
  });
});
