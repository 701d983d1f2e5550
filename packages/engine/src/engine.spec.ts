import * as tf from '@tensorflow/tfjs-core';
import * as path from 'path';
import '@tensorflow/tfjs-backend-cpu';
import { z } from 'zod';
import { Engine } from './engine';
import { prepareRun, runSpec } from './execute';
import { defineLoss, definePlugin, KdError, RunSpec, type RunSpecInput } from '@tfkd/kd-core';
import { Registry } from './registry';
import { tensorCounter, testModule, tracer } from '@tfkd/kd-core/testing';

const base: RunSpecInput = {
  seed: 3,
  backend: 'cpu',
  data: { name: 'blobs', train: 8, test: 4 },
  student: { model: 'test-dense' },
  train: { epochs: 1, batchSize: 4, optimizer: { name: 'sgd', lr: 0.1, momentum: 0, weightDecay: 0 } },
  plugins: [{ use: 'test/ce' }],
};

function spec(over: Partial<RunSpecInput> = {}): RunSpec {
  return RunSpec.parse({ ...base, ...over });
}

describe('Engine', () => {
  it('fires the hooks of a 2-batch run in the documented order', async () => {
    const trace: string[] = [];
    const registry = new Registry([testModule(tracer(trace, 'obs'), tracer(trace, 'smp'))]);
    const s = spec({
      plugins: [{ use: 'obs' }, { use: 'test/ce' }, { use: 'smp', name: 'smp' }],
    });
    const result = await runSpec(s, { registry });
    result.models.forEach((m) => m.dispose());
    const perBatch = (i: number) => [`obs:batchStart:${i}`, `smp:batchStart:${i}`, `obs:loss:${i}`, `smp:loss:${i}`, `obs:batchEnd:${i}`, `smp:batchEnd:${i}`];
    expect(trace).toEqual([
      'obs:runStart', 'smp:runStart',
      'obs:epochStart:distill:1', 'smp:epochStart:distill:1',
      ...perBatch(0),
      ...perBatch(1),
      'obs:evalBatch:student', 'smp:evalBatch:student',
      'obs:evalEnd:1', 'smp:evalEnd:1',
      'obs:epochEnd:1', 'smp:epochEnd:1',
      'obs:runEnd', 'smp:runEnd',
    ]);
  });

  it('stepper() fires runStart once, with the payload run() sends', async () => {
    const fromRun: unknown[] = [];
    const fromStepper: unknown[] = [];
    const trace: string[] = [];
    const capture = (into: unknown[]) =>
      definePlugin({
        id: 'test/capture',
        kind: 'observer',
        describe: 'records runStart payloads',
        options: z.object({}).strict(),
        create: (_o, deps) => ({ name: deps.name, register: (bus) => bus.on('runStart', (info) => void into.push(info)) }),
      });
    const s = spec({ plugins: [{ use: 'obs' }, { use: 'test/capture' }, { use: 'test/ce' }] });
    const viaRun = await runSpec(s, { registry: new Registry([testModule(tracer([], 'obs'), capture(fromRun))]) });
    viaRun.models.forEach((m) => m.dispose());
    const engine = new Engine(s, { registry: new Registry([testModule(tracer(trace, 'obs'), capture(fromStepper))]) });
    const stepper = await engine.stepper();
    stepper.step();
    stepper.step();
    engine.dispose();
    expect(fromStepper).toEqual(fromRun);
    expect(fromRun).toHaveLength(1);
    expect(fromRun[0]).toMatchObject({ seed: 3, phases: [{ name: 'distill', epochs: 1, batchesPerEpoch: 2 }], dataset: { train: 8, test: 4 } });
    expect(trace.filter((t) => t.startsWith('obs:runStart'))).toEqual(['obs:runStart']);
  });

  it('fails the step with the name of a plugin that throws', async () => {
    const broken = definePlugin({
      id: 'loss/broken',
      kind: 'loss',
      describe: 'throws on the second batch',
      options: z.object({}).strict(),
      create: (_o, deps) => ({
        name: deps.name,
        register(bus) {
          bus.on('loss', (ctx) => {
            if (ctx.batchIndex === 1) throw new Error('bad tensor');
          });
        },
      }),
    });
    const registry = new Registry([testModule(broken)]);
    const engine = new Engine(spec({ plugins: [{ use: 'test/ce' }, { use: 'loss/broken' }] }), { registry });
    await expect(engine.run()).rejects.toThrow("plugin 'loss/broken' failed in hook 'loss': bad tensor");
    engine.dispose();
  });

  it('a spec error found after models were built (plugin create, teacher training) leaks no tensor, with the path in this spec', async () => {
    const picky = definePlugin({
      id: 'loss/picky',
      kind: 'loss',
      describe: 'refuses to be created (as a plugin whose requirements are checked in create)',
      options: z.object({}).strict(),
      create: (_o, deps) => {
        throw new KdError('KD_PLUGIN_DEPENDENCY', 'needs 2 students', { path: deps.specPath, fix: 'x' });
      },
    });
    // teacher training runs `loss/cross-entropy` (from losses-logit); here one that diverges on batch 1
    const diverging = defineLoss({
      id: 'loss/cross-entropy',
      describe: 'NaN on the second batch',
      options: z.object({}).strict(),
      compute: (ctx) => tf.mul(tf.mean(tf.square(ctx.outputs('student').logits)), ctx.batchIndex === 1 ? Number.NaN : 1) as tf.Scalar,
    });
    const registry = new Registry([testModule(picky, diverging)]);
    const warm = new Engine(spec(), { registry });
    await warm.run();
    warm.dispose();
    const before = tf.memory().numTensors;
    const a = new Engine(spec({ plugins: [{ use: 'test/ce' }, { use: 'loss/picky' }] }), { registry });
    await expect(a.prepare()).rejects.toMatchObject({ code: 'KD_PLUGIN_DEPENDENCY', path: 'plugins[1]' });
    a.dispose();
    expect(tf.memory().numTensors).toBe(before);
    // a teacher whose training diverges: the half-trained teacher is freed, the error points at it
    // (a teacher's recipe is its own: batches of 4, so that the NaN batch comes)
    const b = prepareRun(spec({ teacher: { model: 'test-dense', train: { epochs: 1, batchSize: 4 } } }), { registry, cacheDir: null });
    await expect(b).rejects.toMatchObject({ code: 'KD_LOSS_NONFINITE', path: 'nonFinite', message: expect.stringMatching(/at teacher epoch 1 batch 1/) });
    expect(tf.memory().numTensors).toBe(before);
    // planned, not trained: the teacher's model id is checked before anything trains
    const c = prepareRun(spec({ teacher: { model: 'no-such-model', train: { epochs: 1 } } }), { registry, cacheDir: null });
    await expect(c).rejects.toMatchObject({ code: 'KD_MODEL_UNKNOWN', path: 'teacher.model', message: expect.stringMatching(/^teacher 'teacher': /) });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a step that fails inside the loss leaks no tensor (tfjs abandons the tape with its saved tensors kept)', async () => {
    const late = definePlugin({
      id: 'loss/late-failure',
      kind: 'loss',
      describe: 'runs differentiable ops on the student, then throws (as a shape check in a loss would)',
      options: z.object({}).strict(),
      create: (_o, deps) => ({
        name: deps.name,
        register(bus) {
          bus.on('loss', (ctx) => {
            ctx.addLoss({ name: 'sq', value: tf.mean(tf.square(tf.softmax(ctx.outputs('student').logits))) as tf.Scalar });
            if (ctx.batchIndex === 1) throw new KdError('KD_SHAPE_MISMATCH', 'late', { path: 'plugins[1]', fix: 'x' });
          });
        },
      }),
    });
    const registry = new Registry([testModule(late)]);
    // warm-up run: tfjs and the backend allocate what they keep for the process
    const warm = new Engine(spec({ plugins: [{ use: 'test/ce' }] }), { registry });
    await warm.run();
    warm.dispose();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      const engine = new Engine(spec({ plugins: [{ use: 'test/ce' }, { use: 'loss/late-failure' }] }), { registry });
      await expect(engine.run()).rejects.toMatchObject({ code: 'KD_SHAPE_MISMATCH', path: 'plugins[1]' });
      engine.dispose();
      expect(tf.memory().numTensors).toBe(before);
    }
    // a loss that reads no student output (a constant): a KdError, not tfjs's "Cannot find a connection"
    const constant = definePlugin({
      id: 'loss/constant',
      kind: 'loss',
      describe: 'adds a constant term',
      options: z.object({}).strict(),
      create: (_o, deps) => ({ name: deps.name, register: (bus) => bus.on('loss', (ctx) => ctx.addLoss({ name: 'c', value: tf.scalar(1) })) }),
    });
    const only = new Engine(spec({ plugins: [{ use: 'loss/constant' }] }), { registry: new Registry([testModule(constant)]) });
    await expect(only.run()).rejects.toMatchObject({ code: 'KD_PLUGIN_DEPENDENCY', path: 'plugins', message: expect.stringContaining('no loss term depends on a trainable weight (terms: c)') });
    only.dispose();
    expect(tf.memory().numTensors).toBe(before);
    // the next gradient computation is unaffected
    const after = new Engine(spec({ plugins: [{ use: 'test/ce' }] }), { registry });
    const r = await after.run();
    expect(Number.isFinite(r.history[0].train.loss)).toBe(true);
    after.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('leaks no tensor: numTensors after step 5 equals numTensors after step 50', async () => {
    const counts: number[] = [];
    const counter = tensorCounter(counts);
    const registry = new Registry([testModule(counter)]);
    const s = spec({
      data: { name: 'blobs', train: 40, test: 4 },
      train: { epochs: 5, batchSize: 4, optimizer: { name: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 5e-4 } },
      plugins: [{ use: 'test/ce' }, { use: 'obs/count' }],
      evalEvery: 100,
    });
    const result = await runSpec(s, { registry });
    result.models.forEach((m) => m.dispose());
    expect(counts).toHaveLength(50);
    expect(counts[49]).toBe(counts[4]);
  });

  it('learns: the test accuracy of the blobs task rises above chance', async () => {
    const registry = new Registry([testModule()]);
    const s = spec({
      data: { name: 'blobs', train: 96, test: 48 },
      train: { epochs: 8, batchSize: 16, optimizer: { name: 'adam', lr: 0.02, momentum: 0, weightDecay: 0 } },
    });
    const result = await runSpec(s, { registry });
    result.models.forEach((m) => m.dispose());
    expect(result.eval.student.accuracy).toBeGreaterThan(0.9);
    expect(result.history).toHaveLength(8);
    expect(result.ledger.roles.student.forwardImages).toBe(8 * 96);
    expect(result.ledger.roles.student.backwardImages).toBe(8 * 96);
    // dense 16→8 and 8→3: 2·(16·8 + 8·3) = 304 FLOPs per image
    expect(result.ledger.roles.student.flopsPerImage).toBe(304);
  });

  it('is deterministic for a seed', async () => {
    const registry = new Registry([testModule()]);
    const s = spec({ train: { epochs: 2, batchSize: 4, optimizer: { name: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 0 } } });
    const a = await runSpec(s, { registry });
    const b = await runSpec(s, { registry: new Registry([testModule()]) });
    expect(a.history.map((h) => h.train.loss)).toEqual(b.history.map((h) => h.train.loss));
    [...a.models.values(), ...b.models.values()].forEach((m) => m.dispose());
  });

  describe('start-up errors', () => {
    const fail = async (s: RunSpec) => {
      const engine = new Engine(s, { registry: new Registry([testModule()]) });
      try {
        await engine.prepare();
      } catch (e) {
        return e as KdError;
      }
      throw new Error('expected prepare() to fail');
    };

    it('unknown plugin id: lists the known ids and suggests the nearest', async () => {
      const e = await fail(spec({ plugins: [{ use: 'test/cee' }] }));
      expect(e.code).toBe('KD_PLUGIN_UNKNOWN');
      expect(e.path).toBe('plugins[0].use');
      expect(e.message).toBe("unknown plugin 'test/cee'; known: test/ce, test/logit-match");
      expect(e.fix).toContain("did you mean 'test/ce'?");
    });

    it('unknown model', async () => {
      const e = await fail(spec({ student: { model: 'resnet-9000' } }));
      expect(e.code).toBe('KD_MODEL_UNKNOWN');
      expect(e.path).toBe('student.model');
    });

    it('unknown tap: names the layer and lists the real ones', async () => {
      const tapper = definePlugin({
        id: 'loss/tapper',
        kind: 'loss',
        describe: 'reads a tap',
        options: z.object({ tap: z.string() }).strict(),
        requires: (o) => ({ taps: [o.tap] }),
        create: (_o, deps) => ({ name: deps.name, register() {} }),
      });
      const engine = new Engine(spec({ plugins: [{ use: 'loss/tapper', with: { tap: 'student.block9' } }] }), {
        registry: new Registry([testModule(tapper)]),
      });
      const e = await engine.prepare().then(() => null, (x) => x as KdError);
      expect(e?.code).toBe('KD_TAP_UNKNOWN');
      expect(e?.path).toBe('plugins[0]');
      expect(e?.message).toBe("role 'student' (dense) has no layer 'block9'");
      expect(e?.fix).toContain('fc1 [null,8]');
    });

    it('missing teacher for a plugin that needs one', async () => {
      const needy = definePlugin({
        id: 'loss/needy',
        kind: 'loss',
        describe: 'needs a teacher',
        options: z.object({}).strict(),
        requires: () => ({ roles: ['teacher'] }),
        create: (_o, deps) => ({ name: deps.name, register() {} }),
      });
      const engine = new Engine(spec({ plugins: [{ use: 'loss/needy' }] }), { registry: new Registry([testModule(needy)]) });
      await expect(engine.prepare()).rejects.toMatchObject({ code: 'KD_PLUGIN_DEPENDENCY', path: 'plugins[0]' });
    });

    it('bad plugin options carry the option path', async () => {
      const e = await fail(spec({ plugins: [{ use: 'test/ce', with: { temperature: 4 } }] }));
      expect(e.code).toBe('KD_PLUGIN_OPTIONS');
      expect(e.path).toBe('plugins[0].with');
      expect(e.fix).toContain("'temperature'");
    });
  });
});

describe('teacher-output cache', () => {
  it('serves a frozen teacher from the cache after epoch 1: same losses, fewer teacher forwards', async () => {
    const { denseModel, testModelTools } = await import('@tfkd/kd-core/testing');
    const dir = path.resolve('mem-teacher-cache-test');
    const teacherModel = denseModel({ inputShape: [4, 4, 1], numClasses: 3, seed: 11, hidden: 16 });
    await testModelTools.save(teacherModel, dir);
    teacherModel.dispose();
    const run = async (teacherCache: 'auto' | 'off') => {
      const s = spec({
        teacher: { load: dir },
        data: { name: 'blobs', train: 12, test: 4 },
        train: { epochs: 3, batchSize: 4, optimizer: { name: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 0 } },
        plugins: [{ use: 'test/ce', weight: 0.5 }, { use: 'test/logit-match', weight: 0.5 }],
        teacherCache,
      });
      const r = await runSpec(s, { registry: new Registry([testModule()]) });
      r.models.forEach((m) => m.dispose());
      return r;
    };
    const cached = await run('auto');
    const plain = await run('off');
    expect(cached.history.map((h) => h.train.loss)).toEqual(plain.history.map((h) => h.train.loss));
    expect(cached.eval.student.accuracy).toBe(plain.eval.student.accuracy);
    expect(plain.ledger.roles.teacher).toMatchObject({ forwardImages: 36, cacheHits: 0 });
    expect(cached.ledger.roles.teacher).toMatchObject({ forwardImages: 12, cacheHits: 24 });
  });
});

describe('non-finite guard', () => {
  const nanAt = (batch: number) =>
    definePlugin({
      id: 'loss/nan-injector',
      kind: 'loss',
      describe: 'adds NaN·(student logits) on one batch',
      options: z.object({}).strict(),
      create: (_o, deps) => ({
        name: deps.name,
        register(bus) {
          bus.on('loss', (ctx) => {
            const z = tf.mean(ctx.outputs('student').logits) as tf.Scalar;
            ctx.addLoss({ value: ctx.batchIndex === batch ? (tf.mul(z, NaN) as tf.Scalar) : (tf.mul(z, 0) as tf.Scalar) });
          });
        },
      }),
    });
  const nanSpec = (nonFinite: 'stop' | 'skip-batch') =>
    spec({
      data: { name: 'blobs', train: 12, test: 4 },
      train: { epochs: 1, batchSize: 4, optimizer: { name: 'sgd', lr: 0.1, momentum: 0, weightDecay: 0 } },
      plugins: [{ use: 'test/ce' }, { use: 'loss/nan-injector' }],
      nonFinite,
    });

  it('stop (default): one KD_LOSS_NONFINITE naming the term, epoch and batch', async () => {
    const engine = new Engine(nanSpec('stop'), { registry: new Registry([testModule(nanAt(1))]) });
    await expect(engine.run()).rejects.toMatchObject({
      code: 'KD_LOSS_NONFINITE',
      path: 'nonFinite',
      message: 'loss is NaN; non-finite terms: loss/nan-injector at distill epoch 1 batch 1',
    });
    engine.dispose();
  });

  it('skip-batch: the batch is skipped, counted, and the weights stay finite', async () => {
    const r = await runSpec(nanSpec('skip-batch'), { registry: new Registry([testModule(nanAt(1))]) });
    expect(r.history[0].train.skippedBatches).toBe(1);
    expect(Number.isFinite(r.history[0].train.loss)).toBe(true);
    const w = r.models.get('student')!.getWeights().map((t) => Array.from(t.dataSync()));
    expect(w.flat().every(Number.isFinite)).toBe(true);
    expect(r.ledger.roles.student.backwardImages).toBe(8);
    r.models.forEach((m) => m.dispose());
  });
});
