/**
 * The teacher-output cache on a segmentation run, whose teacher outputs per-pixel logits [H, W, K]
 * (here 8×8×3 floats: 768 B a sample, 12 samples: 9 KiB). `teacherCacheMB` is the budget of every
 * output the teacher forwards (logits and taps), for all training samples: within it the teacher
 * runs once per sample and the step gets the same logits to the bit; over it the teacher is forwarded
 * at every step, and the run's log says so with the numbers and the setting that would cache them.
 */
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { ContainerModule } from 'inversify';
import { z } from 'zod';
import {
  DATASET_DEFINITION,
  defineLoss,
  definePlugin,
  MODEL_DEFINITION,
  MODEL_TOOLS,
  PLUGIN_DEFINITION,
  RunSpec,
  type DataSplits,
  type Dataset,
  type ModelDefinition,
  type RunSpecInput,
} from '@tfkd/kd-core';
import { testModelTools } from '@tfkd/kd-core/testing';
import { OutputCache, outputCaches } from './cache';
import { runSpec } from './execute';
import { Registry } from './registry';

const SIDE = 8;
const K = 3;

/** Scenes of SIDE×SIDE pixels in [0, 1]; the mask is the pixel's value in thirds. */
function scenes(count: number, offset: number): Dataset {
  const plane = SIDE * SIDE;
  const images = Float32Array.from({ length: count * plane }, (_, i) => (((i + offset) * 7919) % 101) / 100);
  const masks = Int32Array.from(images, (v) => Math.min(K - 1, Math.floor(v * K)));
  return {
    name: `scenes-${offset}`,
    images,
    labels: new Int32Array(count),
    shape: [SIDE, SIDE, 1],
    numClasses: K,
    source: 'synthetic',
    masks,
  };
}

const scenesDataset = {
  id: 'test-scenes',
  describe: 'SIDE×SIDE scenes with masks (test fixture)',
  tasks: ['segmentation'] as const,
  options: z.object({ train: z.number().int().positive().default(12) }).strict(),
  load: async (o: Record<string, unknown>): Promise<DataSplits> => ({
    train: scenes(o.train as number, 0),
    test: scenes(4, 1000),
  }),
};

/** conv 3×3·4 ReLU (`conv1`, a tap) → conv 1×1·K: per-pixel logits [SIDE, SIDE, K]. */
const segModel: ModelDefinition = {
  id: 'test-seg',
  describe: 'two-convolution segmenter (test fixture)',
  taps: ['conv1'],
  tasks: ['segmentation'],
  build: (o) => {
    const init = (s: number) => tfl.initializers.glorotUniform({ seed: s });
    const m = tfl.sequential({ name: 'seg' });
    m.add(
      tfl.layers.conv2d({
        inputShape: o.inputShape,
        filters: 4,
        kernelSize: 3,
        padding: 'same',
        activation: 'relu',
        name: 'conv1',
        kernelInitializer: init(o.seed ?? 1),
      }),
    );
    m.add(
      tfl.layers.conv2d({
        filters: o.numClasses,
        kernelSize: 1,
        name: 'logits',
        kernelInitializer: init((o.seed ?? 1) + 1),
      }),
    );
    return m;
  },
};

/** What the step handed the loss as the teacher's logits (and `conv1` tap), step by step. */
const seen: { logits: number[][]; tap: number[][] } = { logits: [], tap: [] };
const pixelKd = defineLoss({
  id: 'test/seg-kd',
  describe: "mean squared difference of per-pixel logits, recording the teacher's (test fixture)",
  tasks: ['segmentation'],
  options: z.object({ tap: z.boolean().default(false) }).strict(),
  requires: (o) => ({ roles: ['student', 'teacher'], ...(o.tap ? { taps: ['teacher.conv1'] } : {}) }),
  compute(ctx, o) {
    const t = ctx.outputs('teacher');
    seen.logits.push(Array.from(t.logits.dataSync()));
    if (o.tap) seen.tap.push(Array.from(t.taps.conv1.dataSync()));
    return tf.mean(tf.squaredDifference(ctx.outputs('student').logits, t.logits)) as tf.Scalar;
  },
});
/** The task's metric, as the run requires one: nothing measured here. */
const miou = definePlugin({
  id: 'metric/miou',
  kind: 'metric',
  tasks: ['segmentation'],
  describe: 'no-op segmentation metric (test fixture)',
  options: z.object({}).strict(),
  create: (_o, deps) => ({ name: deps.name, register() {} }),
});

const registry = () =>
  new Registry([
    new ContainerModule((o) => {
      o.bind(DATASET_DEFINITION).toConstantValue(scenesDataset);
      o.bind(MODEL_DEFINITION).toConstantValue(segModel);
      o.bind(MODEL_TOOLS).toConstantValue(testModelTools);
      o.bind(PLUGIN_DEFINITION).toConstantValue(pixelKd);
      o.bind(PLUGIN_DEFINITION).toConstantValue(miou);
    }),
  ]);

const segSpec = (over: Partial<RunSpecInput> = {}, tap = false): RunSpec =>
  RunSpec.parse({
    seed: 4,
    backend: 'cpu',
    task: 'segmentation',
    data: { name: 'test-scenes', train: 12 },
    teacher: { load: TEACHER },
    student: { model: 'test-seg' },
    train: { epochs: 3, batchSize: 4, optimizer: { name: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 0 } },
    plugins: [{ use: 'test/seg-kd', with: { tap } }],
    ...over,
  });

async function run(s: RunSpec) {
  seen.logits = [];
  seen.tap = [];
  const lines: string[] = [];
  const r = await runSpec(s, { registry: registry(), cacheDir: null, log: (l) => void lines.push(l) });
  const weights = r.models
    .get('student')!
    .getWeights()
    .map((w) => Array.from(w.dataSync()));
  r.models.forEach((m) => m.dispose());
  return {
    teacher: r.ledger.roles.teacher,
    losses: r.history.map((h) => h.train.loss),
    weights,
    logits: seen.logits,
    tap: seen.tap,
    lines: lines.filter((l) => l.startsWith("teacher 'teacher'")),
  };
}

/** The frozen teacher: the fixture segmenter with its own initialisation, saved in memory. */
const TEACHER = path.resolve('mem-seg-teacher');
beforeAll(async () => {
  const m = segModel.build({ inputShape: [SIDE, SIDE, 1], numClasses: K, seed: 21 });
  await testModelTools.save(m, TEACHER);
  m.dispose();
});

const BYTES = 12 * SIDE * SIDE * K * 4; // 9216 B: the logits of the 12 training samples
const MB = 2 ** 20;

describe('teacher-output cache, per-pixel logits', () => {
  it('within teacherCacheMB: the teacher runs once per sample, and the step gets the same logits as without the cache', async () => {
    const plain = await run(segSpec({ teacherCache: 'off' }));
    const cached = await run(segSpec({ teacherCacheMB: BYTES / MB })); // exactly the budget
    expect(plain.teacher).toMatchObject({ forwardImages: 36, cacheHits: 0 });
    expect(cached.teacher).toMatchObject({ forwardImages: 12, cacheHits: 24 });
    expect(cached.logits).toHaveLength(9);
    expect(cached.logits[0]).toHaveLength(4 * SIDE * SIDE * K);
    expect(cached.logits).toEqual(plain.logits);
    expect(cached.losses).toEqual(plain.losses);
    expect(cached.weights).toEqual(plain.weights);
    expect(cached.lines).toEqual([]);
  });

  it('over teacherCacheMB: no cache, the teacher forwarded at every step, and one log line with the numbers and the fix', async () => {
    const plain = await run(segSpec({ teacherCache: 'off' }));
    const over = await run(segSpec({ teacherCacheMB: 0.005 }));
    expect(over.teacher).toMatchObject({ forwardImages: 36, cacheHits: 0 });
    expect(over.logits).toEqual(plain.logits);
    expect(over.losses).toEqual(plain.losses);
    expect(over.lines).toEqual([
      "teacher 'teacher': outputs not cached: 12 samples × 768 B (logits [8, 8, 3]) = 9 KiB, more than teacherCacheMB: 0.005; the teacher is forwarded at every step (set teacherCacheMB: 0.0088 or more to cache them)",
    ]);
  });

  it('a tap the teacher forwards is cached beside the logits and counts against the budget', async () => {
    const tapBytes = 12 * SIDE * SIDE * 4 * 4; // conv1 [8, 8, 4]: 12 KiB
    const plain = await run(segSpec({ teacherCache: 'off' }, true));
    const cached = await run(segSpec({ teacherCacheMB: (BYTES + tapBytes) / MB }, true));
    const over = await run(segSpec({ teacherCacheMB: BYTES / MB }, true));
    expect(cached.teacher).toMatchObject({ forwardImages: 12, cacheHits: 24 });
    expect(cached.tap).toEqual(plain.tap);
    expect(cached.logits).toEqual(plain.logits);
    expect(over.teacher).toMatchObject({ forwardImages: 36, cacheHits: 0 });
    expect(over.lines).toEqual([
      "teacher 'teacher': outputs not cached: 12 samples × 1.75 KiB (logits [8, 8, 3], conv1 [8, 8, 4]) = 21 KiB, more than teacherCacheMB: 0.0087890625; the teacher is forwarded at every step (set teacherCacheMB: 0.021 or more to cache them)",
    ]);
  });
});

describe('outputCaches', () => {
  const logits = { role: 'teacher', outputs: [{ name: 'logits', shape: [64, 64, 11] }] };

  it('fashion-scenes at 5000 scenes: 859 MiB of logits, over the default 512 MiB, said with the setting that fits', () => {
    const lines: string[] = [];
    const caches = outputCaches([logits], 5000, 512, (l) => void lines.push(l));
    expect(OutputCache.bytes(5000, [[64, 64, 11]])).toBe(901_120_000);
    expect(caches.size).toBe(0);
    expect(lines).toEqual([
      "teacher 'teacher': outputs not cached: 5000 samples × 176 KiB (logits [64, 64, 11]) = 859 MiB, more than teacherCacheMB: 512; the teacher is forwarded at every step (set teacherCacheMB: 860 or more to cache them)",
    ]);
  });

  it('an output without a fixed per-sample shape is not cached, and said so', () => {
    const lines: string[] = [];
    const caches = outputCaches(
      [{ role: 'teacher', outputs: [{ name: 'logits', shape: [null, null, 3] }] }],
      10,
      512,
      (l) => void lines.push(l),
    );
    expect(caches.size).toBe(0);
    expect(lines).toEqual([
      "teacher 'teacher': outputs not cached: logits has no fixed per-sample shape [null, null, 3]; the teacher is forwarded at every step",
    ]);
  });

  it('memory that cannot be allocated: no cache and a log line, not a crash', () => {
    const lines: string[] = [];
    // 2^52 floats (16 PiB): more than a typed array may hold, within a budget that allows it
    const caches = outputCaches(
      [{ role: 'teacher', outputs: [{ name: 'logits', shape: [2 ** 26, 2 ** 26] }] }],
      1,
      2 ** 35,
      (l) => void lines.push(l),
    );
    expect(caches.size).toBe(0);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^teacher 'teacher': outputs not cached: 16 PiB could not be allocated \(.+\); the teacher is forwarded at every step$/,
    );
  });

  it('one budget for every teacher: the second gets what the first left, and is told so', () => {
    const lines: string[] = [];
    // 4 samples × 128 KiB = 512 KiB each, 4 B more for 'b': within 1 MiB alone, not beside 'a'
    const teachers = [
      { role: 'a', outputs: [{ name: 'logits', shape: [2 ** 15] }] },
      { role: 'b', outputs: [{ name: 'logits', shape: [2 ** 15 + 1] }] },
    ];
    const caches = outputCaches(teachers, 4, 1, (l) => void lines.push(l));
    expect([...caches.keys()]).toEqual(['a']);
    expect(outputCaches(teachers.slice(1), 4, 1, () => undefined).has('b')).toBe(true);
    expect(lines).toEqual([
      "teacher 'b': outputs not cached: 4 samples × 128 KiB (logits [32769]) = 512 KiB, more than the 512 KiB left of teacherCacheMB: 1; the teacher is forwarded at every step (set teacherCacheMB: 2 or more to cache them)",
    ]);
  });

  it('within the budget: one cache of the outputs, empty until the step fills it', () => {
    const lines: string[] = [];
    const caches = outputCaches([logits], 100, 512, (l) => void lines.push(l));
    const c = caches.get('teacher') as OutputCache;
    expect(c.shapes).toEqual([[64, 64, 11]]);
    expect(c.n).toBe(100);
    expect(c.has([0])).toBe(false);
    expect(lines).toEqual([]);
  });
});
