import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { Registry, runSpec, type RunResult } from '@tfkd/engine';
import { RunSpec, definePlugin, type BatchSummary, type PluginDefinition, type RunSpecInput } from '@tfkd/kd-core';
import { testModule } from '@tfkd/kd-core/testing';
import { logitLossesModule } from '@tfkd/losses-logit';
import { z } from 'zod';
import { ledgerCostRatio } from './cost';
import { randomSampler } from './random';
import { unixSampler, type SamplerPlugin, type Selection } from './unix';

/**
 * The definition with every created instance pushed to `sink` (same id: the real module is not loaded).
 * The plan creates each plugin once to check it (then frees it); the run's instance is the last one.
 */
function capturing(def: PluginDefinition, sink: SamplerPlugin[]): PluginDefinition {
  return { ...def, create: (o, d) => sink[sink.push(def.create(o, d) as SamplerPlugin) - 1] };
}

/** Records per step: the batch summary, numTensors, the selection, the batch the losses see, the tap rows. */
interface Trace {
  batches: BatchSummary[];
  counts: number[];
  selections: (Selection | null)[];
  seen: { x: number[]; y: number[] }[];
  tapRows: { student: number; teacher: number; logits: number }[];
}

function tracer(trace: Trace, samplers: SamplerPlugin[], taps: boolean): PluginDefinition {
  return definePlugin({
    id: 'test/trace',
    kind: 'observer',
    describe: 'records steps; with taps: true reads student.fc1 and teacher.fc1 in the loss hook',
    options: z.object({}).strict(),
    stage: 'default',
    requires: () => (taps ? { taps: ['student.fc1', 'teacher.fc1'] } : {}),
    create: (_o, d) => ({
      name: d.name,
      register(bus) {
        bus.on('loss', (ctx) => {
          trace.seen.push({ x: Array.from(ctx.batch.x.dataSync()), y: Array.from(ctx.batch.y.dataSync()) });
          const sel = samplers[samplers.length - 1]?.lastSelection() ?? null;
          trace.selections.push(sel && { ...sel, kept: sel.kept.slice(), m: sel.m.slice() });
          if (taps) {
            const s = ctx.outputs('student');
            trace.tapRows.push({ student: s.taps.fc1.shape[0] as number, teacher: ctx.outputs('teacher').taps.fc1.shape[0] as number, logits: s.logits.shape[0] as number });
          }
        });
        bus.on('batchEnd', (b) => {
          trace.batches.push(b);
          trace.counts.push(tf.memory().numTensors);
        });
      },
    }),
  });
}

const newTrace = (): Trace => ({ batches: [], counts: [], selections: [], seen: [], tapRows: [] });

function spec(over: Partial<RunSpecInput> = {}, sampler?: Record<string, unknown> & { use: string }): RunSpec {
  return RunSpec.parse({
    seed: 5,
    backend: 'cpu',
    data: { name: 'blobs', train: 16, test: 4 },
    teacher: { model: 'test-dense', seed: 11, train: { epochs: 1 } },
    student: { model: 'test-dense' },
    train: { epochs: 2, batchSize: 8, optimizer: { name: 'sgd', lr: 0.1, momentum: 0, weightDecay: 0 } },
    plugins: [...(sampler ? [sampler] : []), { use: 'loss/hinton-kd', with: { temperature: 4 } }, { use: 'test/trace' }],
    evalEvery: 100,
    ...over,
  });
}

async function run(s: RunSpec, opts: { taps?: boolean } = {}): Promise<{ result: RunResult; trace: Trace; weights: number[][] }> {
  const trace = newTrace();
  const samplers: SamplerPlugin[] = [];
  const registry = new Registry([
    testModule(capturing(unixSampler, samplers), capturing(randomSampler, samplers), tracer(trace, samplers, opts.taps ?? false)),
    logitLossesModule,
  ]);
  const result = await runSpec(s, { registry, cacheDir: null });
  const weights = (result.models.get('student') as { getWeights(): tf.Tensor[] }).getWeights().map((w) => Array.from(w.dataSync()));
  result.models.forEach((m) => m.dispose());
  return { result, trace, weights };
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('sampler/unix in an Engine run', () => {
  it('keep = N and λ = 0 is plain KD: same losses and weights, up to the reordering within each batch', async () => {
    const unix = await run(spec({}, { use: 'sampler/unix', with: { keep: 8, lambda: 0 } }));
    const plain = await run(spec({ teacherCache: 'off' }));
    expect(unix.trace.batches).toHaveLength(4);
    unix.trace.batches.forEach((b, i) => {
      const p = plain.trace.batches[i];
      expect(Math.abs(b.terms['loss/hinton-kd'] - p.terms['loss/hinton-kd'])).toBeLessThan(1e-6);
      expect(b.terms['loss/hinton-kd']).toBeGreaterThan(0);
      // the same 8 images and labels, reordered: compare as multisets of (image, label)
      const rows = (t: { x: number[]; y: number[] }) => t.y.map((y, r) => `${y}:${t.x.slice(r * 16, r * 16 + 16).join(',')}`).sort();
      expect(rows(unix.trace.seen[i])).toEqual(rows(plain.trace.seen[i]));
    });
    expect(unix.trace.seen.some((t, i) => t.y.join() !== plain.trace.seen[i].y.join())).toBe(true); // really reordered
    unix.weights.forEach((w, i) => w.forEach((v, j) => expect(Math.abs(v - plain.weights[i][j])).toBeLessThan(1e-6)));
  });

  it('ledger: teacher forward = k per step, student forward = N + k, backward = k; ratio to plain KD as the ledger counts', async () => {
    // 20 samples, batch 8 → batches of 8, 8, 4 per epoch; k = min(6, N) = 6, 6, 4.
    const data = { name: 'blobs', train: 20, test: 4 };
    const { result, trace } = await run(spec({ data }, { use: 'sampler/unix', with: { keep: 6 } }));
    const kPerEpoch = 6 + 6 + 4;
    const t = result.ledger.roles.teacher;
    const s = result.ledger.roles.student;
    expect(t.forwardImages).toBe(2 * kPerEpoch);
    expect(t.cacheHits ?? 0).toBe(0);
    expect(s.forwardImages).toBe(2 * (20 + kPerEpoch));
    expect(s.backwardImages).toBe(2 * kPerEpoch);
    expect(trace.batches.map((b) => b.images)).toEqual([6, 6, 4, 6, 6, 4]);
    expect(trace.selections.map((sel) => sel?.n)).toEqual([8, 8, 4, 8, 8, 4]);

    const plain = await run(spec({ data, teacherCache: 'off' }));
    const ft = t.flopsPerImage;
    const fs = s.flopsPerImage;
    const measured = result.ledger.totalFlops / plain.result.ledger.totalFlops;
    // per epoch: UNIX 20·F_s + 16·(F_t + 3·F_s); KD 20·(F_t + 3·F_s)
    expect(measured).toBeCloseTo((20 * fs + kPerEpoch * (ft + 3 * fs)) / (20 * (ft + 3 * fs)), 10);
    expect(measured).toBeCloseTo(ledgerCostRatio(kPerEpoch, 20, ft, fs), 10);
  });

  it('does not leak: numTensors after step 5 equals numTensors after step 30', async () => {
    const { trace } = await run(
      spec(
        { data: { name: 'blobs', train: 80, test: 4 }, train: { epochs: 3, batchSize: 8, optimizer: { name: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 5e-4 } } },
        { use: 'sampler/unix', with: { keep: 6, b: 4 } },
      ),
    );
    expect(trace.counts).toHaveLength(30);
    expect(trace.counts[29]).toBe(trace.counts[4]);
  });

  it('is deterministic for a seed: same kept rows, λ and mixed images in two runs', async () => {
    const s = spec({}, { use: 'sampler/unix', with: { keep: 6, b: 4 } });
    const a = await run(s);
    const b = await run(s);
    expect(a.trace.selections).toHaveLength(4);
    expect(b.trace.selections).toEqual(a.trace.selections);
    expect(b.trace.seen).toEqual(a.trace.seen);
    expect(a.trace.selections.every((sel) => sel !== null && sel.lambda > 0 && sel.lambda < 1)).toBe(true);
    // the losses see the kept sources' own labels
    const labels = a.result.data.train.labels;
    a.trace.selections.forEach((sel, i) => expect(a.trace.seen[i].y).toEqual(Array.from(sel?.keptIndices ?? [], (j) => labels[j])));
  });

  it('stacks with a loss that reads taps: student and teacher fc1 have k rows', async () => {
    const { trace } = await run(spec({}, { use: 'sampler/unix', with: { keep: 5 } }), { taps: true });
    expect(trace.tapRows).toEqual(new Array(4).fill({ student: 5, teacher: 5, logits: 5 }));
  });
});

describe('sampler/random in an Engine run', () => {
  it('mixup: false keeps k distinct samples with their labels; the teacher sees k per step (forwarded or cached)', async () => {
    const { result, trace } = await run(spec({}, { use: 'sampler/random', with: { keep: 5, mixup: false } }));
    const labels = result.data.train.labels;
    expect(trace.selections).toHaveLength(4);
    trace.selections.forEach((sel, i) => {
      const idx = Array.from(sel?.keptIndices ?? []);
      expect(idx).toHaveLength(5);
      expect(new Set(idx).size).toBe(5);
      expect(trace.seen[i].y).toEqual(idx.map((j) => labels[j]));
    });
    const t = result.ledger.roles.teacher;
    expect(t.forwardImages + (t.cacheHits ?? 0)).toBe(4 * 5);
    expect(result.ledger.roles.student.forwardImages).toBe(4 * 5); // no uncertainty forward
  });
});
