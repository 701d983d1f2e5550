import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { Rng, type HookHandler, type HookName, type PluginDefinition, type PluginDeps, type RoleInfo, type StepContext } from '@tfkd/kd-core';
import { randomSampler } from './random';
import { mixRatios } from './select';
import { unixSampler, type SamplerPlugin } from './unix';

const ROLES: RoleInfo[] = [
  { name: 'teacher', kind: 'teacher', trainable: false },
  { name: 'student', kind: 'student', trainable: true },
];

function deps(name: string): PluginDeps {
  return { name, weight: 1, numClasses: 3, inputShape: [1, 1, 2], roles: ROLES, tapShape: () => [], rng: new Rng(1), specPath: 'plugins[0]' };
}

/** An Rng whose `beta` and `permutation` calls are counted. */
function countingRng(seed: number): { rng: Rng; calls: { beta: number; permutation: number } } {
  const rng = new Rng(seed);
  const calls = { beta: 0, permutation: 0 };
  const beta = rng.beta.bind(rng);
  const permutation = rng.permutation.bind(rng);
  rng.beta = (a, b) => (calls.beta++, beta(a, b));
  rng.permutation = (n) => (calls.permutation++, permutation(n));
  return { rng, calls };
}

interface Replaced {
  x: number[];
  y: number[];
  indices: number[] | null;
  transformed: boolean;
}

/**
 * A stub step context over N 1×1×2 images (row i = [i, 100 + i], label i % 3, training index
 * 10 + i); the student's "logits" are given per row, so the entropies are known.
 */
function stepContext(logits: number[][], rng: Rng) {
  const n = logits.length;
  const x = tf.tensor4d(Array.from({ length: n }, (_, i) => [i, 100 + i]).flat(), [n, 1, 1, 2]);
  const y = tf.tensor1d(Array.from({ length: n }, (_, i) => i % 3), 'int32');
  const predicts: { role: string; rows: number; training: boolean | undefined }[] = [];
  const replaced: Replaced[] = [];
  const ctx = {
    rng,
    batch: { x, y, indices: Int32Array.from({ length: n }, (_, i) => 10 + i), size: n },
    predict(role: string, input: tf.Tensor, opts?: { training?: boolean }) {
      predicts.push({ role, rows: input.shape[0] as number, training: opts?.training });
      return tf.tensor2d(logits);
    },
    replaceBatch(b: { x: tf.Tensor; y: tf.Tensor; indices?: Int32Array | null }, opts: { transformed: boolean }) {
      replaced.push({ x: Array.from(b.x.dataSync()), y: Array.from(b.y.dataSync()), indices: b.indices ? Array.from(b.indices) : null, transformed: opts.transformed });
    },
  } as unknown as StepContext;
  return { ctx, predicts, replaced, dispose: () => tf.dispose([x, y]) };
}

/** Create the plugin with validated options and return it with its batchStart handler. */
function instantiate(def: PluginDefinition, options: Record<string, unknown>) {
  const plugin = def.create(def.options.parse(options), deps(def.id)) as SamplerPlugin;
  const handlers = new Map<HookName, HookHandler<HookName>>();
  plugin.register({ on: (hook, fn) => void handlers.set(hook, fn as HookHandler<HookName>) });
  const batchStart = handlers.get('batchStart') as (ctx: StepContext) => void;
  return { plugin, batchStart };
}

// Six rows: uniform over 3 (ln 3 = 1.0986) is the most uncertain, then [1, 0, 0], [2, 0, 0], …
// Entropy of softmax([a, 0, 0]) falls as a grows, so the ranking is 1, 4, 0, 3, 5, 2.
const LOGITS = [
  [2, 0, 0],
  [0, 0, 0],
  [8, 0, 0],
  [3, 0, 0],
  [1, 0, 0],
  [5, 0, 0],
];

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('sampler/unix on a stub step', () => {
  it('ranks by the student entropy (one predict of all N, training mode) and keeps the k most uncertain with their labels', () => {
    const s = stepContext(LOGITS, new Rng(3));
    const { plugin, batchStart } = instantiate(unixSampler, { keep: 3, lambda: 0 });
    batchStart(s.ctx);
    expect(s.predicts).toEqual([{ role: 'student', rows: 6, training: true }]);
    const sel = plugin.lastSelection();
    expect(Array.from(sel?.kept ?? [])).toEqual([1, 4, 0]);
    expect(Array.from(sel?.keptIndices ?? [])).toEqual([11, 14, 10]);
    // u of softmax([1, 0, 0]): p = (e, 1, 1)/(e + 2) → −Σ p ln p = 0.9732; uniform: ln 3
    expect(sel?.uncertainty[1]).toBeCloseTo(Math.log(3), 5);
    const p = [Math.E, 1, 1].map((v) => v / (Math.E + 2));
    expect(sel?.uncertainty[4]).toBeCloseTo(-p.reduce((a, v) => a + v * Math.log(v), 0), 5);
    expect(s.replaced).toHaveLength(1);
    expect(s.replaced[0].x).toEqual([1, 101, 4, 104, 0, 100]); // λ = 0: exact source rows
    expect(s.replaced[0].y).toEqual([1 % 3, 4 % 3, 0 % 3]);
    expect(s.replaced[0].transformed).toBe(true);
    expect(s.replaced[0].indices).toBeNull();
    s.dispose();
  });

  it('draws λ once per batch (one beta, one permutation), and every m_r / c_r is that λ', () => {
    const { rng, calls } = countingRng(7);
    const { plugin, batchStart } = instantiate(unixSampler, { keep: 5, b: 3 });
    const c = mixRatios(6, { w: 10, b: 3 });
    const lambdas: number[] = [];
    for (let batch = 1; batch <= 3; batch++) {
      const s = stepContext(LOGITS, rng);
      batchStart(s.ctx);
      expect(calls).toEqual({ beta: batch, permutation: batch });
      const sel = plugin.lastSelection();
      if (!sel) throw new Error('no selection');
      sel.m.forEach((m, r) => expect(m / c[r]).toBeCloseTo(sel.lambda, 12));
      // labels untouched: the kept labels are the kept source images' labels
      expect(s.replaced[0].y).toEqual(Array.from(sel.kept, (i) => i % 3));
      // each mixed row is (1 − m)·own + m·partner of the loaded rows [i, 100 + i]
      const want = Array.from(sel.kept).flatMap((src, r) => {
        const q = sel.partners[r];
        return [(1 - sel.m[r]) * src + sel.m[r] * q, (1 - sel.m[r]) * (100 + src) + sel.m[r] * (100 + q)];
      });
      s.replaced[0].x.forEach((v, i) => expect(v).toBeCloseTo(want[i], 4));
      lambdas.push(sel.lambda);
      s.dispose();
    }
    expect(new Set(lambdas).size).toBe(3); // a fresh λ per batch
  });

  it('a fixed `lambda` draws no λ', () => {
    const { rng, calls } = countingRng(7);
    const { plugin, batchStart } = instantiate(unixSampler, { lambda: 0.25 });
    const s = stepContext(LOGITS, rng);
    batchStart(s.ctx);
    expect(calls).toEqual({ beta: 0, permutation: 1 });
    const sel = plugin.lastSelection();
    if (!sel) throw new Error('no selection');
    expect(sel.lambda).toBe(0.25);
    // keep 48 > N = 6: all six, most uncertain first (the entropy ranking of LOGITS)
    expect(Array.from(sel.kept)).toEqual([1, 4, 0, 3, 5, 2]);
    // m_r = 0.25·c_r with the default w = 10, b = 32 over N = 6: c_r = σ(10·(r/6 − 63/12)),
    // e.g. c_0 = σ(−52.5) = 1.6e−23 (b > N: every row is barely mixed)
    const c = mixRatios(6, { w: 10, b: 32 });
    expect(c[0] * (1 + Math.exp(52.5))).toBeCloseTo(1, 10);
    sel.m.forEach((m, r) => expect(m).toBe(0.25 * c[r]));
    const want = Array.from(sel.kept).flatMap((src, r) => {
      const q = sel.partners[r];
      return [(1 - sel.m[r]) * src + sel.m[r] * q, (1 - sel.m[r]) * (100 + src) + sel.m[r] * (100 + q)];
    });
    s.replaced[0].x.forEach((v, i) => expect(v).toBeCloseTo(want[i], 4));
    expect(s.replaced[0].x).toHaveLength(12);
    s.dispose();
  });

  it('is deterministic for a seed: same kept rows, partners, λ and x̃', () => {
    const run = (seed: number) => {
      const s = stepContext(LOGITS, new Rng(seed));
      const { plugin, batchStart } = instantiate(unixSampler, { keep: 4, b: 3 });
      batchStart(s.ctx);
      s.dispose();
      return { sel: plugin.lastSelection(), x: s.replaced[0].x };
    };
    const a = run(11);
    const b = run(11);
    expect(b.sel).toEqual(a.sel);
    expect(b.x).toEqual(a.x);
    expect(run(12).sel?.lambda).not.toBe(a.sel?.lambda);
  });

  it('declares: stage sample, kind sampler, transformsBatch, requires the student; rejects a teacher as `student`', () => {
    expect(unixSampler.kind).toBe('sampler');
    expect(unixSampler.stage).toBe('sample');
    expect(unixSampler.transformsBatch).toBe(true);
    expect(unixSampler.requires?.(unixSampler.options.parse({}))).toEqual({ roles: ['student'] });
    expect(() => unixSampler.create(unixSampler.options.parse({ student: 'teacher' }), deps('sampler/unix'))).toThrow(
      "option student 'teacher' names no student role",
    );
  });
});

describe('sampler/random on a stub step', () => {
  it('mixup: false keeps k distinct untouched samples, their labels and training indices, without a student forward', () => {
    const { rng, calls } = countingRng(5);
    const { plugin, batchStart } = instantiate(randomSampler, { keep: 4, mixup: false });
    const s = stepContext(LOGITS, rng);
    batchStart(s.ctx);
    const kept = Array.from(plugin.lastSelection()?.kept ?? []);
    expect(kept).toHaveLength(4);
    expect(new Set(kept).size).toBe(4);
    expect(kept.every((i) => i >= 0 && i < 6)).toBe(true);
    // the ranking is the generator's one permutation: a twin generator gives the same first four
    expect(kept).toEqual(Array.from(new Rng(5).permutation(6)).slice(0, 4));
    expect(s.predicts).toHaveLength(0);
    expect(calls).toEqual({ beta: 0, permutation: 1 });
    expect(s.replaced[0]).toEqual({
      x: kept.flatMap((i) => [i, 100 + i]),
      y: kept.map((i) => i % 3),
      indices: kept.map((i) => 10 + i),
      transformed: false,
    });
    s.dispose();
  });

  it('mixup: true (UNIXKD strategy 0) mixes over the random ranking with one λ', () => {
    const { rng, calls } = countingRng(5);
    const { plugin, batchStart } = instantiate(randomSampler, { keep: 4, b: 3 });
    const s = stepContext(LOGITS, rng);
    batchStart(s.ctx);
    const sel = plugin.lastSelection();
    if (!sel) throw new Error('no selection');
    expect(calls).toEqual({ beta: 1, permutation: 2 });
    expect(new Set(sel.kept).size).toBe(4);
    // replayed with a twin generator, in the sampler's order of draws: ranking, λ ~ Beta(1, 1), partners
    const twin = new Rng(5);
    const [order, lambda, perm] = [twin.permutation(6), twin.beta(1, 1), twin.permutation(6)];
    expect(Array.from(sel.kept)).toEqual(Array.from(order).slice(0, 4));
    expect(sel.lambda).toBe(lambda);
    expect(Array.from(sel.partners)).toEqual(Array.from(perm).slice(0, 4));
    const c = mixRatios(6, { w: 10, b: 3 });
    sel.m.forEach((m, r) => expect(m / c[r]).toBeCloseTo(sel.lambda, 12));
    expect(s.replaced[0].transformed).toBe(true);
    expect(s.replaced[0].y).toEqual(Array.from(sel.kept, (i) => i % 3));
    // each mixed row is (1 − m_r)·own + m_r·partner of the loaded rows [i, 100 + i]
    const want = Array.from(sel.kept).flatMap((src, r) => {
      const q = sel.partners[r];
      return [(1 - sel.m[r]) * src + sel.m[r] * q, (1 - sel.m[r]) * (100 + src) + sel.m[r] * (100 + q)];
    });
    expect(s.replaced[0].x).toHaveLength(8);
    s.replaced[0].x.forEach((v, i) => expect(v).toBeCloseTo(want[i], 4));
    s.dispose();
  });

  it('transformsBatch follows `mixup`; no role required', () => {
    const t = randomSampler.transformsBatch as (o: unknown) => boolean;
    expect(t(randomSampler.options.parse({}))).toBe(true);
    expect(t(randomSampler.options.parse({ mixup: false }))).toBe(false);
    expect(randomSampler.requires).toBeUndefined();
    expect(randomSampler.stage).toBe('sample');
  });
});

describe('options', () => {
  it.each([unixSampler, randomSampler])('$id: every option has a default and a description; defaults as UNIXKD', (def) => {
    const shape = (def.options as unknown as { shape: Record<string, { description?: string; parse(v: unknown): unknown }> }).shape;
    for (const [key, field] of Object.entries(shape)) {
      expect([key, typeof field.description]).toEqual([key, 'string']);
      expect([key, field.parse(undefined) !== undefined]).toEqual([key, true]);
    }
    expect(def.options.parse({})).toMatchObject({ keep: 48, w: 10, b: 32, alpha: 1, beta: 1, lambda: null });
    expect(() => def.options.parse({ keep: 0 })).toThrow();
    expect(() => def.options.parse({ lambda: 1.5 })).toThrow();
  });
});
