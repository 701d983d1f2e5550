import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { Engine, planRun, Registry } from '@tfkd/engine';
import { type Dataset, definePlugin, isKdError, type KdError, type ObjectList, type PluginDefinition, type RunSpec, type RunSpecInput } from '@tfkd/kd-core';
import { testModule } from '@tfkd/kd-core/testing';
import { randomSampler, type SamplerPlugin, type Selection, unixSampler } from '@tfkd/samplers-unix';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { z } from 'zod';
import { TINY, tinyRunSpec, tinyScenesModule } from '../__fixtures__/tiny-scenes';
import { buildDetector } from '../detector';
import { kdModule } from '../module';

// The UNIX samplers (@tfkd/samplers-unix) on dense runs, at engine level on hand-made scenes: the
// images `sampler/unix` keeps are the top k by an independent float64 computation of the uncertainty
// from the student's outputs at that step, and the batch the losses see carries exactly those
// images, with the dataset's masks / objects; `sampler/random` carries its picks' targets; mixing on
// a dense run is refused at plan time.
jest.setTimeout(120_000);

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** What a probe saw in one step: the loaded batch and the student's outputs on it (before the sampler), the batch in the loss hook, the sampler's selection. */
interface Seen {
  loadedIndices: number[];
  heads: Record<string, { shape: number[]; data: Float32Array }>;
  x: number[];
  indices: number[] | null;
  loadedX: Float32Array;
  masks: number[] | null;
  objects: readonly ObjectList[] | null;
  selection: Selection | null;
}

/**
 * `test/probe`, listed before the sampler: at batchStart (stage sample) it records the loaded batch and
 * the student's outputs on it — a forward in training mode, as the sampler's (the zoo models have no
 * dropout or batch norm: the same numbers); in the loss hook, the batch the losses see.
 */
function probe(seen: Seen[], samplers: SamplerPlugin[]): PluginDefinition {
  return definePlugin({
    id: 'test/probe',
    kind: 'observer',
    describe: 'records the loaded batch, the student outputs on it and the batch the losses see',
    options: z.object({}).strict(),
    tasks: ['detection', 'segmentation'],
    stage: 'sample',
    requires: () => ({ roles: ['student'] }),
    create: (_o, d) => ({
      name: d.name,
      register(bus) {
        bus.on('batchStart', (ctx) => {
          const heads = ctx.predictHeads('student', ctx.batch.x, { training: true });
          seen.push({
            loadedIndices: Array.from(ctx.batch.indices ?? []),
            loadedX: Float32Array.from(ctx.batch.x.dataSync()),
            heads: Object.fromEntries(Object.entries(heads).map(([n, t]) => [n, { shape: t.shape, data: Float32Array.from(t.dataSync()) }])),
            x: [],
            indices: null,
            masks: null,
            objects: null,
            selection: null,
          });
        });
        bus.on('loss', (ctx) => {
          const s = seen[seen.length - 1];
          s.x = Array.from(ctx.batch.x.dataSync());
          s.indices = ctx.batch.indices && Array.from(ctx.batch.indices);
          s.masks = ctx.batch.masks ? Array.from(ctx.batch.masks.dataSync()) : null;
          s.objects = ctx.batch.objects ?? null;
          const sel = samplers[samplers.length - 1]?.lastSelection() ?? null;
          s.selection = sel && { ...sel, kept: sel.kept.slice() };
        });
      },
    }),
  });
}

function capturing(def: PluginDefinition, sink: SamplerPlugin[]): PluginDefinition {
  return { ...def, create: (o, d) => sink[sink.push(def.create(o, d) as SamplerPlugin) - 1] };
}

const registry = (seen: Seen[] = [], samplers: SamplerPlugin[] = []) =>
  new Registry([testModule(capturing(unixSampler, samplers), capturing(randomSampler, samplers), probe(seen, samplers)), tinyScenesModule, kdModule]);

const spec = (task: 'detection' | 'segmentation', sampler: Record<string, unknown>, over: Partial<RunSpecInput> = {}): RunSpec =>
  tinyRunSpec(task, { plugins: [{ use: 'test/probe' }, sampler, { use: task === 'detection' ? 'loss/detection' : 'loss/seg-cross-entropy' }], ...over } as Partial<RunSpecInput>);

/**
 * A width-2 student detector whose class heads give scores spread around 0.5 (kernels ×8, biases 0.3
 * and −0.2, as tasks.spec.ts's teacher): at the zoo's prior bias −ln 99 every scene's uncertainty is
 * about the same, and the ranking would be decided by float noise.
 */
function spreadStudent(): LayersModel {
  const m = buildDetector({ inputShape: [TINY, TINY, 1], numClasses: 2, seed: 8, width: 2 }, 'detector-student', 2);
  for (const name of ['cls_p3', 'cls_p4']) {
    const layer = m.getLayer(name);
    const [k] = layer.getWeights();
    layer.setWeights([tf.mul(k, 8), tf.tensor1d([0.3, -0.2])]);
  }
  return m;
}

async function run(s: RunSpec): Promise<{ seen: Seen[]; train: Dataset }> {
  const seen: Seen[] = [];
  const student = s.task === 'detection' ? spreadStudent() : null;
  const engine = new Engine(s, { registry: registry(seen, []), ...(student ? { models: new Map([['student', student]]) } : {}) });
  try {
    const result = await engine.run();
    return { seen, train: result.data.train };
  } finally {
    engine.dispose();
    student?.dispose();
  }
}

/** Independent float64 segmentation uncertainty: per pixel −Σ p ln p of softmax over the last axis, mean per image. */
function segU(h: { shape: number[]; data: Float32Array }): number[] {
  const [n, , , k] = h.shape;
  const pixels = h.data.length / n / k;
  return Array.from({ length: n }, (_, i) => {
    let sum = 0;
    for (let p = 0; p < pixels; p++) {
      const z = Array.from(h.data.subarray((i * pixels + p) * k, (i * pixels + p + 1) * k));
      const m = Math.max(...z);
      const e = z.map((v) => Math.exp(v - m));
      const s = e.reduce((a, b) => a + b, 0);
      sum -= e.reduce((a, v) => a + (v / s) * Math.log(Math.max(v / s, 1e-30)), 0);
    }
    return sum / pixels;
  });
}

/** Independent float64 detection uncertainty: Σ_k binary entropy of σ(z) per location, mean over every location of every cls_* map. */
function detU(heads: Record<string, { shape: number[]; data: Float32Array }>): number[] {
  const cls = Object.entries(heads).filter(([name]) => name.startsWith('cls_')).map(([, h]) => h);
  const n = cls[0].shape[0];
  const hb = (z: number): number => {
    const p = 1 / (1 + Math.exp(-z));
    return -(p > 0 ? p * Math.log(p) : 0) - (p < 1 ? (1 - p) * Math.log(1 - p) : 0);
  };
  return Array.from({ length: n }, (_, i) => {
    let sum = 0;
    let locations = 0;
    for (const h of cls) {
      const k = h.shape[3];
      const per = h.data.length / n;
      for (let j = 0; j < per; j++) sum += hb(h.data[i * per + j]);
      locations += per / k;
    }
    return sum / locations;
  });
}

/** Positions of the k largest, largest first, ties in batch order. */
const topK = (u: number[], k: number): number[] =>
  u
    .map((v, i) => [v, i])
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .slice(0, k)
    .map(([, i]) => i);

const objectsAt = (ds: Dataset, i: number): ObjectList => {
  const o = ds.objects as NonNullable<Dataset['objects']>;
  return { boxes: o.boxes.subarray(4 * o.offsets[i], 4 * o.offsets[i + 1]), classes: o.classes.subarray(o.offsets[i], o.offsets[i + 1]) };
};

/** The loaded rows of `positions` (x of one image: `plane` values). */
const rows = (x: Float32Array, positions: number[], plane: number): number[] => positions.flatMap((p) => Array.from(x.subarray(p * plane, (p + 1) * plane)));

describe('sampler/unix on dense runs (engine, tiny scenes)', () => {
  it.each(['segmentation', 'detection'] as const)('%s: keeps the top k by the uncertainty of the student at that step; the losses see those images with their targets', async (task) => {
    const { seen, train } = await run(spec(task, { use: 'sampler/unix', with: { keep: 2 } }));
    expect(seen).toHaveLength(3); // 12 scenes, batch 4
    const plane = 16 * 16;
    for (const s of seen) {
      const u = task === 'segmentation' ? segU(s.heads.logits) : detU(s.heads);
      const sel = s.selection as Selection;
      // the sampler's numbers are the hand computation's, and it keeps the k most uncertain
      u.forEach((v, i) => expect(Math.abs(sel.uncertainty[i] - v)).toBeLessThan(2e-6 * Math.max(1, v)));
      const want = topK(u, 2);
      const sorted = [...u].sort((a, b) => b - a);
      expect(sorted[1] - sorted[2]).toBeGreaterThan(1e-3); // the cut is no near-tie: the ranking is not float noise
      expect(Array.from(sel.kept)).toEqual(want);
      // the batch the losses see: exactly those images (unmixed), their training indices, their targets
      const idx = want.map((p) => s.loadedIndices[p]);
      expect(s.indices).toEqual(idx);
      expect(s.x).toEqual(rows(s.loadedX, want, plane));
      expect(s.x).toEqual(idx.flatMap((i) => Array.from(train.images.subarray(i * plane, (i + 1) * plane))));
      if (task === 'segmentation') {
        expect(s.masks).toEqual(idx.flatMap((i) => Array.from((train.masks as Int32Array).subarray(i * plane, (i + 1) * plane))));
        expect(s.objects).toBeNull();
      } else {
        expect(s.objects?.map((o) => [Array.from(o.boxes), Array.from(o.classes)])).toEqual(idx.map((i) => [Array.from(objectsAt(train, i).boxes), Array.from(objectsAt(train, i).classes)]));
        expect(s.masks).toBeNull();
      }
    }
    // the ranking is not the batch order
    expect(seen.some((s) => Array.from((s.selection as Selection).kept).join() !== '0,1')).toBe(true);
  });
});

describe('sampler/random on dense runs', () => {
  it.each(['segmentation', 'detection'] as const)('%s: k random images, unmixed, with the targets of the images it picked', async (task) => {
    const { seen, train } = await run(spec(task, { use: 'sampler/random', with: { keep: 3 } }));
    const plane = 16 * 16;
    for (const s of seen) {
      const picked = Array.from((s.selection as Selection).kept);
      expect(new Set(picked).size).toBe(3);
      const idx = picked.map((p) => s.loadedIndices[p]);
      expect(s.indices).toEqual(idx);
      expect(s.x).toEqual(rows(s.loadedX, picked, plane));
      if (task === 'segmentation') expect(s.masks).toEqual(idx.flatMap((i) => Array.from((train.masks as Int32Array).subarray(i * plane, (i + 1) * plane))));
      else expect(s.objects?.map((o) => [Array.from(o.boxes), Array.from(o.classes)])).toEqual(idx.map((i) => [Array.from(objectsAt(train, i).boxes), Array.from(objectsAt(train, i).classes)]));
    }
  });
});

describe('mixing on a dense run, at plan time', () => {
  async function failure(p: Promise<unknown>): Promise<KdError> {
    const e = await p.then(() => null, (x: unknown) => x);
    if (!isKdError(e)) throw new Error(`expected a KdError, got ${String(e)}`);
    return e;
  }

  it('sampler/unix with lambda > 0 and sampler/random with mixup: true are KD_PLUGIN_OPTIONS at the option; the defaults plan', async () => {
    const unix = await failure(planRun(spec('detection', { use: 'sampler/unix', with: { lambda: 0.5 } }), { registry: registry(), cacheDir: null }));
    expect([unix.code, unix.path]).toEqual(['KD_PLUGIN_OPTIONS', 'plugins[1].with.lambda']);
    expect(unix.fix).toContain('drop `lambda`');
    const random = await failure(planRun(spec('segmentation', { use: 'sampler/random', with: { mixup: true } }), { registry: registry(), cacheDir: null }));
    expect([random.code, random.path]).toEqual(['KD_PLUGIN_OPTIONS', 'plugins[1].with.mixup']);
    expect(random.message).toContain('the masks of a segmentation run cannot be mixed');
    for (const task of ['detection', 'segmentation'] as const) {
      for (const use of ['sampler/unix', 'sampler/random']) {
        const plan = await planRun(spec(task, { use }), { registry: registry(), cacheDir: null });
        expect(plan.runs.at(-1)?.spec.plugins.map((p) => p.use)).toContain(use);
      }
    }
  });
});
