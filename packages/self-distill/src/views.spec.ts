import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { Registry, runSpec, type RoleRuntime, viewFor } from '@tfkd/engine';
import { RunSpec, definePlugin } from '@tfkd/kd-core';
import { ContainerModule } from 'inversify';
import { z } from 'zod';
import { engineModules } from './__fixtures__/engine';

// Cross-quality KD is kd-core's per-role `view` (no loss of its own): these tests pin what it does.

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function role(name: string, view: Record<string, unknown> | undefined, inputShape: number[]): RoleRuntime {
  return { info: { name, kind: 'student', trainable: true }, specPath: name, spec: { options: {}, ...(view ? { view } : {}) }, inputShape } as unknown as RoleRuntime;
}

/** Bilinear resize with aligned corners (source = target · (in − 1)/(out − 1)) of one h×w image, float64. */
function resizeAligned(img: number[][], oh: number, ow: number): number[][] {
  const [h, w] = [img.length, img[0].length];
  const at = (o: number, out: number, inn: number) => (out === 1 ? 0 : (o * (inn - 1)) / (out - 1));
  return Array.from({ length: oh }, (_, i) =>
    Array.from({ length: ow }, (_, j) => {
      const [y, x] = [at(i, oh, h), at(j, ow, w)];
      const [y0, x0] = [Math.floor(y), Math.floor(x)];
      const [y1, x1] = [Math.min(y0 + 1, h - 1), Math.min(x0 + 1, w - 1)];
      const [dy, dx] = [y - y0, x - x0];
      const top = img[y0][x0] * (1 - dx) + img[y0][x1] * dx;
      const bottom = img[y1][x0] * (1 - dx) + img[y1][x1] * dx;
      return top * (1 - dy) + bottom * dy;
    }),
  );
}

describe('viewFor (hand example)', () => {
  // A 4×4 image: 1, 2, 3, 4 in the corners, 0 elsewhere.
  const img = [
    [1, 0, 0, 2],
    [0, 0, 0, 0],
    [0, 0, 0, 0],
    [3, 0, 0, 4],
  ];
  const x = () => tf.tensor4d(img.flat(), [1, 4, 4, 1]);

  it('resize [2, 2] keeps the corners (aligned corners)', () => {
    const v = tf.tidy(() => Array.from(viewFor(role('student', { resize: [2, 2] }, [2, 2, 1]), x()).dataSync()));
    expect(v).toEqual([1, 2, 3, 4]);
  });

  it('resize [2, 2] + upsample: bilinear back to 4×4 from the 2×2 corners', () => {
    // rows: (1, 4/3, 5/3, 2), (5/3, 2, 7/3, 8/3), (7/3, 8/3, 3, 10/3), (3, 10/3, 11/3, 4)
    const expected = [1, 4 / 3, 5 / 3, 2, 5 / 3, 2, 7 / 3, 8 / 3, 7 / 3, 8 / 3, 3, 10 / 3, 3, 10 / 3, 11 / 3, 4];
    const v = tf.tidy(() => Array.from(viewFor(role('student', { resize: [2, 2], upsample: true }, [4, 4, 1]), x()).dataSync()));
    v.forEach((a, i) => expect(a).toBeCloseTo(expected[i], 6));
    expect(resizeAligned(resizeAligned(img, 2, 2), 4, 4).flat()).toEqual(expected.map((e) => expect.closeTo(e, 12)));
  });

  it('no view: the batch itself, reshaped to the model input', () => {
    const v = tf.tidy(() => Array.from(viewFor(role('teacher', undefined, [16]), x()).dataSync()));
    expect(v).toEqual(img.flat());
  });
});

describe('cross-quality KD in a run: teacher on full images, student on the resized view', () => {
  it('the teacher’s input and outputs are untouched by the student’s view', async () => {
    const seen: { x: number[]; teacher: number[]; student: number[]; teacherLogits: number[] }[] = [];
    const recorder = definePlugin({
      id: 'test/record-inputs',
      kind: 'loss',
      describe: 'records the batch and each role’s input on the first steps (test)',
      options: z.object({}).strict(),
      requires: () => ({ roles: ['student', 'teacher'] }),
      create: (_o, deps) => ({
        name: deps.name,
        register(bus) {
          bus.on('loss', (ctx) => {
            if (seen.length < 3) {
              const read = (t: tf.Tensor) => Array.from(t.dataSync());
              seen.push({ x: read(ctx.batch.x), teacher: read(ctx.input('teacher')), student: read(ctx.input('student')), teacherLogits: read(ctx.outputs('teacher').logits) });
            }
          });
        },
      }),
    });
    const spec = RunSpec.parse({
      seed: 3,
      backend: 'cpu',
      data: { name: 'blobs', train: 32, test: 8 },
      teacher: { model: 'test-dense', seed: 9, train: { epochs: 2 } },
      student: { model: 'test-dense', view: { resize: [2, 2], upsample: true } },
      train: { epochs: 2, batchSize: 8, optimizer: { name: 'adam', lr: 0.01, weightDecay: 0 } },
      plugins: [{ use: 'loss/cross-entropy', weight: 0.5 }, { use: 'loss/hinton-kd', weight: 0.5 }, { use: 'test/record-inputs' }],
    });
    const modules = [...engineModules(), new ContainerModule((o) => void o.bind(Symbol.for('kd.PluginDefinition')).toConstantValue(recorder))];
    const result = await runSpec(spec, { registry: new Registry(modules), cacheDir: null });
    const teacher = result.models.get('teacher');
    try {
      expect(seen).toHaveLength(3);
      for (const s of seen) {
        // the teacher sees the full-resolution batch, value for value
        expect(s.teacher).toEqual(s.x);
        // the student sees it resized to 2×2 and back to 4×4, image by image
        const n = s.x.length / 16;
        for (let b = 0; b < n; b++) {
          const img = Array.from({ length: 4 }, (_, i) => s.x.slice(b * 16 + i * 4, b * 16 + i * 4 + 4));
          const want = resizeAligned(resizeAligned(img, 2, 2), 4, 4).flat();
          want.forEach((v, i) => expect(s.student[b * 16 + i]).toBeCloseTo(v, 5));
        }
        expect(s.student.some((v, i) => Math.abs(v - s.x[i]) > 1e-3)).toBe(true);
        // and the teacher's logits are those of the full images (the frozen teacher after the run)
        const full = tf.tidy(() => Array.from((teacher?.predict(tf.tensor4d(s.x, [n, 4, 4, 1])) as tf.Tensor).dataSync()));
        s.teacherLogits.forEach((v, i) => expect(v).toBeCloseTo(full[i], 5));
      }
      // evaluation applies the views too: the student is scored on resized test images, the teacher on full ones
      const test = result.data.test;
      const n = test.labels.length;
      const accuracy = (m: typeof teacher, view: boolean) =>
        tf.tidy(() => {
          let x: tf.Tensor4D = tf.tensor4d(test.images, [n, 4, 4, 1]);
          if (view) x = tf.image.resizeBilinear(tf.image.resizeBilinear(x, [2, 2], true), [4, 4], true);
          const pred = tf.argMax(m?.predict(x) as tf.Tensor, 1).dataSync();
          return pred.filter((p, i) => p === test.labels[i]).length / n;
        });
      expect(result.eval.student.accuracy).toBe(accuracy(result.models.get('student'), true));
      expect(result.eval.teacher.accuracy).toBe(accuracy(teacher, false));
    } finally {
      result.models.forEach((m) => m.dispose());
    }
  }, 30_000);
});

describe('views without up-sampling: the model is built for the view', () => {
  const base = {
    seed: 3,
    backend: 'cpu',
    data: { name: 'blobs', train: 32, test: 8 },
    train: { epochs: 1, batchSize: 8, optimizer: { name: 'adam', lr: 0.01, weightDecay: 0 } },
    plugins: [{ use: 'loss/cross-entropy' }],
  };

  it('a zoo student with view resize [2, 2] takes 2×2 images and sees the bilinear 2×2 copy', async () => {
    const seen: { x: number[]; student: number[] }[] = [];
    const recorder = definePlugin({
      id: 'test/record-view',
      kind: 'loss',
      describe: 'records the batch and the student input (test)',
      options: z.object({}).strict(),
      create: (_o, deps) => ({
        name: deps.name,
        register(bus) {
          bus.on('loss', (ctx) => {
            if (seen.length < 1) seen.push({ x: Array.from(ctx.batch.x.dataSync()), student: Array.from(ctx.input('student').dataSync()) });
          });
        },
      }),
    });
    const spec = RunSpec.parse({ ...base, student: { model: 'test-dense', view: { resize: [2, 2] } }, plugins: [...base.plugins, { use: 'test/record-view' }] });
    const modules = [...engineModules(), new ContainerModule((o) => void o.bind(Symbol.for('kd.PluginDefinition')).toConstantValue(recorder))];
    const result = await runSpec(spec, { registry: new Registry(modules), cacheDir: null });
    try {
      expect(result.models.get('student')?.inputs[0].shape).toEqual([null, 2, 2, 1]);
      const { x, student } = seen[0];
      const n = x.length / 16;
      expect(student).toHaveLength(n * 4);
      for (let b = 0; b < n; b++) {
        const img = Array.from({ length: 4 }, (_, i) => x.slice(b * 16 + i * 4, b * 16 + i * 4 + 4));
        resizeAligned(img, 2, 2).flat().forEach((v, i) => expect(student[b * 4 + i]).toBeCloseTo(v, 5));
      }
    } finally {
      result.models.forEach((m) => m.dispose());
    }
  }, 30_000);

  it('a trained teacher (built for full images) given a down-sampling view fails at start-up, at teacher.view', async () => {
    const spec = RunSpec.parse({ ...base, teacher: { model: 'test-dense', seed: 9, train: { epochs: 1 }, view: { resize: [2, 2] } }, student: { model: 'test-dense' } });
    const before = tf.memory().numTensors;
    await expect(runSpec(spec, { registry: new Registry(engineModules()), cacheDir: null })).rejects.toMatchObject({
      code: 'KD_SHAPE_MISMATCH',
      path: 'teacher.view',
      message: expect.stringContaining('takes inputs [4,4,1] but its view of the data is [2,2,1]'),
    });
    expect(tf.memory().numTensors).toBe(before);
  }, 30_000);
});
