import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { isKdError, Rng, type HookHandler, type HookName, type KdError, type ObjectList, type PluginDefinition, type PluginDeps, type RoleInfo, type StepContext, type Task } from '@tfkd/kd-core';
import { classHeads, denseUncertainty, detectionUncertainty, keptTargets, segmentationUncertainty } from './dense';
import { randomSampler } from './random';
import { rankDescending } from './select';
import { unixSampler, type SamplerPlugin } from './unix';

// The dense tasks: the uncertainty UNIX ranks by (hand values on tiny tensors), the kept images'
// targets, and both samplers on a stub dense step (no mixing, targets carried, coded errors).
// Engine-level runs on hand-made scenes are in @tfkd/dense (src/plugins/samplers.spec.ts).

const L2 = Math.log(2);
const L3 = Math.log(3);
const L6 = Math.log(6);
const L99 = Math.log(99);

function expectAllClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-6): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (Math.abs(actual[i] - expected[i]) > tol) throw new Error(`element ${i}: ${actual[i]} vs ${expected[i]} (tol ${tol})`);
  }
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// Three 2×2 logit maps over K = 3 classes. Per-pixel entropies of softmax(z):
//   [0, 0, 0]     p = (1/3, 1/3, 1/3)        H = ln 3 = 1.0986123
//   [ln 2, 0, 0]  p = (1/2, 1/4, 1/4)        H = ½ ln 2 + ½ ln 4 = 1.5 ln 2 = 1.0397208
//   [ln 6, 0, 0]  p = (3/4, 1/8, 1/8)        H = ¾ ln(4/3) + ¼ ln 8 = 0.2157616 + 0.5198604 = 0.7356219
//   [100, 0, 0]   p = (1, e⁻¹⁰⁰, e⁻¹⁰⁰)       H = 200·e⁻¹⁰⁰ ≈ 0 (ln p floored: no NaN)
//   [ln 2, ln 2, 0] p = (2/5, 2/5, 1/5)      H = 0.8 ln 2.5 + 0.2 ln 5 = 0.7330326 + 0.3218876 = 1.0549202
// image 0: the four above → (1.0986123 + 1.0397208 + 0.7356219 + 0)/4 = 0.7184887
// image 1: [ln 2, ln 2, 0] everywhere → 1.0549202; image 2: uniform everywhere → ln 3 = 1.0986123
const SEG = [
  [[[0, 0, 0], [L2, 0, 0]], [[L6, 0, 0], [100, 0, 0]]],
  [[[L2, L2, 0], [L2, L2, 0]], [[L2, L2, 0], [L2, L2, 0]]],
  [[[0, 0, 0], [0, 0, 0]], [[0, 0, 0], [0, 0, 0]]],
];
const SEG_U = [0.7184887, 1.0549202, 1.0986123];

// A detector's class heads, K = 2: cls_p3 [3, 1, 2, 2] (2 locations) and cls_p4 [3, 1, 1, 2] (1).
// Binary entropy h(σ(z)): z = 0 → ln 2 = 0.6931472; z = ±ln 3 (p = ¾, ¼) → 0.5623351;
// z = −ln 99 (p = 0.01, the prior bias) → 0.0560015; z = −30 → 2.9e−12.
// Per location Σ_k h, then the mean over the 3 locations of both levels:
//   image 0: p3 [0, 0] → 1.3862944, [ln 3, −ln 99] → 0.6183367; p4 [−30, −30] → 0   → 2.0046311/3 = 0.6682103
//   image 1: [−ln 99, −ln 99] at every location → 0.1120031
//   image 2: p3 [−ln 3, 0] → 1.2554823, [−30, −30] → 0; p4 [0, 0] → 1.3862944      → 2.6417767/3 = 0.8805922
// (a mean of the two levels' means would give image 0 (1.0023155 + 0)/2 = 0.5011578 instead)
const P3 = [
  [[[0, 0], [L3, -L99]]],
  [[[-L99, -L99], [-L99, -L99]]],
  [[[-L3, 0], [-30, -30]]],
];
const P4 = [[[[-30, -30]]], [[[-L99, -L99]]], [[[0, 0]]]];
const DET_U = [0.6682103, 0.1120031, 0.8805922];

describe('segmentationUncertainty', () => {
  it('is the mean over pixels of the entropy of the softmax over K (hand values), most uncertain ranked first', () => {
    const z = tf.tensor4d(SEG);
    const u = segmentationUncertainty(z);
    expect(u.shape).toEqual([3]);
    expectAllClose(u.dataSync(), SEG_U, 2e-6);
    expect(Array.from(rankDescending(u.dataSync()))).toEqual([2, 1, 0]);
    tf.dispose([z, u]);
  });

  it('refuses [N, K] (classification logits: entropyRows)', () => {
    const z = tf.zeros([2, 3]);
    expect(() => segmentationUncertainty(z)).toThrow('[batch, …pixels, classes]');
    z.dispose();
  });
});

describe('detectionUncertainty', () => {
  it('is Σ_k of the binary entropies per location, averaged over every location of both levels (hand values)', () => {
    const [p3, p4] = [tf.tensor4d(P3), tf.tensor4d(P4)];
    const u = detectionUncertainty([p3, p4]);
    expectAllClose(u.dataSync(), DET_U, 2e-6);
    expect(Array.from(rankDescending(u.dataSync()))).toEqual([2, 0, 1]);
    // one level alone: image 0's p3 mean (1.3862944 + 0.6183367)/2 = 1.0023155
    const one = detectionUncertainty([p3]);
    expectAllClose(one.dataSync(), [1.0023155, 0.1120031, 0.6277412], 2e-6);
    tf.dispose([p3, p4, u, one]);
  });

  it('stays finite for saturated logits (±200: every h = 0) and refuses class maps of different K', () => {
    const z = tf.tensor4d([[[[200, -200]]]]);
    const u = detectionUncertainty([z]);
    expect(Array.from(u.dataSync())).toEqual([0]);
    const other = tf.zeros([1, 1, 1, 3]);
    expect(() => detectionUncertainty([z, other])).toThrow('one K');
    expect(() => detectionUncertainty([])).toThrow('none');
    tf.dispose([z, u, other]);
  });
});

describe('denseUncertainty reads the outputs by name', () => {
  it('detection: every cls_* output (not the box heads); segmentation: logits', () => {
    const heads = { cls_p3: tf.tensor4d(P3), box_p3: tf.fill([3, 1, 2, 8], 5), cls_p4: tf.tensor4d(P4), box_p4: tf.fill([3, 1, 1, 8], -5) };
    expect(classHeads(heads)).toEqual([heads.cls_p3, heads.cls_p4]);
    const det = denseUncertainty('detection', heads);
    expectAllClose(det.dataSync(), DET_U, 2e-6);
    const logits = tf.tensor4d(SEG);
    const seg = denseUncertainty('segmentation', { logits });
    expectAllClose(seg.dataSync(), SEG_U, 2e-6);
    expect(() => denseUncertainty('segmentation', { cls_p3: heads.cls_p3 })).toThrow("an output named 'logits'");
    tf.dispose([...Object.values(heads), det, logits, seg]);
  });
});

describe('keptTargets', () => {
  it('gathers the masks and picks the object lists of the kept rows, in kept order', () => {
    const masks = tf.tensor3d([[[0, 1]], [[2, 2]], [[1, 0]]], [3, 1, 2], 'int32');
    const objects: ObjectList[] = [0, 1, 2].map((i) => ({ boxes: [i, i, i + 1, i + 1], classes: [i] }));
    const k = keptTargets({ x: masks, y: masks, indices: null, size: 3, masks, objects }, Int32Array.from([2, 0]));
    expect(Array.from((k.masks as tf.Tensor).dataSync())).toEqual([1, 0, 0, 1]);
    expect(k.objects).toEqual([objects[2], objects[0]]);
    expect(keptTargets({ x: masks, y: masks, indices: null, size: 3 }, Int32Array.from([1]))).toEqual({});
    tf.dispose([masks, k.masks as tf.Tensor]);
  });
});

const ROLES: RoleInfo[] = [
  { name: 'teacher', kind: 'teacher', trainable: false },
  { name: 'student', kind: 'student', trainable: true },
];

const deps = (name: string, task: Task): PluginDeps => ({ name, weight: 1, numClasses: 2, inputShape: [1, 2, 1], roles: ROLES, tapShape: () => [], rng: new Rng(1), specPath: 'plugins[0]', task });

function instantiate(def: PluginDefinition, options: Record<string, unknown>, task: Task) {
  const plugin = def.create(def.options.parse(options), deps(def.id, task)) as SamplerPlugin;
  const handlers = new Map<HookName, HookHandler<HookName>>();
  plugin.register({ on: (hook, fn) => void handlers.set(hook, fn as HookHandler<HookName>) });
  return { plugin, batchStart: handlers.get('batchStart') as (ctx: StepContext) => void };
}

interface Replaced {
  x: number[];
  indices: number[] | null;
  objects: readonly ObjectList[] | undefined;
  masks: number[] | undefined;
  transformed: boolean;
}

/** A stub detection/segmentation step over 3 images (image i: [10 i, 10 i + 1]), training indices 20 + i; the student's heads are P3/P4 or SEG. */
function denseStep(task: Task, rng: Rng) {
  const x = tf.tensor4d([0, 1, 10, 11, 20, 21], [3, 1, 2, 1]);
  const y = tf.zeros([3], 'int32');
  const masks = tf.tensor3d([0, 1, 1, 1, 0, 0], [3, 1, 2], 'int32');
  const objects: ObjectList[] = [0, 1, 2].map((i) => ({ boxes: [i, 0, i + 1, 1], classes: [i % 2] }));
  const calls: { role: string; rows: number; training: boolean | undefined }[] = [];
  const replaced: Replaced[] = [];
  const ctx = {
    rng,
    batch: { x, y, indices: Int32Array.from([20, 21, 22]), size: 3, ...(task === 'detection' ? { objects } : { masks }) },
    predict: () => {
      throw new Error('a dense step forwards with predictHeads');
    },
    predictHeads(role: string, input: tf.Tensor, opts?: { training?: boolean }) {
      calls.push({ role, rows: input.shape[0] as number, training: opts?.training });
      return task === 'detection' ? { cls_p3: tf.tensor4d(P3), box_p3: tf.zeros([3, 1, 2, 8]), cls_p4: tf.tensor4d(P4), box_p4: tf.zeros([3, 1, 1, 8]) } : { logits: tf.tensor4d(SEG) };
    },
    replaceBatch(b: { x: tf.Tensor; indices?: Int32Array | null; objects?: readonly ObjectList[]; masks?: tf.Tensor }, opts: { transformed: boolean }) {
      replaced.push({ x: Array.from(b.x.dataSync()), indices: b.indices ? Array.from(b.indices) : null, objects: b.objects, masks: b.masks && Array.from(b.masks.dataSync()), transformed: opts.transformed });
    },
  } as unknown as StepContext;
  return { ctx, calls, replaced, objects, dispose: () => tf.dispose([x, y, masks]) };
}

function codedError(f: () => unknown): KdError {
  try {
    f();
  } catch (e) {
    if (isKdError(e)) return e;
    throw e;
  }
  throw new Error('expected a KdError');
}

describe('sampler/unix on a stub dense step', () => {
  it('detection: keeps the k most uncertain by detectionUncertainty, unmixed, with their objects and training indices; draws nothing', () => {
    const rng = new Rng(4);
    const draws = { n: 0 };
    rng.beta = () => (draws.n++, 0.5);
    rng.permutation = (n) => (draws.n++, Int32Array.from({ length: n }, (_, i) => i));
    const s = denseStep('detection', rng);
    const { plugin, batchStart } = instantiate(unixSampler, { keep: 2 }, 'detection');
    batchStart(s.ctx);
    expect(s.calls).toEqual([{ role: 'student', rows: 3, training: true }]);
    const sel = plugin.lastSelection();
    expectAllClose(sel?.uncertainty ?? [], DET_U, 2e-6);
    expect(Array.from(sel?.kept ?? [])).toEqual([2, 0]);
    expect([sel?.lambda, Array.from(sel?.m ?? []), Array.from(sel?.partners ?? [])]).toEqual([0, [0, 0], []]);
    expect(draws.n).toBe(0);
    expect(s.replaced).toEqual([{ x: [20, 21, 0, 1], indices: [22, 20], objects: [s.objects[2], s.objects[0]], masks: undefined, transformed: false }]);
    s.dispose();
  });

  it('segmentation: keeps the k most uncertain by segmentationUncertainty with their masks', () => {
    const s = denseStep('segmentation', new Rng(4));
    const { plugin, batchStart } = instantiate(unixSampler, { keep: 2, lambda: 0 }, 'segmentation');
    batchStart(s.ctx);
    expect(Array.from(plugin.lastSelection()?.kept ?? [])).toEqual([2, 1]);
    expect(s.replaced).toEqual([{ x: [20, 21, 10, 11], indices: [22, 21], objects: undefined, masks: [0, 0, 1, 1], transformed: false }]);
    s.dispose();
  });

  it('lambda > 0 on a dense run is KD_PLUGIN_OPTIONS at the option, at creation', () => {
    const e = codedError(() => instantiate(unixSampler, { lambda: 0.3 }, 'segmentation'));
    expect([e.code, e.path]).toEqual(['KD_PLUGIN_OPTIONS', 'plugins[0].with.lambda']);
    expect(e.message).toBe("'sampler/unix': lambda: 0.3 mixes images, and the masks of a segmentation run cannot be mixed with them; on segmentation the sampler keeps k images unmixed");
    expect(e.fix).toBe('drop `lambda` (or set it to 0) (the kept images then train with their own masks)');
    expect(() => instantiate(unixSampler, { lambda: 0.3 }, 'classification')).not.toThrow();
  });
});

describe('sampler/random on a stub dense step', () => {
  it('mixup absent: k random images unmixed with their targets (one permutation, no λ)', () => {
    for (const task of ['detection', 'segmentation'] as const) {
      const s = denseStep(task, new Rng(9));
      const { plugin, batchStart } = instantiate(randomSampler, { keep: 2 }, task);
      batchStart(s.ctx);
      const kept = Array.from(new Rng(9).permutation(3)).slice(0, 2);
      expect(Array.from(plugin.lastSelection()?.kept ?? [])).toEqual(kept);
      expect(s.calls).toHaveLength(0);
      const m = [[0, 1], [1, 1], [0, 0]];
      expect(s.replaced).toEqual([
        {
          x: kept.flatMap((i) => [10 * i, 10 * i + 1]),
          indices: kept.map((i) => 20 + i),
          objects: task === 'detection' ? kept.map((i) => s.objects[i]) : undefined,
          masks: task === 'segmentation' ? kept.flatMap((i) => m[i]) : undefined,
          transformed: false,
        },
      ]);
      s.dispose();
    }
  });

  it('mixup: true on a dense run is KD_PLUGIN_OPTIONS at the option; false is accepted', () => {
    const e = codedError(() => instantiate(randomSampler, { mixup: true }, 'detection'));
    expect([e.code, e.path]).toEqual(['KD_PLUGIN_OPTIONS', 'plugins[0].with.mixup']);
    expect(e.message).toContain('the boxes of a detection run cannot be mixed');
    expect(e.fix).toBe('drop `mixup` (or set it to false) (the kept images then train with their own objects)');
    expect(() => instantiate(randomSampler, { mixup: false }, 'detection')).not.toThrow();
  });
});
