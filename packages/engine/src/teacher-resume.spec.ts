/**
 * A teacher trained from labels checkpoints through `EngineOptions.teacherCheckpoints`: an attempt
 * stopped after some steps leaves its state there, the next attempt resumes from it, and the cached
 * teacher is the uninterrupted training's, bit for bit. A checkpoint that cannot be used is ignored
 * with a warning (the teacher trains from the start), never an error.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import '@tensorflow/tfjs-backend-cpu';
import { ContainerModule } from 'inversify';
import { DATASET_DEFINITION, definePlugin, isKdError, KdError, PLUGIN_DEFINITION, RunSpec } from '@tfkd/kd-core';
import { testCrossEntropy, testDataset, testLogitMatch } from '@tfkd/kd-core/testing';
import { datasetsModule } from '@tfkd/datasets';
import { modelsModule } from '@tfkd/models';
import { specHash, type TrainingState } from './checkpoint';
import type { EngineOptions } from './engine';
import { startPlan } from './execute';
import { nodeStorage } from './node/storage';
import { planRun } from './plan';
import { Registry } from './registry';

jest.setTimeout(60_000);

const fixtures = new ContainerModule((o) => {
  o.bind(PLUGIN_DEFINITION).toConstantValue(definePlugin({ ...testCrossEntropy, id: 'loss/cross-entropy' }));
  o.bind(PLUGIN_DEFINITION).toConstantValue(testLogitMatch);
  o.bind(DATASET_DEFINITION).toConstantValue(testDataset);
});
const registry = () =>
  new Registry([
    { name: '@tfkd/datasets', module: datasetsModule },
    { name: '@tfkd/models', module: modelsModule },
    { name: 'test', module: fixtures },
  ]);

// 24 samples in batches of 8: 3 steps per epoch, 9 in all. Adam: its moments must be restored too.
const SPEC = RunSpec.parse({
  seed: 2,
  backend: 'cpu',
  data: { name: 'synthetic', train: 24, test: 8, numClasses: 3, shape: [4, 4, 1] },
  teacher: {
    model: 'mlp',
    options: { hidden: [8] },
    seed: 5,
    train: { epochs: 3, batchSize: 8, optimizer: { name: 'adam', lr: 0.01, weightDecay: 0 } },
  },
  student: { model: 'mlp', options: { hidden: [4] } },
  train: { epochs: 1, batchSize: 8 },
  plugins: [
    { use: 'loss/cross-entropy', weight: 0.5 },
    { use: 'test/logit-match', weight: 0.5 },
  ],
});

/** An in-memory `teacherCheckpoints`, counting its calls. */
function memoryStore() {
  const states = new Map<string, TrainingState>();
  const calls = { read: 0, write: 0, clear: 0 };
  return {
    states,
    calls,
    read: (key: string) => (calls.read++, states.get(key) ?? null),
    write: (key: string, s: TrainingState) => void (calls.write++, states.set(key, s)),
    clear: (key: string) => void (calls.clear++, states.delete(key)),
  };
}

interface Attempt {
  lines: string[];
  warnings: string[];
  /** The teacher's epochStart epochs and batchEnd count in this attempt. */
  epochs: number[];
  steps: number;
  error: unknown;
}

/** Plan SPEC with the teacher cache `cacheDir` and train its teacher (the main run only prepared). */
async function attempt(cacheDir: string, opts: Partial<EngineOptions> = {}): Promise<Attempt> {
  const a: Attempt = { lines: [], warnings: [], epochs: [], steps: 0, error: null };
  const base = { registry: registry(), storage: nodeStorage, specDir: cacheDir, cacheDir, log: (l: string) => void a.lines.push(l), warn: (l: string) => void a.warnings.push(l) };
  const plan = await planRun(SPEC, base);
  const observe: EngineOptions['observe'] = (bus, phase) => {
    if (phase !== 'teacher') return;
    bus.events$.subscribe((e) => {
      if (e.hook === 'epochStart') a.epochs.push((e.payload as { epoch: number }).epoch);
      if (e.hook === 'batchEnd') a.steps++;
    });
  };
  try {
    (await startPlan(plan, { ...base, observe, ...opts })).dispose();
  } catch (e) {
    a.error = e;
  }
  return a;
}

const weightsOf = (cacheDir: string, key: string) => fs.readFileSync(path.join(cacheDir, 'teachers', key, 'weights.bin'));
const evalOf = (cacheDir: string, key: string) => JSON.parse(fs.readFileSync(path.join(cacheDir, 'teachers', key, 'teacher.json'), 'utf8')).eval;

let tmp: string;
let key: string;
let whole: Buffer;
beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-teacher-resume-'));
  key = (await planRun(SPEC, { registry: registry(), storage: nodeStorage, specDir: tmp, cacheDir: null })).teachers[0].key;
  // The uninterrupted reference, with a store too: it is written every epoch and cleared once cached.
  const store = memoryStore();
  const ref = await attempt(path.join(tmp, 'whole'), { teacherCheckpoints: store });
  if (ref.error) throw ref.error;
  expect([ref.epochs, ref.steps]).toEqual([[1, 2, 3], 9]);
  expect(store.calls).toEqual({ read: 1, write: 3, clear: 1 });
  expect(store.states.size).toBe(0);
  whole = weightsOf(path.join(tmp, 'whole'), key);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('a teacher trained from labels, stopped and trained again with teacherCheckpoints', () => {
  it.each([
    ['after epoch 1', 3, { epoch: 2, batchIndex: 0 }, 'epoch 2'],
    ['inside epoch 2', 5, { epoch: 2, batchIndex: 2 }, 'epoch 2, batch 3'],
  ])('stopped %s: the next attempt resumes there and caches the uninterrupted teacher, bit for bit', async (_when, steps, next, where) => {
    const cacheDir = path.join(tmp, `stop-${steps}`);
    const store = memoryStore();
    let calls = 0;
    const first = await attempt(cacheDir, { teacherCheckpoints: store, shouldStop: () => ++calls > steps });
    expect(first.steps).toBe(steps);
    expect(isKdError(first.error)).toBe(true);
    const e = first.error as KdError;
    expect(e.code).toBe('KD_INTERRUPTED');
    expect(e.message).toBe("stopped while training teacher 'teacher' (epoch 2 of 3); its checkpoint is kept");
    expect(e.fix).toBe('run again: the teacher resumes from its checkpoint and is cached once complete');
    // Kept: the stop checkpoint at the next step (after epoch 1's end checkpoint); nothing cached.
    expect(store.calls).toEqual({ read: 1, write: 2, clear: 0 });
    const saved = store.states.get(key) as TrainingState;
    expect([saved.next, saved.step, saved.history.map((h) => h.epoch)]).toEqual([next, steps, [1]]);
    expect(fs.existsSync(path.join(cacheDir, 'teachers', key))).toBe(false);

    const second = await attempt(cacheDir, { teacherCheckpoints: store });
    expect(second.error).toBeNull();
    expect(second.warnings).toEqual([]);
    expect(second.lines).toContain(`teacher 'teacher': resuming at ${where} from its checkpoint`);
    // Only the steps left: 9 in all.
    expect(second.steps).toBe(9 - steps);
    expect(second.epochs).toEqual(next.batchIndex === 0 ? [2, 3] : [3]);
    expect(weightsOf(cacheDir, key).equals(whole)).toBe(true);
    expect(evalOf(cacheDir, key)).toEqual(evalOf(path.join(tmp, 'whole'), key));
    // Cleared once cached.
    expect(store.states.size).toBe(0);
    expect(store.calls).toEqual({ read: 2, write: 4, clear: 1 });
  });
});

describe('a teacher checkpoint that cannot be used is ignored with a warning', () => {
  /** The checkpoint of epoch 1's end of this teacher, as a stopped attempt leaves it. */
  async function epochOne(): Promise<TrainingState> {
    const store = memoryStore();
    let calls = 0;
    await attempt(path.join(tmp, `one-${Math.random()}`), { teacherCheckpoints: store, shouldStop: () => ++calls > 3 });
    return store.states.get(key) as TrainingState;
  }
  const otherSpec = (s: TrainingState): TrainingState => {
    const spec = { ...s.spec, train: { ...s.spec.train, epochs: 4 } } as RunSpec;
    return { ...s, spec, specHash: specHash(spec) };
  };

  it.each([
    ['was written for another spec', (s: TrainingState) => () => otherSpec(s), /KD_RESUME_MISMATCH: the spec differs from the checkpoint's at train\.epochs/],
    ['does not fit this run', (s: TrainingState) => () => ({ ...s, dataset: { ...s.dataset, train: 99 } }), /the data has 24 train \/ 8 test samples, the checkpoint's had 99 \/ 8/],
    ['cannot be read', () => () => {
      throw new Error('tensors.bin is damaged');
    }, /tensors\.bin is damaged/],
  ])('a checkpoint that %s: a warning, trained from the start to the uninterrupted teacher, the checkpoint cleared', async (why, make, detail) => {
    const cacheDir = path.join(tmp, `bad-${why.replace(/\W+/g, '-')}`);
    const store = memoryStore();
    const read = make(await epochOne());
    const second = await attempt(cacheDir, { teacherCheckpoints: { ...store, read: (k) => (store.calls.read++, read()) } });
    expect(second.error).toBeNull();
    expect(second.warnings).toHaveLength(1);
    expect(second.warnings[0]).toMatch(new RegExp(`^warning: teacher 'teacher': its checkpoint ${why}, so it is trained from the start: `));
    expect(second.warnings[0]).toMatch(detail);
    // From the start: all 9 steps, to the same weights as the uninterrupted training.
    expect([second.epochs, second.steps]).toEqual([[1, 2, 3], 9]);
    expect(weightsOf(cacheDir, key).equals(whole)).toBe(true);
    // Cleared when ignored, and again once cached.
    expect(store.calls).toEqual({ read: 1, write: 3, clear: 2 });
    expect(store.states.size).toBe(0);
  });
});
