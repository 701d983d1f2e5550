import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { prepareRun, type TrainingState } from '@tfkd/engine';
import { readCheckpoint, writeCheckpoint } from '@tfkd/engine/node';
import { isKdError, RunSpec } from '@tfkd/kd-core';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { flipByHand, handMade, planError, registry, run, spec, weightsOf } from './__fixtures__/views';

// Image views at planning (the coded start-up errors), across a checkpoint, and in memory.

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('resume mid-epoch with views', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-augment-views-'));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  const s = RunSpec.parse({
    seed: 9,
    backend: 'cpu',
    data: { name: 'blobs', train: 40, test: 12 },
    teacher: { model: 'test-dense', seed: 11, train: { epochs: 1 }, input: 'weak' },
    student: { model: 'test-dense', input: 'strong' },
    train: { epochs: 3, batchSize: 8, optimizer: { name: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 0 } },
    plugins: [
      { use: 'augment/random-crop', with: { padding: 1, mode: 'reflect', view: 'weak' } },
      { use: 'augment/flip', with: { view: 'weak' } },
      { use: 'augment/random-crop', name: 'crop-strong', with: { padding: 1, view: 'strong' } },
      { use: 'augment/randaugment', with: { view: 'strong' } },
      { use: 'augment/random-erasing', with: { view: 'strong' } },
      { use: 'loss/hinton-kd', with: { temperature: 4 } },
      { use: 'loss/cross-entropy', weight: 0.5 },
    ],
  });

  async function go(opts: { stopAfter?: number; resume?: TrainingState } = {}) {
    const checkpoints: TrainingState[] = [];
    let steps = 0;
    const engine = await prepareRun(s, {
      registry: registry(),
      cacheDir: null,
      resume: opts.resume,
      onCheckpoint: (c) => void checkpoints.push(c),
      shouldStop: opts.stopAfter === undefined ? undefined : () => steps >= (opts.stopAfter as number),
    });
    engine.bus.events$.subscribe((e) => void (e.hook === 'batchEnd' && steps++));
    try {
      const result = await engine.run();
      return { result, weights: weightsOf(result), checkpoints };
    } finally {
      engine.dispose();
    }
  }

  it('stopped after 7 steps and resumed from the checkpoint on disk: the same student, bit for bit', async () => {
    const whole = await go();
    const first = await go({ stopAfter: 7 });
    expect(first.result.stoppedAt).toEqual({ epoch: 2, batchIndex: 2, step: 7 });
    const dir = path.join(tmp, 'views');
    writeCheckpoint(dir, first.checkpoints[first.checkpoints.length - 1]);
    const rest = await go({ resume: readCheckpoint(dir) });
    expect(rest.result.history.map((h) => h.train)).toEqual(whole.result.history.map((h) => h.train));
    expect(rest.result.eval).toEqual(whole.result.eval);
    expect(rest.weights).toEqual(whole.weights);
    expect(first.weights).not.toEqual(whole.weights);
    // the cache was off for the teacher (it reads an augmented view) in both
    expect(whole.result.ledger.roles.teacher.cacheHits ?? 0).toBe(0);
  });
});

describe('memory', () => {
  it('tf.memory() is flat over 30 steps with two views and a main-image augmentation', async () => {
    const { trace } = await run(
      spec(
        [
          { use: 'augment/random-crop', with: { padding: 1 } },
          { use: 'augment/flip', with: { view: 'weak' } },
          { use: 'augment/randaugment', with: { view: 'strong' } },
          { use: 'augment/random-erasing', with: { p: 1, view: 'strong' } },
        ],
        {
          teacher: { model: 'test-dense', seed: 11, train: { epochs: 1 }, input: 'weak' },
          student: { model: 'test-dense', input: 'strong' },
          train: { epochs: 3, batchSize: 8, optimizer: { name: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 5e-4 } },
        },
      ),
      { train: handMade(80, 0), test: handMade(4, 1) },
    );
    expect(trace.counts).toHaveLength(30);
    expect(trace.counts[29]).toBe(trace.counts[4]);
  });
});

describe('start-up errors (planning, before any step)', () => {
  it('a role reading a view no plugin writes: KD_SPEC_INVALID at student.input, with a did-you-mean and the views the plugins write', async () => {
    const e = await planError(spec([{ use: 'augment/flip', with: { view: 'strong' } }, { use: 'augment/randaugment', with: { view: 'weak' } }], { student: { model: 'test-dense', input: 'strnog' } }));
    expect(e?.code).toBe('KD_SPEC_INVALID');
    expect(e?.path).toBe('student.input');
    expect(e?.message).toMatch(/'strnog'/);
    expect(e?.message).toMatch(/'strong' \(augment\/flip\), 'weak' \(augment\/randaugment\)/);
    expect(e?.fix).toMatch(/^did you mean 'strong'\? name one of: strong, weak/);
  });

  it('no plugin writes a view: the fix says how to make one; students[i] and teacher paths', async () => {
    const e = await planError(spec([{ use: 'augment/flip' }], { teacher: { model: 'test-dense', seed: 11, train: { epochs: 1 }, input: 'weak' } }));
    expect(e?.code).toBe('KD_SPEC_INVALID');
    expect(e?.path).toBe('teacher.input');
    expect(e?.message).toMatch(/no plugin writes an image view/);
    expect(e?.fix).toMatch(/view: weak/);
    const s = RunSpec.parse({
      ...spec([{ use: 'augment/flip', with: { view: 'weak' } }], {}, [{ use: 'loss/cross-entropy', with: { student: 'student.0' } }]),
      student: undefined,
      students: [{ model: 'test-dense', input: 'weak' }, { model: 'test-dense', input: 'strong' }],
    });
    const e2 = await planError(s);
    expect(e2?.path).toBe('students[1].input');
  });

  it('a malformed view name is refused by the schema (role and plugin)', async () => {
    expect(() => RunSpec.parse({ ...spec([]), student: { model: 'test-dense', input: '1weak' } })).toThrow();
    const e = await planError(spec([{ use: 'augment/flip', with: { view: 'a b' } }]));
    expect(e?.code).toBe('KD_PLUGIN_OPTIONS');
    expect(e?.path).toBe('plugins[0].with.view');
  });

  it.each(['augment/mixup', 'augment/cutmix'])('%s refuses `view:` (KD_PLUGIN_OPTIONS at .with.view), and refuses to come after a view (KD_PLUGIN_DEPENDENCY)', async (id) => {
    const e = await planError(spec([{ use: id, with: { view: 'strong' } }], { student: { model: 'test-dense', input: 'strong' } }));
    expect(e?.code).toBe('KD_PLUGIN_OPTIONS');
    expect(e?.path).toBe('plugins[0].with.view');
    expect(e?.message).toMatch(/cannot mix one image view: its soft targets/);
    const after = await planError(spec([{ use: 'augment/flip', with: { view: 'weak' } }, { use: id }]));
    expect(after?.code).toBe('KD_PLUGIN_DEPENDENCY');
    expect(after?.path).toBe('plugins[1]');
    // before the view plugins it is fine: the view starts from the mixed images
    expect(await planError(spec([{ use: id }, { use: 'augment/flip', with: { view: 'weak' } }], { student: { model: 'test-dense', input: 'weak' } }))).toBeNull();
  });

  it('mixup before a view: the view is the flipped mixed images, the targets are the batch’s', async () => {
    const { trace } = await run(spec([{ use: 'augment/mixup' }, { use: 'augment/flip', with: { p: 1, view: 'weak' } }], { student: { model: 'test-dense', input: 'weak' } }));
    expect(trace.steps).toHaveLength(4);
    for (const s of trace.steps) {
      expect(s.indices).toBeNull();
      expect(s.views.weak).toEqual(flipByHand(s.x));
      expect(s.input.student).toEqual(flipByHand(s.x));
    }
  });

  it('a sampler after a view plugin that would drop the views fails with KD_PLUGIN_DEPENDENCY and the fix', async () => {
    const e = await run(spec([{ use: 'augment/flip', with: { view: 'weak' } }, { use: 'test/half-batch' }])).then(
      () => null,
      (x: unknown) => x,
    );
    expect(isKdError(e) && e.code).toBe('KD_PLUGIN_DEPENDENCY');
    expect(String((e as Error).message)).toMatch(/image views 'weak'/);
  });
});
