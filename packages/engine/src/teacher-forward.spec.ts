/**
 * The frozen teacher's fast forward wired into the engine (`EngineOptions.teacherForward`): a KD run
 * with the teacher in a worker thread gives the sequential run's evaluation, history, ledger and
 * student weights bit for bit; so does a resume; the worker is gone at the end, on an error and on a
 * stop; runs whose batches a sampler changes fall back with one warning; batch-norm folding feeds the
 * same (folded) forward to the step and to the worker.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { ContainerModule } from 'inversify';
import { z } from 'zod';
import { definePlugin, PLUGIN_DEFINITION, RunSpec, type PluginDefinition, type RunSpecInput } from '@tfkd/kd-core';
import { testCrossEntropy, testLogitMatch } from '@tfkd/kd-core/testing';
import { wasmTrainModule } from '@tfkd/backend-wasm-train';
import { datasetsModule } from '@tfkd/datasets';
import { foldBatchNorm, getModelDefinition, modelsModule } from '@tfkd/models';
import { Engine, type RunResult } from './engine';
import { readCheckpoint, writeCheckpoint } from './node/checkpoint-files';
import { teacherWorkerSource, TeacherWorker } from './node/teacher-worker';
import { Registry } from './registry';
import type { TeacherForwardOptions, TeacherSource } from './teacher-source';

jest.setTimeout(180_000);

/** Feature-style loss on a teacher tap: its values enter the loss (scaled by the student's logits). */
const tapLoss = definePlugin({
  id: 'test/tap-energy',
  kind: 'loss',
  describe: 'mean(teacher tap²) · mean(student logits²) · 1e-3 (test fixture)',
  options: z.object({ tap: z.string() }).strict(),
  requires: (o) => ({ roles: ['student', 'teacher'], taps: [`teacher.${o.tap}`] }),
  create(o, deps) {
    return {
      name: deps.name,
      register(bus) {
        bus.on('loss', (ctx) => {
          const t = ctx.outputs('teacher').taps[o.tap];
          const s = ctx.outputs('student').logits;
          ctx.addLoss({ value: tf.mul(tf.mul(tf.mean(tf.square(t)), tf.mean(tf.square(s))), 1e-3) as tf.Scalar });
        });
      },
    };
  },
});

/** Records tf.memory().numTensors at every epoch end. */
const memory: number[] = [];
const memoryProbe = definePlugin({
  id: 'test/memory',
  kind: 'observer',
  describe: 'numTensors at epoch ends (test fixture)',
  options: z.object({}).strict(),
  create: (_o, deps) => ({ name: deps.name, register: (bus) => bus.on('epochEnd', () => void memory.push(tf.memory().numTensors)) }),
});

/** Throws in the loss of the given step (an error mid-run). */
const failing = definePlugin({
  id: 'test/fail-at',
  kind: 'loss',
  describe: 'throws at step `at` (test fixture)',
  options: z.object({ at: z.number().int() }).strict(),
  create: (o, deps) => ({
    name: deps.name,
    register: (bus) =>
      bus.on('loss', (ctx) => {
        if (ctx.step === o.at) throw new Error('boom');
      }),
  }),
});

/** A sampler that replaces the batch by a flipped copy (transforms it). */
const flipper = definePlugin({
  id: 'test/flip-all',
  kind: 'sampler',
  describe: 'horizontal flip of every image (test fixture)',
  options: z.object({}).strict(),
  transformsBatch: true,
  create: (_o, deps) => ({
    name: deps.name,
    register: (bus) => bus.on('batchStart', (ctx) => ctx.replaceBatch({ x: tf.reverse(ctx.batch.x, 2), y: ctx.batch.y }, { transformed: true })),
  }),
});

const testPlugins = new ContainerModule((o) => {
  for (const d of [testCrossEntropy, testLogitMatch, tapLoss, memoryProbe, failing, flipper] as PluginDefinition[]) o.bind(PLUGIN_DEFINITION).toConstantValue(d);
});
const registry = () =>
  new Registry([
    { name: '@tfkd/backend-wasm-train', module: wasmTrainModule },
    { name: '@tfkd/datasets', module: datasetsModule },
    { name: '@tfkd/models', module: modelsModule },
    { name: 'test', module: testPlugins },
  ]);

// The shipped Fashion-MNIST subset, cut to 200 training images: batches of 32 → 7 per epoch, the last of 8.
const KD: RunSpecInput = {
  seed: 6,
  backend: 'wasm',
  data: { name: 'fashion-mnist', subset: true, limit: { train: 200, test: 100 } },
  teacher: { model: 'cnn-small' },
  student: { model: 'mlp', options: { hidden: [32] } },
  train: { epochs: 2, batchSize: 32, optimizer: { name: 'adam', lr: 0.003, weightDecay: 0 } },
  plugins: [{ use: 'test/ce', weight: 0.5 }, { use: 'test/logit-match', weight: 0.5 }, { use: 'test/tap-energy', with: { tap: 'block1' } }, { use: 'test/memory' }],
};
const BATCHES = 7;

/** A teacher source that counts what it serves and remembers the workers it started. */
function counting(): { options: TeacherForwardOptions['worker']; workers: TeacherWorker[]; taken: () => number } {
  const workers: TeacherWorker[] = [];
  let taken = 0;
  return {
    workers,
    taken: () => taken,
    options: async (req) => {
      const w = (await teacherWorkerSource(req)) as TeacherWorker;
      workers.push(w);
      const src: TeacherSource = {
        prefetch: (i) => w.prefetch(i),
        has: (i) => w.has(i),
        takeTensors: (i) => (taken++, w.takeTensors(i)),
        retain: (k) => w.retain(k),
        close: () => w.close(),
      };
      return src;
    },
  };
}

interface Outcome {
  result: RunResult;
  weights: Buffer[];
  warnings: string[];
  logs: string[];
  memory: number[];
}

let teacher: LayersModel;
let tmp: string;

async function run(spec: RunSpecInput, opts: { teacherForward?: TeacherForwardOptions; resume?: string; stopAfter?: number; checkpointDir?: string; teacherModel?: LayersModel } = {}): Promise<Outcome> {
  memory.length = 0;
  const warnings: string[] = [];
  const logs: string[] = [];
  let steps = 0;
  const engine = new Engine(RunSpec.parse(spec), {
    registry: registry(),
    models: new Map([['teacher', opts.teacherModel ?? teacher]]),
    teacherForward: opts.teacherForward,
    warn: (l) => void warnings.push(l),
    log: (l) => void logs.push(l),
    ...(opts.resume ? { resume: readCheckpoint(opts.resume) } : {}),
    ...(opts.checkpointDir ? { onCheckpoint: (s) => void writeCheckpoint(opts.checkpointDir as string, s) } : {}),
    ...(opts.stopAfter !== undefined ? { shouldStop: () => steps >= (opts.stopAfter as number) } : {}),
    observe: (bus) => void bus.events$.subscribe((e) => void (e.hook === 'batchEnd' && steps++)),
  });
  try {
    const result = await engine.run();
    const student = result.models.get('student') as LayersModel;
    const weights = student.getWeights().map((w) => Buffer.from((w.dataSync() as Float32Array).slice().buffer));
    return { result, weights, warnings, logs, memory: [...memory] };
  } finally {
    engine.dispose();
  }
}

/** Everything a run folder reports that must not depend on the teacher's route. */
function sameRun(a: Outcome, b: Outcome): void {
  expect(b.result.eval).toEqual(a.result.eval);
  expect(b.result.history.map((h) => [h.phase, h.epoch, h.train, h.eval])).toEqual(a.result.history.map((h) => [h.phase, h.epoch, h.train, h.eval]));
  expect(b.result.ledger.roles).toEqual(a.result.ledger.roles);
  expect(b.result.ledger.totalFlops).toBe(a.result.ledger.totalFlops);
  expect(b.weights.length).toBe(a.weights.length);
  b.weights.forEach((w, i) => expect(w.equals(a.weights[i])).toBe(true));
}

beforeAll(async () => {
  expect(await (await import('@tfkd/backend-wasm-train')).initWasmBackend()).toBe(true);
  teacher = getModelDefinition('cnn-small').build({ inputShape: [28, 28, 1], numClasses: 10, seed: 2 });
  teacher.trainable = false;
}, 60_000);
afterAll(() => teacher.dispose());
beforeEach(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-tfwd-'))));
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('teacherForward.worker: the frozen teacher one batch ahead in a worker thread', () => {
  it('cache off: every step served by the worker; eval, history, ledger and student weights equal the sequential run bit for bit; memory flat', async () => {
    const spec = { ...KD, teacherCache: 'off' as const };
    const sequential = await run(spec);
    const w = counting();
    const overlapped = await run(spec, { teacherForward: { worker: w.options } });
    sameRun(sequential, overlapped);
    expect(w.taken()).toBe(2 * BATCHES);
    expect(overlapped.result.ledger.roles.teacher.forwardImages).toBe(2 * 200);
    expect(new Set(overlapped.result.history.map((h) => h.train.loss)).size).toBe(2);
    // the worker is gone once the run returns
    expect(w.workers).toHaveLength(1);
    expect(w.workers[0].alive).toBe(false);
    expect(overlapped.memory).toHaveLength(2);
    expect(overlapped.memory[1]).toBe(overlapped.memory[0]);
    expect(overlapped.warnings).toEqual([]);
  });

  it('cache on: the worker fills the teacher-output cache in epoch 1, is stopped once the cache holds every sample, and the run is the sequential one', async () => {
    const sequential = await run(KD);
    const w = counting();
    const overlapped = await run(KD, { teacherForward: { worker: w.options } });
    sameRun(sequential, overlapped);
    expect(w.taken()).toBe(BATCHES);
    expect(overlapped.result.ledger.roles.teacher.cacheHits).toBe(200);
    expect(w.workers[0].alive).toBe(false);
    expect(overlapped.memory[1]).toBe(overlapped.memory[0]);
  });

  it('a run stopped mid-epoch and resumed, both with the worker, equals the uninterrupted run; the stopped run leaves no worker', async () => {
    const spec = { ...KD, teacherCache: 'off' as const, train: { ...KD.train, epochs: 3 } };
    const whole = await run(spec);
    const first = counting();
    const dir = path.join(tmp, 'checkpoint');
    const stopped = await run(spec, { teacherForward: { worker: first.options }, stopAfter: 10, checkpointDir: dir });
    expect(stopped.result.status).toBe('interrupted');
    expect(stopped.result.stoppedAt).toMatchObject({ epoch: 2, batchIndex: 3 });
    expect(first.workers[0].alive).toBe(false);
    const second = counting();
    const resumed = await run(spec, { teacherForward: { worker: second.options }, resume: dir });
    expect(resumed.result.status).toBe('completed');
    // the resumed position's batch is fetched first: every remaining step served by the worker
    expect(second.taken()).toBe(3 * BATCHES - 10);
    sameRun(whole, resumed);
    expect(second.workers[0].alive).toBe(false);
  });

  it('a teacher taking flat inputs (the batch reshaped for it): bit for bit, a dense tap included', async () => {
    const input = tfl.input({ shape: [784] });
    const fc1 = tfl.layers.dense({ units: 48, activation: 'relu', name: 'fc1', kernelInitializer: tfl.initializers.glorotUniform({ seed: 8 }) }).apply(input) as tfl.SymbolicTensor;
    const logits = tfl.layers.dense({ units: 10, name: 'logits', kernelInitializer: tfl.initializers.glorotUniform({ seed: 9 }) }).apply(fc1) as tfl.SymbolicTensor;
    const flat = tfl.model({ inputs: input, outputs: logits });
    flat.trainable = false;
    try {
      const spec = { ...KD, teacherCache: 'off' as const, plugins: [{ use: 'test/logit-match' }, { use: 'test/tap-energy', with: { tap: 'fc1' } }] };
      const sequential = await run(spec, { teacherModel: flat });
      const w = counting();
      const overlapped = await run(spec, { teacherModel: flat, teacherForward: { worker: w.options } });
      sameRun(sequential, overlapped);
      expect(w.taken()).toBe(2 * BATCHES);
    } finally {
      flat.dispose();
    }
  });

  it('Engine.stepper() with the worker: the sequential losses, and dispose() terminates the worker', async () => {
    const spec = RunSpec.parse({ ...KD, teacherCache: 'off' });
    const losses = async (teacherForward?: TeacherForwardOptions) => {
      const engine = new Engine(spec, { registry: registry(), models: new Map([['teacher', teacher]]), teacherForward });
      const stepper = await engine.stepper();
      const out = Array.from({ length: 9 }, () => stepper.step().loss);
      engine.dispose();
      return out;
    };
    const sequential = await losses();
    const w = counting();
    expect(await losses({ worker: w.options })).toEqual(sequential);
    expect(w.taken()).toBe(9);
    await new Promise((r) => setTimeout(r, 200));
    expect(w.workers[0].alive).toBe(false);
  });

  it('an error mid-run terminates the worker', async () => {
    const w = counting();
    const spec = { ...KD, teacherCache: 'off' as const, plugins: [...(KD.plugins ?? []), { use: 'test/fail-at', with: { at: 9 } }] };
    await expect(run(spec, { teacherForward: { worker: w.options } })).rejects.toThrow(/boom/);
    expect(w.workers).toHaveLength(1);
    expect(w.workers[0].alive).toBe(false);
  });

  it('batches changed by a sampler: no worker (one warning), the sequential forward', async () => {
    const spec = { ...KD, plugins: [{ use: 'test/flip-all' }, ...(KD.plugins ?? [])] };
    const sequential = await run(spec);
    const w = counting();
    const asked = await run(spec, { teacherForward: { worker: w.options } });
    expect(w.workers).toHaveLength(0);
    expect(asked.warnings).toEqual([expect.stringMatching(/^teacher worker: off, 'test\/flip-all' changes the batches, so the teacher's input is not known ahead; the teacher is forwarded in the training step$/)]);
    sameRun(sequential, asked);
  });
});

describe('teacherForward.foldBatchNorm: a ResNet teacher forwarded with its batch norms folded', () => {
  it('fold + worker equals fold alone bit for bit, stays within float32 of the unfolded run, and frees the folded model', async () => {
    const resnet = getModelDefinition('resnet').build({ inputShape: [28, 28, 1], numClasses: 10, seed: 4, widths: [8, 16, 32] });
    resnet.trainable = false;
    // trained-looking batch-norm statistics
    for (const [i, l] of resnet.layers.filter((x) => x.getClassName() === 'BatchNormalization').entries()) {
      const c = l.getWeights()[0].shape[0] as number;
      const ws = [0.9, 0.1, 0.05, 1.3].map((v, k) => tf.tensor1d(Array.from({ length: c }, (_, j) => v + 0.1 * Math.sin(i + j + k))));
      l.setWeights(ws);
      tf.dispose(ws);
    }
    // taps on a ReLU whose conv-BN-ReLU unit is folded (stem) and on a stage output
    const spec: RunSpecInput = { ...KD, teacherCache: 'off', teacher: { model: 'resnet' }, plugins: [{ use: 'test/ce', weight: 0.5 }, { use: 'test/logit-match', weight: 0.5 }, { use: 'test/tap-energy', with: { tap: 'stem' } }] };
    const before = tf.memory().numTensors;
    try {
      const plain = await run(spec, { teacherModel: resnet });
      const folded = await run(spec, { teacherModel: resnet, teacherForward: { foldBatchNorm } });
      const w = counting();
      const both = await run(spec, { teacherModel: resnet, teacherForward: { foldBatchNorm, worker: w.options } });
      sameRun(folded, both);
      const bns = resnet.layers.filter((l) => l.getClassName() === 'BatchNormalization').length;
      expect(folded.logs).toContain(`teacher 'teacher': ${bns} batch norms folded into the preceding layers for the frozen forward`);
      expect(both.logs).toContain("teacher 'teacher': forward in a worker thread, one batch ahead");
      expect(w.taken()).toBe(2 * BATCHES);
      // folding changes the teacher's outputs by float32 rounding only
      const loss = (o: Outcome) => o.result.history.map((h) => h.train.loss);
      loss(folded).forEach((v, i) => expect(Math.abs(v - loss(plain)[i])).toBeLessThanOrEqual(1e-4 * Math.abs(loss(plain)[i])));
      expect(folded.result.ledger.roles).toEqual(plain.result.ledger.roles);
      // every run's models but the teacher are freed, the folded copies included
      expect(tf.memory().numTensors - before).toBe(0);
    } finally {
      resnet.dispose();
    }
  });
});
