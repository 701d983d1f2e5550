import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { runSpec, specHash } from '@tfkd/engine';
import { definePlugin, RunSpec, type PluginDefinition } from '@tfkd/kd-core';
import { createHash } from 'crypto';
import { z } from 'zod';
import { data, flipByHand, HAND, imagesAt, registry, run, spec, tracer, type Trace, type Use } from './__fixtures__/views';

// Image views (issue #20): by default every role sees the batch's main images `x`, augmented by the
// plugins without `view:` exactly as before; `view: <name>` makes a plugin transform a named view
// instead, and a role with `input: <name>` sees it. Real runs on a hand-made data set (4×4×1 images
// whose pixels are all distinct, so a flip is visible in every row) and dense teacher and student.

/**
 * MLKD's shape (a later method): a loss that reads both views and runs the roles on them itself —
 * the teacher on `weak`, the student on `strong` — through `ctx.input(role, view)` and `ctx.apply`.
 */
interface TwoViews {
  weak: number[];
  strong: number[];
  teacherIn: number[];
  studentIn: number[];
  t: number[];
  s: number[];
  value: number;
}
function twoViewsLoss(sink: TwoViews[]): PluginDefinition {
  return definePlugin({
    id: 'test/two-views',
    kind: 'loss',
    describe: 'mean squared difference of the teacher’s softmax on `weak` and the student’s on `strong`',
    options: z.object({}).strict(),
    requires: () => ({ roles: ['teacher', 'student'] }),
    create: (_o, d) => ({
      name: d.name,
      register(bus) {
        bus.on('loss', (ctx) => {
          const views = ctx.batch.views as Record<string, tf.Tensor>;
          const teacherIn = ctx.input('teacher', 'weak');
          const studentIn = ctx.input('student', 'strong');
          const t = ctx.apply('teacher', teacherIn);
          const s = ctx.apply('student', studentIn, { training: true });
          const value = tf.mean(tf.square(tf.sub(tf.softmax(t), tf.softmax(s)))) as tf.Scalar;
          ctx.addLoss({ value });
          sink.push({ weak: data(views.weak), strong: data(views.strong), teacherIn: data(teacherIn), studentIn: data(studentIn), t: data(t), s: data(s), value: value.dataSync()[0] });
        });
      },
    }),
  });
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('default: no view, today’s behaviour exactly', () => {
  // Recorded with the code before image views existed (commit b6ed561): resume.spec.ts's run (blobs,
  // 40 samples, 3 epochs of 5 steps) with five augmentations, with mixup, and with none. The history,
  // the evaluation, the student's weights (sha256 of their float32 bytes), the teacher's ledger and
  // the spec hash must come out bit for bit the same.
  // (The numbers as JSON text: written as literals, eslint's no-loss-of-precision misreads one.)
  const BEFORE = JSON.parse(`{
    "all": {
      "augs": [{ "use": "augment/random-crop", "with": { "padding": 1 } }, { "use": "augment/flip" }, { "use": "augment/randaugment" },
               { "use": "augment/random-erasing", "with": { "p": 1 } }, { "use": "augment/cutmix" }],
      "train": [
        { "loss": 0.5928058505058289, "loss/hinton-kd": 0.0230052649974823, "loss/cross-entropy": 1.139601182937622 },
        { "loss": 0.5551469802856446, "loss/hinton-kd": 0.013181804865598678, "loss/cross-entropy": 1.0839303255081176 },
        { "loss": 0.5652707576751709, "loss/hinton-kd": 0.011498300358653069, "loss/cross-entropy": 1.1075449228286742 }
      ],
      "eval": { "teacher": { "accuracy": 0, "nll": 1.2950592835744221 }, "student": { "accuracy": 0.25, "nll": 1.1117220719655354 } },
      "weights": "22d57c4ca3efb90935365259b92f7faa410a979d10e5991142914eb5f1c8cb7f",
      "hash": "4528905f1738d31d",
      "teacher": { "forwardImages": 120, "cacheHits": 0 }
    },
    "mixup": {
      "augs": [{ "use": "augment/mixup" }],
      "train": [
        { "loss": 0.5920486450195312, "loss/hinton-kd": 0.00826203366741538, "loss/cross-entropy": 1.1675732135772705 },
        { "loss": 0.5548537969589233, "loss/hinton-kd": 0.01100908126682043, "loss/cross-entropy": 1.087689423561096 },
        { "loss": 0.5412686944007874, "loss/hinton-kd": 0.018490531668066978, "loss/cross-entropy": 1.0455563068389893 }
      ],
      "eval": { "teacher": { "accuracy": 0, "nll": 1.2950592835744221 }, "student": { "accuracy": 0.9166666666666666, "nll": 0.9720135529836019 } },
      "weights": "435d15e460d71f1cb439b38f5196d2da6a0108f218c9a35a1af46981062b8143",
      "hash": "f188af3159369bf4",
      "teacher": { "forwardImages": 120, "cacheHits": 0 }
    },
    "none": {
      "augs": [],
      "weights": "fcfe033f3f768c902af5c4bdaa5822e8052532914badd9d731149e81ecbaaad0",
      "hash": "3cb1f93c6acd5f51",
      "teacher": { "forwardImages": 40, "cacheHits": 80 }
    }
  }`) as Record<string, { augs: Use[]; train?: unknown[]; eval?: unknown; weights: string; hash: string; teacher: { forwardImages: number; cacheHits: number } }>;
  const baseSpec = (augs: Use[]) =>
    RunSpec.parse({
      seed: 9,
      backend: 'cpu',
      data: { name: 'blobs', train: 40, test: 12 },
      teacher: { model: 'test-dense', seed: 11, train: { epochs: 1 } },
      student: { model: 'test-dense' },
      train: { epochs: 3, batchSize: 8, optimizer: { name: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 0 } },
      plugins: [...augs, { use: 'loss/hinton-kd', with: { temperature: 4 } }, { use: 'loss/cross-entropy', weight: 0.5 }],
    });

  it.each(Object.entries(BEFORE))('%s: history, evaluation, weights, ledger and spec hash as before', async (_name, want) => {
    const s = baseSpec(want.augs);
    expect(specHash(s)).toBe(want.hash);
    const result = await runSpec(s, { registry: registry(), cacheDir: null });
    const h = createHash('sha256');
    for (const w of (result.models.get('student') as unknown as { getWeights(): tf.Tensor[] }).getWeights()) h.update(Buffer.from((w.dataSync() as Float32Array).buffer));
    result.models.forEach((m) => m.dispose());
    expect(h.digest('hex')).toBe(want.weights);
    if (want.train) {
      expect(result.history.map((e) => e.train)).toEqual(want.train);
      expect(result.eval).toEqual(want.eval);
    }
    expect(result.ledger.roles.teacher.forwardImages).toBe(want.teacher.forwardImages);
    expect(result.ledger.roles.teacher.cacheHits ?? 0).toBe(want.teacher.cacheHits);
  });

  it('`view: null` written out is the default: the same numbers', async () => {
    const a = await run(spec([{ use: 'augment/flip' }, { use: 'augment/random-crop', with: { padding: 1 } }]));
    const b = await run(spec([{ use: 'augment/flip', with: { view: null } }, { use: 'augment/random-crop', with: { padding: 1, view: null } }]));
    expect(b.weights).toEqual(a.weights);
    expect(b.trace.steps.map((s) => s.x)).toEqual(a.trace.steps.map((s) => s.x));
    // teacher and student see the same augmented images, as before
    for (const s of a.trace.steps) expect(s.input.teacher).toEqual(s.x);
    for (const s of a.trace.steps) expect(s.input.student).toEqual(s.x);
    expect(a.trace.steps.every((s) => Object.keys(s.views).length === 0 && s.indices === null)).toBe(true);
  });
});

describe('per role: the student sees a flipped view, the teacher the clean image', () => {
  const studentView = spec([{ use: 'augment/flip', with: { p: 1, view: 'flipped' } }], { student: { model: 'test-dense', input: 'flipped' } });
  let r: Awaited<ReturnType<typeof run>>;
  beforeAll(async () => {
    r = await run(studentView);
  });

  it('x stays the training images; the student’s input is their horizontal flip, by hand', () => {
    expect(r.trace.steps).toHaveLength(4);
    for (const s of r.trace.steps) {
      const idx = Int32Array.from(s.indices as number[]);
      expect(s.x).toEqual(imagesAt(idx));
      expect(s.views.flipped).toEqual(flipByHand(s.x));
      expect(s.input.student).toEqual(flipByHand(s.x));
      expect(s.input.teacher).toEqual(s.x);
      expect(s.input.student).not.toEqual(s.x);
    }
  });

  it('the teacher’s outputs equal its forward of the un-augmented images, in both epochs (the second from the cache)', () => {
    for (const s of r.trace.steps) expect(s.teacher).toEqual(s.teacherDirect);
  });

  it('the teacher-output cache stays on: epoch 1 forwards 16 images, epoch 2 is 16 cache hits', () => {
    const t = r.result.ledger.roles.teacher;
    expect(t.forwardImages).toBe(16);
    expect(t.cacheHits).toBe(16);
    // the student forwards (and back-propagates) every image of both epochs
    expect(r.result.ledger.roles.student.forwardImages).toBe(32);
  });

  it('a teacher reading the augmented view is not served by the cache: 32 forwards, 0 hits', async () => {
    const both = await run(spec([{ use: 'augment/flip', with: { p: 1, view: 'flipped' } }], { teacher: { model: 'test-dense', seed: 11, train: { epochs: 1 }, input: 'flipped' }, student: { model: 'test-dense', input: 'flipped' } }));
    const t = both.result.ledger.roles.teacher;
    expect(t.forwardImages).toBe(32);
    expect(t.cacheHits ?? 0).toBe(0);
    expect(both.trace.steps).toHaveLength(4);
    for (const s of both.trace.steps) {
      expect(s.input.teacher).toEqual(flipByHand(s.x));
      expect(s.teacher).not.toEqual(s.teacherDirect);
    }
    // and the same flip on the main images trains the same student (the views are the same images)
    const main = await run(spec([{ use: 'augment/flip', with: { p: 1 } }]));
    expect(both.weights).toEqual(main.weights);
    expect(main.result.ledger.roles.teacher.forwardImages).toBe(32);
  });

  it('the role’s resize view applies to its image view: input = resize(flip(x))', async () => {
    const resized = await run(spec([{ use: 'augment/flip', with: { p: 1, view: 'flipped' } }], { student: { model: 'test-dense', input: 'flipped', view: { resize: [2, 2], upsample: true } } }));
    expect(resized.trace.steps).toHaveLength(4);
    for (const s of resized.trace.steps) {
      const n = s.x.length / 16;
      const want = tf.tidy(() => {
        const f = tf.tensor4d(flipByHand(s.x), [n, 4, 4, 1]);
        return data(tf.image.resizeBilinear(tf.image.resizeBilinear(f, [2, 2], true), [4, 4], true));
      });
      expect(s.input.student).toEqual(want);
    }
  });

  it('in a stage where the view’s plugin is inactive, the role reading it sees the main images', async () => {
    const staged = await run(
      spec([{ use: 'augment/flip', with: { p: 1, view: 'flipped' } }], {
        student: { model: 'test-dense', input: 'flipped' },
        stages: [{ name: 'warm', epochs: 1, plugins: [{ name: 'loss/cross-entropy' }, { name: 'test/views-trace' }] }],
      }),
    );
    expect(staged.trace.steps).toHaveLength(6);
    for (const s of staged.trace.steps.slice(0, 2)) {
      expect(s.views).toEqual({});
      expect(s.input.student).toEqual(s.x);
    }
    for (const s of staged.trace.steps.slice(2)) expect(s.input.student).toEqual(flipByHand(s.x));
  });
});

describe('weak and strong views from two stacks', () => {
  const weak: Use[] = [{ use: 'augment/flip', with: { p: 1, view: 'weak' } }];
  const strong: Use[] = [
    { use: 'augment/random-crop', with: { padding: 1, view: 'strong' } },
    { use: 'augment/randaugment', with: { numOps: 2, magnitude: 12, view: 'strong' } },
  ];
  const roles = { teacher: { model: 'test-dense', seed: 11, train: { epochs: 1 }, input: 'weak' }, student: { model: 'test-dense', input: 'strong' } };

  it('each view is its stack’s output on the clean images; x is untouched; roles see theirs', async () => {
    const both = await run(spec([...weak, ...strong], roles));
    // The generators are per plugin (forked by position): the same stack on the main images, at the
    // same positions, makes the same images.
    const strongOnX = await run(spec([...weak, ...strong.map((u) => ({ ...u, with: { ...(u.with as object), view: null } }))], { student: { model: 'test-dense', input: 'weak' } }));
    expect(both.trace.steps).toHaveLength(4);
    expect(strongOnX.trace.steps).toHaveLength(4);
    both.trace.steps.forEach((s, i) => {
      expect(s.x).toEqual(imagesAt(Int32Array.from(s.indices as number[])));
      expect(Object.keys(s.views).sort()).toEqual(['strong', 'weak']);
      expect(s.views.weak).toEqual(flipByHand(s.x));
      expect(s.views.strong).toEqual(strongOnX.trace.steps[i].x);
      expect(s.views.strong).not.toEqual(s.x);
      expect(s.views.strong).not.toEqual(s.views.weak);
      expect(s.input.teacher).toEqual(s.views.weak);
      expect(s.input.student).toEqual(s.views.strong);
    });
  });

  it('a loss reads both views and runs the roles on them with ctx.apply (MLKD’s shape)', async () => {
    const sink: TwoViews[] = [];
    const trace: Trace = { steps: [], counts: [] };
    const s = spec([...weak, ...strong], {}, [{ use: 'test/two-views' }]);
    const result = await runSpec(s, { registry: registry(tracer(trace), twoViewsLoss(sink)), cacheDir: null, data: HAND });
    const teacher = result.models.get('teacher') as LayersModel;
    expect(sink).toHaveLength(4);
    sink.forEach((v, i) => {
      const x = trace.steps[i].x;
      expect(v.weak).toEqual(flipByHand(x));
      expect(v.teacherIn).toEqual(v.weak);
      expect(v.studentIn).toEqual(v.strong);
      expect(v.strong).not.toEqual(x);
      // the teacher's logits are its forward of the weak view
      const n = x.length / 16;
      expect(v.t).toEqual(tf.tidy(() => data(teacher.apply(tf.tensor4d(v.weak, [n, 4, 4, 1])) as tf.Tensor)));
      // the term, in doubles, from the recorded logits
      const soft = (z: number[]) => Array.from({ length: n }, (_, r) => {
        const row = z.slice(3 * r, 3 * r + 3);
        const m = Math.max(...row);
        const e = row.map((a) => Math.exp(a - m));
        return e.map((a) => a / e.reduce((p, q) => p + q, 0));
      });
      const [pt, ps] = [soft(v.t), soft(v.s)];
      const want = pt.flatMap((row, r) => row.map((a, k) => (a - ps[r][k]) ** 2)).reduce((a, b) => a + b, 0) / (3 * n);
      expect(v.value).toBeCloseTo(want, 6);
    });
    // the epoch's logged term is the mean of its two steps' values (16 images, batch 8)
    expect(result.history.map((h) => h.train['test/two-views'])).toEqual([(sink[0].value + sink[1].value) / 2, (sink[2].value + sink[3].value) / 2].map((m) => expect.closeTo(m, 6)));
    // ledger: the teacher's prefetch of x (16, then 16 cache hits) plus its 2 × 16 forwards of `weak`
    expect(result.ledger.roles.teacher.forwardImages).toBe(16 + 32);
    expect(result.ledger.roles.teacher.cacheHits).toBe(16);
    result.models.forEach((m) => m.dispose());
  });
});

