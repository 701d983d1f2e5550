import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { Registry, runSpec, type RunResult } from '@tfkd/engine';
import { RunSpec, definePlugin, type BatchSummary, type PluginDefinition, type RunSpecInput } from '@tfkd/kd-core';
import { testModule } from '@tfkd/kd-core/testing';
import { logitLossesModule } from '@tfkd/losses-logit';
import { z } from 'zod';
import { type MixPlugin, type MixRecord } from './mix';
import { AUGMENTATIONS } from './module';

// Every augmentation in real runs (blobs: 4×4×1 images, 3 classes; a dense teacher and student).

interface Step {
  x: number[];
  y: number[];
  targets: number[] | null;
  logits: number[];
  mix: MixRecord | null;
  /** The last mix of every mixing plugin, by plugin name (the run's instance: the last one created). */
  mixes: Record<string, MixRecord | null>;
}
interface Trace {
  steps: Step[];
  batches: BatchSummary[];
  counts: number[];
}

/** Each definition with its created instances pushed to `sink` (the run's instance is the last). */
const capturing = (sink: MixPlugin[]): PluginDefinition[] =>
  AUGMENTATIONS.map((def) => ({ ...def, create: (o, d) => sink[sink.push(def.create(o, d) as MixPlugin) - 1] }));

/** Records, after the losses, what they saw: images, labels, soft targets, student logits, the last mix. */
function tracer(trace: Trace, mixers: MixPlugin[]): PluginDefinition {
  return definePlugin({
    id: 'test/trace',
    kind: 'observer',
    describe: 'records the batch the losses saw',
    options: z.object({}).strict(),
    stage: 'observe',
    create: (_o, d) => ({
      name: d.name,
      register(bus) {
        bus.on('loss', (ctx) => {
          const m = mixers.filter((p) => typeof p.lastMix === 'function').pop()?.lastMix() ?? null;
          const byName = new Map(mixers.filter((p) => typeof p.lastMix === 'function').map((p) => [p.name, p]));
          const copy = (r: MixRecord | null) => r && { ...r, perm: r.perm.slice() };
          trace.steps.push({
            x: Array.from(ctx.batch.x.dataSync()),
            y: Array.from(ctx.batch.y.dataSync()),
            targets: ctx.batch.targets ? Array.from(ctx.batch.targets.dataSync()) : null,
            logits: Array.from(ctx.outputs('student').logits.dataSync()),
            mix: copy(m),
            mixes: Object.fromEntries([...byName].map(([name, p]) => [name, copy(p.lastMix())])),
          });
        });
        bus.on('batchEnd', (b) => {
          trace.batches.push(b);
          trace.counts.push(tf.memory().numTensors);
        });
      },
    }),
  });
}

type Use = Record<string, unknown> & { use: string };

function spec(augs: Use[], over: Partial<RunSpecInput> = {}): RunSpec {
  return RunSpec.parse({
    seed: 5,
    backend: 'cpu',
    data: { name: 'blobs', train: 16, test: 4 },
    teacher: { model: 'test-dense', seed: 11, train: { epochs: 1 } },
    student: { model: 'test-dense' },
    train: { epochs: 2, batchSize: 8, optimizer: { name: 'sgd', lr: 0.1, momentum: 0, weightDecay: 0 } },
    plugins: [...augs, { use: 'loss/hinton-kd', with: { temperature: 4 } }, { use: 'loss/cross-entropy', weight: 0.5 }, { use: 'test/trace' }],
    evalEvery: 100,
    ...over,
  });
}

async function run(s: RunSpec): Promise<{ result: RunResult; trace: Trace; weights: number[][] }> {
  const trace: Trace = { steps: [], batches: [], counts: [] };
  const sink: MixPlugin[] = [];
  const registry = new Registry([testModule(...capturing(sink), tracer(trace, sink)), logitLossesModule]);
  const result = await runSpec(s, { registry, cacheDir: null });
  const weights = (result.models.get('student') as { getWeights(): tf.Tensor[] }).getWeights().map((w) => Array.from(w.dataSync()));
  result.models.forEach((m) => m.dispose());
  return { result, trace, weights };
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const CASES: [string, Use][] = [
  ['augment/random-crop (zero)', { use: 'augment/random-crop', with: { padding: 1 } }],
  ['augment/random-crop (reflect)', { use: 'augment/random-crop', with: { padding: 2, mode: 'reflect' } }],
  ['augment/flip', { use: 'augment/flip' }],
  ['augment/random-erasing', { use: 'augment/random-erasing', with: { p: 1, scale: [0.1, 0.4] } }],
  ['augment/random-erasing (Cutout)', { use: 'augment/random-erasing', with: { p: 1, size: 2, value: 0.5 } }],
  ['augment/mixup', { use: 'augment/mixup' }],
  ['augment/cutmix', { use: 'augment/cutmix', with: { p: 1 } }],
  ['augment/randaugment', { use: 'augment/randaugment', with: { magnitude: 15 } }],
];

let plain: Awaited<ReturnType<typeof run>>;
beforeAll(async () => {
  plain = await run(spec([]));
});

describe.each(CASES)('%s in an Engine run', (_name, aug) => {
  it('is seeded: the same spec sees the same images twice; they differ from the un-augmented run and under another seed', async () => {
    const a = await run(spec([aug]));
    const b = await run(spec([aug]));
    expect(a.trace.steps).toHaveLength(4);
    expect(b.trace.steps.map((s) => s.x)).toEqual(a.trace.steps.map((s) => s.x));
    expect(b.weights).toEqual(a.weights);
    // the same batches (the batch order does not depend on plugins), changed by the augmentation
    expect(a.trace.steps.map((s) => s.y)).toEqual(plain.trace.steps.map((s) => s.y));
    expect(a.trace.steps.some((s, i) => s.x.join() !== plain.trace.steps[i].x.join())).toBe(true);
    const other = await run(spec([aug], { seed: 6 }));
    expect(other.trace.steps.map((s) => s.x)).not.toEqual(a.trace.steps.map((s) => s.x));
  });

  it('bypasses the teacher-output cache: the ledger counts a teacher forward of every image of every step', async () => {
    const { result } = await run(spec([aug]));
    const t = result.ledger.roles.teacher;
    expect(t.forwardImages).toBe(2 * 16);
    expect(t.cacheHits ?? 0).toBe(0);
    // without augmentation the second epoch is served by the cache
    expect(plain.result.ledger.roles.teacher.cacheHits).toBe(16);
    expect(plain.result.ledger.roles.teacher.forwardImages).toBe(16);
  });

  it('leaks no tensor: numTensors after step 5 equals numTensors after step 30', async () => {
    const { trace } = await run(spec([aug], { data: { name: 'blobs', train: 80, test: 4 }, train: { epochs: 3, batchSize: 8, optimizer: { name: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 5e-4 } } }));
    expect(trace.counts).toHaveLength(30);
    expect(trace.counts[29]).toBe(trace.counts[4]);
  });
});

/** Mean over rows of −Σ_k t_k log softmax(z)_k, in doubles. */
function ceRows(logits: number[], targets: number[][]): number {
  const k = targets[0].length;
  let s = 0;
  targets.forEach((t, i) => {
    const z = logits.slice(i * k, i * k + k);
    const m = Math.max(...z);
    const lse = m + Math.log(z.reduce((a, v) => a + Math.exp(v - m), 0));
    s -= t.reduce((a, tk, j) => a + tk * (z[j] - lse), 0);
  });
  return s / targets.length;
}
const onehot = (y: number, k = 3): number[] => Array.from({ length: k }, (_, j) => (j === y ? 1 : 0));

describe.each([
  ['augment/mixup', { use: 'augment/mixup' }],
  ['augment/cutmix', { use: 'augment/cutmix', with: { p: 1 } }],
])('%s: soft targets in loss/cross-entropy', (_name, aug) => {
  it('the CE term equals λ·CE(y) + (1 − λ)·CE(y[perm]) from the recorded λ, partners and logits', async () => {
    const { trace } = await run(spec([aug]));
    expect(trace.steps).toHaveLength(4);
    trace.steps.forEach((s, i) => {
      const mix = s.mix as MixRecord;
      expect(mix.applied).toBe(true);
      expect(mix.lambda).toBeGreaterThan(0);
      expect(mix.lambda).toBeLessThanOrEqual(1);
      // targets row i = λ·onehot(y_i) + (1 − λ)·onehot(y_perm(i))
      const want = s.y.map((y, r) => onehot(y).map((v, j) => mix.lambda * v + (1 - mix.lambda) * onehot(s.y[mix.perm[r]])[j]));
      (s.targets as number[]).forEach((v, j) => expect(v).toBeCloseTo(want[Math.floor(j / 3)][j % 3], 6));
      const separate = mix.lambda * ceRows(s.logits, s.y.map((y) => onehot(y))) + (1 - mix.lambda) * ceRows(s.logits, s.y.map((_, r) => onehot(s.y[mix.perm[r]])));
      expect(trace.batches[i].terms['loss/cross-entropy']).toBeCloseTo(separate, 5);
      // and it is not the hard-label CE (the mixing mattered)
      if (mix.lambda < 0.99) expect(Math.abs(ceRows(s.logits, s.y.map((y) => onehot(y))) - separate)).toBeGreaterThan(1e-6);
    });
  });
});

describe('composition in spec order', () => {
  it('two flips with p = 1 give back the images: each sees the previous one’s output', async () => {
    const { trace } = await run(spec([{ use: 'augment/flip', with: { p: 1 } }, { use: 'augment/flip', name: 'flip-again', with: { p: 1 } }]));
    expect(trace.steps).toHaveLength(4);
    expect(trace.steps.map((s) => s.x)).toEqual(plain.trace.steps.map((s) => s.x));
  });

  it('crop, flip, then mixup: the soft targets survive; mixup then cutmix mixes the mixed targets again', async () => {
    /** t̃ row r = λ·t_r + (1 − λ)·t_perm(r), in doubles. */
    const mixRows = (t: number[][], m: MixRecord) => t.map((row, r) => row.map((v, j) => m.lambda * v + (1 - m.lambda) * t[m.perm[r]][j]));
    const { trace } = await run(spec([{ use: 'augment/random-crop', with: { padding: 1 } }, { use: 'augment/flip' }, { use: 'augment/mixup' }]));
    expect(trace.steps).toHaveLength(4);
    for (const s of trace.steps) {
      const t = s.targets as number[];
      for (let r = 0; r < 8; r++) expect(t[3 * r] + t[3 * r + 1] + t[3 * r + 2]).toBeCloseTo(1, 6);
      // crop and flip leave the labels alone: the targets are mixup's of the one-hot labels
      const want = mixRows(s.y.map((y) => onehot(y)), s.mixes['augment/mixup'] as MixRecord);
      t.forEach((v, j) => expect(v).toBeCloseTo(want[Math.floor(j / 3)][j % 3], 6));
    }
    const twice = await run(spec([{ use: 'augment/mixup' }, { use: 'augment/cutmix', with: { p: 1 } }]));
    expect(twice.trace.steps).toHaveLength(4);
    for (const s of twice.trace.steps) {
      // t = cutmix(mixup(onehot(y))): λ₂·t¹_r + (1 − λ₂)·t¹_π₂(r), t¹_r = λ₁·e_y(r) + (1 − λ₁)·e_y(π₁(r))
      const [m1, m2] = [s.mixes['augment/mixup'] as MixRecord, s.mixes['augment/cutmix'] as MixRecord];
      expect([m1.applied, m2.applied]).toEqual([true, true]);
      const want = mixRows(mixRows(s.y.map((y) => onehot(y)), m1), m2);
      (s.targets as number[]).forEach((v, j) => expect(v).toBeCloseTo(want[Math.floor(j / 3)][j % 3], 6));
    }
    // three labels can now share a row
    expect(twice.trace.steps.some((s) => (s.targets as number[]).some((v, j) => j % 3 === 0 && v > 0 && s.targets?.[j + 1] && s.targets?.[j + 2]))).toBe(true);
  });
});
