/**
 * The teacher cache key (`teacherRun`): a teacher trained from labels learns on the run's data, and
 * those data can depend on the run's seed (a dataset whose `seed` defaults to it, the `calibrate:`
 * hold-out). Runs that differ only in `seed:` then train their teacher on other samples, and must not
 * share it; runs whose data are the same for every seed keep one teacher, under the key it always had.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import '@tensorflow/tfjs-backend-cpu';
import { ContainerModule } from 'inversify';
import {
  DATASET_DEFINITION,
  definePlugin,
  PLUGIN_DEFINITION,
  RunSpec,
  TrainSpec,
  type RunSpecInput,
} from '@tfkd/kd-core';
import { testCrossEntropy, testDataset, testLogitMatch } from '@tfkd/kd-core/testing';
import { datasetsModule } from '@tfkd/datasets';
import { modelsModule } from '@tfkd/models';
import { runSpec } from './execute';
import { sha256Hex } from './hash';
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

const sgd = { name: 'sgd' as const, lr: 0.1, momentum: 0, weightDecay: 0 };
/** Gaussian blobs drawn from the data seed, which defaults to the run's `seed`. */
const SYNTHETIC = { name: 'synthetic', train: 24, test: 8, numClasses: 3, shape: [4, 4, 1] };
const teacher = {
  model: 'mlp',
  options: { hidden: [8] },
  seed: 5,
  train: { epochs: 1, batchSize: 8, optimizer: sgd },
};

const kd = (seed: number, over: Partial<RunSpecInput> = {}): RunSpec =>
  RunSpec.parse({
    seed,
    backend: 'cpu',
    data: SYNTHETIC,
    teacher,
    student: { model: 'mlp', options: { hidden: [4] } },
    train: { epochs: 1, batchSize: 8, optimizer: sgd },
    plugins: [
      { use: 'loss/cross-entropy', weight: 0.5 },
      { use: 'test/logit-match', weight: 0.5 },
    ],
    ...over,
  });

/** The key as it was computed before the data seed was part of it. */
const formerKey = (s: RunSpec, shape: number[], numClasses: number): string =>
  sha256Hex(
    JSON.stringify({
      v: 1,
      model: teacher.model,
      options: teacher.options,
      seed: teacher.seed,
      train: TrainSpec.parse(teacher.train),
      data: s.data,
      inputShape: shape,
      numClasses,
      ...(s.calibrate ? { calibrate: s.calibrate } : {}),
    }),
  ).slice(0, 16);

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-teachers-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

const plan = (s: RunSpec) =>
  planRun(s, { registry: registry(), storage: nodeStorage, specDir: tmp, cacheDir: tmp });
const teacherOf = async (s: RunSpec) => (await plan(s)).teachers[0];

describe('teacher cache key and the data seed', () => {
  it('a dataset seeded by the run: the teacher trains on other samples for another run seed, and is keyed by that seed', async () => {
    const [p1, p2] = [await plan(kd(1)), await plan(kd(2))];
    // same teacher spec (its own seed 5), other training samples
    expect(p1.teachers[0].spec.seed).toBe(5);
    expect(p2.teachers[0].spec.seed).toBe(5);
    expect(Array.from(p1.data.train.images.subarray(0, 4))).not.toEqual(
      Array.from(p2.data.train.images.subarray(0, 4)),
    );
    expect(p1.teachers[0].keyObj).toMatchObject({ dataSeed: 1 });
    expect(p2.teachers[0].keyObj).toMatchObject({ dataSeed: 2 });
    expect(p1.teachers[0].key).not.toBe(p2.teachers[0].key);
  });

  it('two run seeds train two teachers; the same run seed again is a cache hit', async () => {
    const lines: string[] = [];
    const run = async (seed: number) => {
      const r = await runSpec(kd(seed), {
        registry: registry(),
        storage: nodeStorage,
        specDir: tmp,
        cacheDir: tmp,
        log: (l) => void lines.push(l),
      });
      r.models.forEach((m) => m.dispose());
    };
    await run(1);
    await run(2);
    await run(1);
    expect(lines.filter((l) => l.startsWith("teacher 'teacher': training mlp from labels")).length).toBe(2);
    expect(lines.filter((l) => l.startsWith("teacher 'teacher': reusing the cached model")).length).toBe(1);
    const keys = fs.readdirSync(path.join(tmp, 'teachers')).sort();
    expect(keys).toEqual([(await teacherOf(kd(1))).key, (await teacherOf(kd(2))).key].sort());
    const saved = JSON.parse(
      fs.readFileSync(path.join(tmp, 'teachers', (await teacherOf(kd(2))).key, 'teacher.json'), 'utf8'),
    ) as { key: { dataSeed: number } };
    expect(saved.key.dataSeed).toBe(2);
  });

  it('the data seed given in `data:`: one teacher for every run seed, under its former key', async () => {
    const data = { ...SYNTHETIC, seed: 9 };
    const [t1, t2] = [await teacherOf(kd(1, { data })), await teacherOf(kd(2, { data }))];
    expect(t1.key).toBe(t2.key);
    expect(t1.keyObj).not.toHaveProperty('dataSeed');
    expect(t1.key).toBe(formerKey(kd(1, { data }), [4, 4, 1], 3));
  });

  it('a dataset that ignores the run seed: one teacher for every run seed, under its former key', async () => {
    const data = { name: 'blobs', train: 24, test: 8 };
    const [t1, t2] = [await teacherOf(kd(1, { data })), await teacherOf(kd(2, { data }))];
    expect(t1.key).toBe(t2.key);
    expect(t1.keyObj).not.toHaveProperty('dataSeed');
    expect(t1.key).toBe(formerKey(kd(1, { data }), [4, 4, 1], 3));
  });

  it('`calibrate:` holds out a part chosen by the run seed: the teacher trains on other samples, and is keyed by it', async () => {
    const over = {
      data: { name: 'blobs', train: 24, test: 8 },
      calibrate: { method: 'temperature' as const, holdout: 0.25 },
    };
    const [p1, p2] = [await plan(kd(1, over)), await plan(kd(2, over))];
    expect(Array.from(p1.data.train.labels)).not.toEqual(Array.from(p2.data.train.labels));
    expect(p1.teachers[0].keyObj).toMatchObject({ dataSeed: 1, calibrate: { holdout: 0.25 } });
    expect(p1.teachers[0].key).not.toBe(p2.teachers[0].key);
  });
});
