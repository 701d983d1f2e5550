import * as tf from '@tensorflow/tfjs-core';
import * as path from 'path';
import '@tensorflow/tfjs-backend-cpu';
import { z } from 'zod';
import { defineLoss, definePlugin, RunSpec, type RunSpecInput } from '@tfkd/kd-core';
import { denseModel, tensorCounter, testCrossEntropy, testModelTools, testModule } from '@tfkd/kd-core/testing';
import { Engine, type RunResult } from './engine';
import { runSpec } from './execute';
import { planRun } from './plan';
import { Registry } from './registry';
import { splitGrads } from './step';

// DOT (`train.optimizer: { name: dot }`) through the engine: the two gradients of one step, the
// equality with SGD + momentum at Δ = 0, memory, the objectives of loss terms, and the start-up error.
// Resume mid-run, bit for bit: checkpoint.spec.ts (its optimizers include dot).

const SPEC_DIR = '/virtual-kd-dot-spec';

function spec(optimizer: Record<string, unknown>, over: Partial<RunSpecInput> = {}): RunSpec {
  return RunSpec.parse({
    seed: 5,
    backend: 'cpu',
    data: { name: 'blobs', train: 48, test: 16 },
    teacher: { load: 'teacher' },
    student: { model: 'test-dense' },
    // 48 samples in batches of 8, 2 epochs: 12 steps.
    train: { epochs: 2, batchSize: 8, optimizer },
    plugins: [{ use: 'test/ce', weight: 0.5 }, { use: 'test/logit-match', weight: 0.5 }],
    ...over,
  });
}

async function train(s: RunSpec, registry = new Registry([testModule()])): Promise<{ result: RunResult; weights: Float32Array[] }> {
  const engine = new Engine(s, { registry, specDir: SPEC_DIR, cacheDir: null });
  try {
    const result = await engine.run();
    const weights = (result.models.get('student') as { getWeights(): tf.Tensor[] }).getWeights().map((t) => Float32Array.from(t.dataSync()));
    return { result, weights };
  } finally {
    engine.dispose();
  }
}

/** Largest |a − b| over every weight, relative to the largest |b|. */
function relativeGap(a: Float32Array[], b: Float32Array[]): number {
  let gap = 0;
  let scale = 0;
  a.forEach((w, i) =>
    w.forEach((x, j) => {
      gap = Math.max(gap, Math.abs(x - b[i][j]));
      scale = Math.max(scale, Math.abs(b[i][j]));
    }),
  );
  return gap / scale;
}

beforeAll(async () => {
  await tf.setBackend('cpu');
  await testModelTools.save(denseModel({ inputShape: [4, 4, 1], numClasses: 3, seed: 11, hidden: 16 }), path.resolve(SPEC_DIR, 'teacher'));
});

describe('splitGrads: the task and distillation gradients of one forward', () => {
  it('equal the gradients of each part differentiated on its own, bit for bit; the loss runs once; the tape is freed', () => {
    const w1 = tf.variable(tf.randomNormal([3, 4], 0, 1, 'float32', 1));
    const w2 = tf.variable(tf.randomNormal([4, 2], 0, 1, 'float32', 2));
    const x = tf.randomNormal([5, 3], 0, 1, 'float32', 3);
    let calls = 0;
    // the distillation part reaches w1 only (a hint on the hidden layer); the task part both
    const loss = () => {
      calls++;
      const h = tf.relu(tf.matMul(x, w1));
      const z = tf.matMul(h, w2);
      return { task: tf.mean(tf.square(tf.sub(z, 1))) as tf.Scalar, distill: tf.mean(tf.abs(tf.sub(h, 0.5))) as tf.Scalar };
    };
    const before = tf.memory().numTensors;
    const read = (m: tf.NamedTensorMap) => Object.fromEntries(Object.entries(m).map(([k, t]) => [k, Array.from(t.dataSync())]));
    const [split, passes] = tf.tidy(() => {
      const s = splitGrads(loss, [w1, w2]);
      return [{ task: read(s.task), distill: read(s.distill) }, s.passes] as const;
    });
    expect(calls).toBe(1);
    expect(passes).toBe(2);
    const state = (tf.engine() as unknown as { state: { activeTape: unknown; gradientDepth: number } }).state;
    expect(state.activeTape).toBeNull();
    expect(state.gradientDepth).toBe(0);
    expect(tf.memory().numTensors).toBe(before);
    const alone = tf.tidy(() => ({
      task: read(tf.variableGrads(() => loss().task, [w1, w2]).grads),
      distill: read(tf.variableGrads(() => loss().distill, [w1, w2]).grads),
    }));
    expect(Object.keys(split.distill)).toEqual([w1.name]);
    expect(Object.keys(split.task).sort()).toEqual([w1.name, w2.name].sort());
    expect(split).toEqual(alone);
    // a part without terms: no gradients, no pass
    const only = tf.tidy(() => {
      const s = splitGrads(() => ({ task: loss().task }), [w1, w2]);
      return { distill: Object.keys(s.distill).length, passes: s.passes };
    });
    expect(only).toEqual({ distill: 0, passes: 1 });
    expect(tf.memory().numTensors).toBe(before);
    [w1, w2, x].forEach((t) => t.dispose());
  });
});

describe('DOT through the engine', () => {
  it('Δ = 0 is SGD with momentum μ on the sum of the two gradients (weight decay included), to float32 precision', async () => {
    const sgd = await train(spec({ name: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 5e-4 }));
    const dot0 = await train(spec({ name: 'dot', lr: 0.1, momentum: 0.9, delta: 0, weightDecay: 5e-4 }));
    const dot = await train(spec({ name: 'dot', lr: 0.1, momentum: 0.9, delta: 0.075, weightDecay: 5e-4 }));
    expect(relativeGap(dot0.weights, sgd.weights)).toBeLessThan(1e-6);
    dot0.result.history.forEach((h, i) => expect(h.train.loss).toBeCloseTo(sgd.result.history[i].train.loss, 5));
    // the momentum gap does matter: Δ = 0.075 trains another student
    expect(relativeGap(dot.weights, sgd.weights)).toBeGreaterThan(1e-3);
    // two backward passes per step (the reference's loss_kd.backward, then loss_ce.backward), counted
    expect(sgd.result.ledger.roles.student).toMatchObject({ forwardImages: 96, backwardImages: 96 });
    expect(dot.result.ledger.roles.student).toMatchObject({ forwardImages: 96, backwardImages: 192 });
  });

  it('a `mixed` loss that labels its terms trains as the task and distillation losses given apart, bit for bit', async () => {
    const mixed = defineLoss({
      id: 'test/mixed',
      describe: 'CE (task) and logit matching (distillation) in one plugin',
      options: z.object({}).strict(),
      objective: 'mixed',
      requires: () => ({ roles: ['student', 'teacher'] }),
      compute(ctx) {
        const { logits } = ctx.outputs('student');
        const logp = tf.logSoftmax(logits);
        const picked = tf.sum(tf.mul(logp, tf.cast(tf.oneHot(ctx.batch.y as tf.Tensor1D, ctx.numClasses), 'float32')), 1);
        const ce = tf.neg(tf.mean(picked)) as tf.Scalar;
        const match = tf.mean(tf.squaredDifference(logits, ctx.outputs('teacher').logits)) as tf.Scalar;
        return { ce: { value: ce, weight: 0.5, objective: 'task' }, match: { value: match, weight: 0.5 } };
      },
    });
    const optimizer = { name: 'dot', lr: 0.1, momentum: 0.9, weightDecay: 5e-4 };
    const apart = await train(spec(optimizer));
    const together = await train(spec(optimizer, { plugins: [{ use: 'test/mixed' }] }), new Registry([testModule(mixed)]));
    expect(together.weights).toEqual(apart.weights);
  });

  it('leaks no tensor: numTensors after step 5 equals numTensors after step 50', async () => {
    const counts: number[] = [];
    const counter = tensorCounter(counts);
    const s = spec(
      { name: 'dot', lr: 0.1, momentum: 0.9, weightDecay: 5e-4 },
      {
        data: { name: 'blobs', train: 40, test: 4 },
        train: { epochs: 5, batchSize: 4, optimizer: { name: 'dot', lr: 0.1, momentum: 0.9, weightDecay: 5e-4 } },
        plugins: [{ use: 'test/ce' }, { use: 'test/logit-match' }, { use: 'obs/count' }],
        evalEvery: 100,
      },
    );
    const result = await runSpec(s, { registry: new Registry([testModule(counter)]), specDir: SPEC_DIR, cacheDir: null });
    result.models.forEach((m) => m.dispose());
    expect(counts).toHaveLength(50);
    expect(counts[49]).toBe(counts[4]);
  });
});

describe('KD_OPTIMIZER_TERMS: DOT needs a task loss and a distillation loss in every phase it trains', () => {
  const registry = () => new Registry([testModule(definePlugin({ ...testCrossEntropy, id: 'loss/cross-entropy' }))]);
  const dot = { name: 'dot' as const, lr: 0.1 };
  const plan = (s: RunSpec) => planRun(s, { registry: registry(), specDir: SPEC_DIR, cacheDir: null });

  it.each([
    ['no distillation loss', spec(dot, { plugins: [{ use: 'test/ce' }] }), 'train.optimizer.name', /phase 'distill' has no distillation loss \(its losses: test\/ce \(task\)\)/, /loss\/hinton-kd/],
    ['no task loss', spec(dot, { plugins: [{ use: 'test/logit-match' }] }), 'train.optimizer.name', /has no task loss \(its losses: test\/logit-match \(distill\)\)/, /loss\/cross-entropy/],
    [
      "a stage's own dot without a task loss",
      spec({ name: 'sgd' }, { stages: [{ name: 'hint', epochs: 1, plugins: [{ name: 'test/logit-match' }], train: { optimizer: dot } }] }),
      'stages[0].train.optimizer.name',
      /phase 'hint' has no task loss/,
      /name: sgd/,
    ],
    ["a student's own dot", spec({ name: 'sgd' }, { student: { model: 'test-dense', train: { optimizer: dot } }, plugins: [{ use: 'test/ce' }] }), 'student.train.optimizer.name', /no distillation loss/, /name: sgd/],
    ['a teacher trained from labels with dot', spec({ name: 'sgd' }, { teacher: { model: 'test-dense', train: { optimizer: dot } } }), 'teacher.train.optimizer.name', /teacher 'teacher'.*phase 'teacher' has no distillation loss/, /name: sgd/],
  ])('%s: at plan time, at the path that chose dot', async (_what, s, path, message, fix) => {
    await expect(plan(s)).rejects.toMatchObject({ code: 'KD_OPTIMIZER_TERMS', path, message: expect.stringMatching(message), fix: expect.stringMatching(fix) });
  });

  it('a stage without dot needs neither (the main phase has both)', async () => {
    const s = spec(dot, { stages: [{ name: 'hint', epochs: 1, plugins: [{ name: 'test/logit-match' }], train: { optimizer: { name: 'sgd' } } }] });
    await expect(plan(s)).resolves.toMatchObject({ runs: [{ name: 'distill' }] });
  });
});
