import * as tf from '@tensorflow/tfjs-core';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import '@tensorflow/tfjs-backend-cpu';
import { z } from 'zod';
import { readCheckpoint, writeCheckpoint } from './node/checkpoint-files';
import { specDifferences, specHash, type TrainingState } from './checkpoint';
import { Engine, type RunResult } from './engine';
import { prepareRun } from './execute';
import { definePlugin, RunSpec, type RunSpecInput } from '@tfkd/kd-core';
import { Registry } from './registry';
import { denseModel, testCrossEntropy, testModelTools, testModule } from '@tfkd/kd-core/testing';

// A plugin with every kind of state a checkpoint must carry: a trainable variable (trained with the
// student), a buffer (an EMA updated on batchEnd), JSON state that changes the loss (a call counter)
// and draws from its own generator on every step.
const stateful = definePlugin({
  id: 'test/stateful',
  kind: 'loss',
  describe: 'loss with a variable, a buffer, JSON state and random draws (test fixture)',
  options: z.object({}).strict(),
  create(_o, deps) {
    const w = tf.variable(tf.tensor1d(Array.from({ length: deps.numClasses }, () => deps.rng.next())), true);
    const ema = tf.variable(tf.zeros([deps.numClasses]), false);
    let calls = 0;
    let drawn = 0;
    return {
      name: deps.name,
      register(bus) {
        bus.on('loss', (ctx) => {
          const jitter = ctx.rng.next();
          calls++;
          drawn += jitter;
          const z = ctx.outputs('student').logits;
          ctx.addLoss({ value: tf.mul(tf.mean(tf.square(tf.sub(z, tf.add(w, ema)))), 0.01 * (1 + jitter + 1e-3 * calls)) as tf.Scalar });
        });
        bus.on('batchEnd', () => {
          tf.tidy(() => ema.assign(tf.add(tf.mul(ema, 0.9), tf.mul(w, 0.1))));
        });
      },
      variables: () => [w],
      buffers: () => [ema],
      getState: () => ({ calls, drawn }),
      setState(s) {
        ({ calls, drawn } = s as { calls: number; drawn: number });
      },
      dispose() {
        w.dispose();
        ema.dispose();
      },
    };
  },
});

const SPEC_DIR = '/virtual-kd-checkpoint-spec';
const base = (optimizer: Record<string, unknown>): RunSpecInput => ({
  seed: 4,
  backend: 'cpu',
  data: { name: 'blobs', train: 44, test: 24 },
  teacher: { load: 'teacher' },
  student: { model: 'test-dense' },
  // 44 samples in batches of 8: 6 batches per epoch, the last one of 4.
  train: { epochs: 3, batchSize: 8, optimizer: { weightDecay: 1e-3, ...optimizer }, schedule: { name: 'cosine' } },
  plugins: [{ use: 'test/ce', weight: 0.5 }, { use: 'test/logit-match', weight: 0.5 }, { use: 'test/stateful' }],
});

let tmp: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  await testModelTools.save(denseModel({ inputShape: [4, 4, 1], numClasses: 3, seed: 11, hidden: 16 }), path.resolve(SPEC_DIR, 'teacher'));
});
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-ckpt-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Outcome {
  result: RunResult;
  weights: number[][];
  checkpoints: TrainingState[];
  /** Number hooks as observers saw them: `runStart`, `epochStart:2`, … (batchEnd left out). */
  hooks: string[];
  resumed: unknown;
}

async function run(spec: RunSpec, opts: { stopAfter?: number; resume?: TrainingState } = {}): Promise<Outcome> {
  let calls = 0;
  const checkpoints: TrainingState[] = [];
  const engine = new Engine(spec, {
    registry: new Registry([testModule(stateful)]),
    specDir: SPEC_DIR,
    cacheDir: null,
    resume: opts.resume,
    onCheckpoint: (s) => void checkpoints.push(s),
    shouldStop: opts.stopAfter === undefined ? undefined : () => ++calls > (opts.stopAfter as number),
  });
  const hooks: string[] = [];
  let resumed: unknown;
  engine.bus.events$.subscribe((e) => {
    if (e.hook === 'runStart') resumed = e.payload.resumed;
    if (e.hook !== 'batchEnd') hooks.push('epoch' in e.payload ? `${e.hook}:${e.payload.epoch}` : e.hook);
  });
  try {
    const result = await engine.run();
    const weights = (result.models.get('student') as { getWeights(): tf.Tensor[] }).getWeights().map((t) => Array.from(t.dataSync()));
    return { result, weights, checkpoints, hooks, resumed };
  } finally {
    engine.dispose();
  }
}

/** Through the disk: write a state, read it back. */
function roundTrip(state: TrainingState, name: string): TrainingState {
  const dir = path.join(tmp, name, 'checkpoint');
  writeCheckpoint(dir, state);
  return readCheckpoint(dir);
}

const comparable = (r: RunResult) => ({
  eval: r.eval,
  history: r.history.map(({ seconds: _s, ...h }) => h),
  ledger: r.ledger.roles,
  steps: r.ledger.phases.distill.steps,
});

describe.each([
  ['sgd with momentum', { name: 'sgd', lr: 0.1, momentum: 0.9, nesterov: true }],
  ['adam', { name: 'adam', lr: 0.01 }],
  // DOT: two momentum buffers per weight; test/stateful's variable gets the task gradient only
  ['dot', { name: 'dot', lr: 0.1, momentum: 0.9 }],
])('checkpoint and resume (%s)', (_name, optimizer) => {
  const spec = RunSpec.parse(base(optimizer));

  it('stopping mid-epoch and resuming from that step gives the run in one go, bit for bit', async () => {
    const whole = await run(spec);
    expect(whole.result.status).toBe('completed');
    expect(whole.result.resumes).toBe(0);
    // One checkpoint per epoch end, the last one past the final epoch.
    expect(whole.checkpoints.map((c) => c.next)).toEqual([1, 2, 3].map((e) => ({ epoch: e + 1, batchIndex: 0 })));

    // 8 steps: all 6 of epoch 1, then 2 of epoch 2.
    const first = await run(spec, { stopAfter: 8 });
    expect(first.result.status).toBe('interrupted');
    expect(first.result.stoppedAt).toEqual({ epoch: 2, batchIndex: 2, step: 8 });
    expect(first.result.history).toHaveLength(1);
    const stop = first.checkpoints[first.checkpoints.length - 1];
    expect(stop.next).toEqual({ epoch: 2, batchIndex: 2 });
    expect(stop.epochProgress?.counted).toBe(2);
    expect(stop.plugins[2].state).toEqual({ calls: 8, drawn: expect.any(Number) });

    const rest = await run(spec, { resume: roundTrip(stop, 'stop') });
    expect(rest.result.status).toBe('completed');
    expect(rest.result.resumedFrom).toEqual({ epoch: 2, batchIndex: 2, step: 8 });
    expect(rest.result.resumes).toBe(1);
    expect(comparable(rest.result)).toEqual(comparable(whole.result));
    expect(rest.weights).toEqual(whole.weights);
    // The plugin's own state and its tensors continue too.
    const last = (o: Outcome) => o.checkpoints[o.checkpoints.length - 1];
    expect(last(rest).plugins[2].state).toEqual(last(whole).plugins[2].state);
    expect(Array.from(last(rest).plugins[2].buffers[0].values)).toEqual(Array.from(last(whole).plugins[2].buffers[0].values));
    expect(Array.from(last(rest).plugins[2].variables[0].values)).toEqual(Array.from(last(whole).plugins[2].variables[0].values));
    expect(last(rest).roles[0].optimizer?.iterations).toBe(18);
    // runStart says where the run resumes; epoch 2 had started before the stop, so no epochStart:2.
    expect(rest.resumed).toEqual({ epoch: 2, batchIndex: 2, step: 8 });
    expect(first.hooks).toEqual(['runStart', 'evalEnd:0', 'epochStart:1', 'evalEnd:1', 'epochEnd:1', 'epochStart:2', 'runEnd']);
    expect(rest.hooks).toEqual(['runStart', 'evalEnd:2', 'epochEnd:2', 'epochStart:3', 'evalEnd:3', 'epochEnd:3', 'runEnd']);
  });

  it('resuming from an epoch-end checkpoint (what a killed run leaves) re-runs the epoch and gives the same run', async () => {
    const whole = await run(spec);
    const afterEpoch1 = roundTrip(whole.checkpoints[0], 'epoch1');
    expect(afterEpoch1.next).toEqual({ epoch: 2, batchIndex: 0 });
    expect(afterEpoch1.history.map((h) => h.epoch)).toEqual([1]);
    // The teacher-output cache is filled in epoch 1 and travels with the checkpoint: epoch 2 is served from it.
    expect(afterEpoch1.caches.map((c) => [c.role, c.filled.reduce((a, b) => a + b, 0)])).toEqual([['teacher', 44]]);
    const rest = await run(spec, { resume: afterEpoch1 });
    expect(comparable(rest.result)).toEqual(comparable(whole.result));
    expect(rest.weights).toEqual(whole.weights);
    expect(rest.result.ledger.roles.teacher).toMatchObject({ forwardImages: 44, cacheHits: 88 });
  });
});

describe('checkpoint and resume across declared stages', () => {
  // Stage `warm` (2 epochs, its own Adam, only fc1 trains, the shared stateful plugin plus a
  // stage-only loss), then the main phase (3 epochs, SGD): 12 + 18 steps.
  const spec = RunSpec.parse({
    ...base({ name: 'sgd', lr: 0.1, momentum: 0.9 }),
    stages: [
      {
        name: 'warm',
        epochs: 2,
        trainUpTo: 'fc1',
        train: { optimizer: { name: 'adam', lr: 0.01, weightDecay: 0 } },
        plugins: [{ name: 'test/stateful', weight: 2 }, { use: 'test/logit-match', name: 'warm-match' }],
      },
    ],
  });
  const phases = (o: Outcome) => o.result.history.map((h) => `${h.phase}:${h.epoch}`);
  let whole: Outcome;
  beforeAll(async () => {
    whole = await run(spec);
  });

  it('checkpoints name the phase they stopped in', () => {
    expect(phases(whole)).toEqual(['warm:1', 'warm:2', 'distill:1', 'distill:2', 'distill:3']);
    expect(whole.checkpoints.map((c) => `${c.stage}@${c.next.epoch}`)).toEqual(['warm@2', 'warm@3', 'distill@2', 'distill@3', 'distill@4']);
    // The stage's checkpoints hold its Adam, the main phase's its SGD with momentum.
    expect(whole.checkpoints.map((c) => c.roles[0].optimizer?.kind)).toEqual(['Adam', 'Adam', 'Momentum', 'Momentum', 'Momentum']);
    expect(whole.result.ledger.phases.warm.steps).toBe(12);
    expect(whole.result.ledger.phases.distill.steps).toBe(18);
  });

  it.each([
    ['stopped inside the stage', 8, { epoch: 2, batchIndex: 2, step: 8, phase: 'warm' }],
    ['stopped at the first step of the main phase', 12, { epoch: 1, batchIndex: 0, step: 12, phase: 'distill' }],
    ['stopped inside the main phase', 15, { epoch: 1, batchIndex: 3, step: 15, phase: 'distill' }],
  ])('%s, then resumed: the run in one go, bit for bit', async (_what, stopAfter, at) => {
    const first = await run(spec, { stopAfter });
    expect(first.result.stoppedAt).toEqual(at);
    const stop = first.checkpoints[first.checkpoints.length - 1];
    expect(stop.stage).toBe(at.phase);
    const rest = await run(spec, { resume: roundTrip(stop, 'stop') });
    expect(rest.resumed).toEqual(at);
    expect(rest.result.resumedFrom).toEqual(at);
    expect(comparable(rest.result)).toEqual(comparable(whole.result));
    expect(rest.result.ledger.phases.warm.steps).toBe(12);
    expect(rest.weights).toEqual(whole.weights);
    const last = (o: Outcome) => o.checkpoints[o.checkpoints.length - 1];
    expect(last(rest).plugins.map((p) => p.state)).toEqual(last(whole).plugins.map((p) => p.state));
    expect(last(rest).plugins.map((p) => p.variables.map((v) => Array.from(v.values)))).toEqual(last(whole).plugins.map((p) => p.variables.map((v) => Array.from(v.values))));
  });

  it.each([
    ['the end of the stage', 1],
    ['the first epoch of the main phase', 2],
  ])('killed after %s (its epoch-end checkpoint): the same run', async (_what, i) => {
    const rest = await run(spec, { resume: roundTrip(whole.checkpoints[i], `killed-${i}`) });
    expect(phases(rest)).toEqual(phases(whole));
    expect(comparable(rest.result)).toEqual(comparable(whole.result));
    expect(rest.weights).toEqual(whole.weights);
  });

  it('a checkpoint without stages does not carry the field', async () => {
    const plain = await run(RunSpec.parse(base({ name: 'adam', lr: 0.01 })), { stopAfter: 2 });
    expect('stage' in plain.checkpoints[0]).toBe(false);
    expect(plain.result.stoppedAt).toEqual({ epoch: 1, batchIndex: 2, step: 2 });
  });
});

describe('a stop during teacher training', () => {
  it('is KD_INTERRUPTED at the teacher, and nothing is cached', async () => {
    const ce = definePlugin({ ...testCrossEntropy, id: 'loss/cross-entropy' });
    const spec = RunSpec.parse({ ...base({ name: 'adam', lr: 0.01 }), teacher: { model: 'test-dense', train: { epochs: 2, batchSize: 8 } } });
    let steps = 0;
    const started = prepareRun(spec, {
      registry: new Registry([testModule(stateful, ce)]),
      specDir: SPEC_DIR,
      cacheDir: tmp,
      observe: (bus, phase) => void bus.events$.subscribe((e) => void (phase === 'teacher' && e.hook === 'batchEnd' && steps++)),
      shouldStop: () => steps >= 3,
    });
    await expect(started).rejects.toMatchObject({ code: 'KD_INTERRUPTED', path: 'teacher', message: expect.stringContaining('epoch 1 of 2') });
    expect(steps).toBe(3);
    expect(fs.readdirSync(tmp)).toEqual([]);
  });
});

describe('checkpoint files', () => {
  const spec = RunSpec.parse(base({ name: 'adam', lr: 0.01 }));

  it('a failed write keeps the last good checkpoint, and a crash between the renames is recovered', async () => {
    const { checkpoints } = await run(spec);
    const dir = path.join(tmp, 'run', 'checkpoint');
    writeCheckpoint(dir, checkpoints[0]);
    const cacheIno = fs.statSync(path.join(dir, 'cache-0.bin')).ino;

    // Epoch 2: a plugin state that JSON cannot hold. tensors.bin is already written when it fails.
    const bad = { ...checkpoints[1], plugins: checkpoints[1].plugins.map((p, i) => (i === 2 ? { ...p, state: { calls: 1n } } : p)) };
    expect(() => writeCheckpoint(dir, bad)).toThrow(expect.objectContaining({ code: 'KD_OUTPUT_WRITE', path: dir }));
    expect(fs.readdirSync(path.dirname(dir)).sort()).toEqual(['checkpoint']);
    const kept = readCheckpoint(dir);
    expect(kept.next).toEqual({ epoch: 2, batchIndex: 0 });
    expect(kept.step).toBe(6);
    expect(Array.from(kept.roles[0].weights[0].values)).toEqual(Array.from(checkpoints[0].roles[0].weights[0].values));

    // Epoch 3 writes fine; the teacher cache did not change since epoch 1, so its file is a hard link.
    writeCheckpoint(dir, checkpoints[2]);
    expect(readCheckpoint(dir).step).toBe(18);
    expect(fs.statSync(path.join(dir, 'cache-0.bin')).ino).toBe(cacheIno);

    // A crash after `checkpoint` → `checkpoint.old` but before the new one was renamed in.
    fs.renameSync(dir, `${dir}.old`);
    fs.mkdirSync(`${dir}.tmp`);
    expect(readCheckpoint(dir).step).toBe(18);
    writeCheckpoint(dir, checkpoints[1]);
    expect(fs.readdirSync(path.dirname(dir)).sort()).toEqual(['checkpoint']);
    expect(readCheckpoint(dir).step).toBe(12);
  });

  it('NaN and infinite numbers survive the round trip', async () => {
    const { checkpoints } = await run(spec);
    const s = { ...checkpoints[0], history: [{ ...checkpoints[0].history[0], train: { loss: NaN, x: Infinity, y: -Infinity } }] };
    const back = roundTrip(s, 'nan');
    expect(back.history[0].train).toEqual({ loss: NaN, x: Infinity, y: -Infinity });
  });

  it('a resumed run with another spec fails with KD_RESUME_MISMATCH naming the paths that differ', async () => {
    const { checkpoints } = await run(spec);
    const other = RunSpec.parse({ ...base({ name: 'adam', lr: 0.02 }), train: { ...base({}).train, epochs: 4, optimizer: { name: 'adam', lr: 0.02 } } });
    expect(specHash(other)).not.toBe(specHash(spec));
    expect(specDifferences(spec, other)).toEqual(['train.epochs', 'train.optimizer.lr', 'train.optimizer.weightDecay']);
    await expect(run(other, { resume: checkpoints[0] })).rejects.toMatchObject({
      code: 'KD_RESUME_MISMATCH',
      path: 'train.epochs',
      message: expect.stringContaining('train.epochs, train.optimizer.lr, train.optimizer.weightDecay'),
    });
    // Key order and spelled-out defaults do not matter.
    const same = RunSpec.parse({ plugins: base({}).plugins, ...base({ name: 'adam', lr: 0.01 }), evalEvery: 1 });
    expect(specHash(same)).toBe(specHash(spec));
  });
});
