import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { Engine, prepareRun, Registry } from '@tfkd/engine';
import { RunSpec, definePlugin, epochBatches, type KdError, type Plugin, type RunSpecInput } from '@tfkd/kd-core';
import { testModule } from '@tfkd/kd-core/testing';
import { logitLossesModule } from '@tfkd/losses-logit';
import { z } from 'zod';
import { testConvModule } from './__fixtures__/models';
import { featureLossesModule } from './module';

jest.setTimeout(120_000);

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const base = (over: Partial<RunSpecInput>): RunSpec =>
  RunSpec.parse({
    seed: 5,
    backend: 'cpu',
    data: { name: 'blobs', train: 40, test: 4 },
    teacher: { model: 'test-conv', seed: 11, train: { epochs: 1 } },
    student: { model: 'test-conv' },
    train: { epochs: 2, batchSize: 4, optimizer: { name: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 0 } },
    evalEvery: 100,
    ...over,
  });

const values = (vs: tf.Variable[]) => vs.map((v) => Array.from(v.dataSync()));
const instance = (engine: Engine, id: string): Plugin => {
  const found = engine.pluginInstances().find((p) => p.id === id);
  if (!found) throw new Error(`no ${id}`);
  return found.plugin;
};

describe('loss/factor-transfer in a run: paraphraser pre-trained on runStart, then frozen', () => {
  it('pre-trains before the first step, keeps the paraphraser fixed while the translator trains, and counts the teacher forwards', async () => {
    const logs: string[] = [];
    const registry = new Registry([testModule(), testConvModule, logitLossesModule, featureLossesModule]);
    const spec = base({
      plugins: [
        { use: 'loss/cross-entropy' },
        { use: 'loss/factor-transfer', with: { pairs: [['student.c1', 'teacher.c2']], paraphraserEpochs: 4, paraphraserLr: 0.05 }, weight: 10 },
      ],
    });
    const engine = await prepareRun(spec, { registry, cacheDir: null, log: (l) => logs.push(l) });
    await engine.prepare();
    const ft = instance(engine, 'loss/factor-transfer');
    const buffers = ft.buffers?.() ?? [];
    const variables = ft.variables?.() ?? [];
    // paraphraser on teacher.c2 [2,2,4]: encoder 4→4→2→2, decoder 2→2→4→4 (kernel + bias each);
    // translator on student.c1 [4,4,2]: 2→2→2→2
    expect(buffers.map((v) => v.shape)).toEqual([[3, 3, 4, 4], [4], [3, 3, 4, 2], [2], [3, 3, 2, 2], [2], [3, 3, 2, 2], [2], [3, 3, 2, 4], [4], [3, 3, 4, 4], [4]]);
    expect(variables.map((v) => v.shape)).toEqual([[3, 3, 2, 2], [2], [3, 3, 2, 2], [2], [3, 3, 2, 2], [2]]);
    const init = { para: values(buffers), trans: values(variables) };
    let atFirstEpoch: { para: number[][]; trans: number[][] } | null = null;
    engine.bus.forPlugin('test-snapshot', 'observe').on('epochStart', (e) => {
      if (e.epoch === 1) atFirstEpoch = { para: values(buffers), trans: values(variables) };
    });
    const result = await engine.run();
    const end = { para: values(buffers), trans: values(variables) };
    const state = ft.getState?.() as { pretrained: boolean; reconstruction: number[][] };
    engine.dispose();

    const snap = atFirstEpoch as unknown as { para: number[][]; trans: number[][] };
    // pre-training changed the paraphraser, not the translator; distillation changed the translator only
    expect(snap.para).not.toEqual(init.para);
    expect(snap.trans).toEqual(init.trans);
    expect(end.para).toEqual(snap.para);
    expect(end.trans).not.toEqual(snap.trans);
    expect(state.pretrained).toBe(true);
    expect(state.reconstruction[0]).toHaveLength(4);
    expect(state.reconstruction[0][3]).toBeLessThan(state.reconstruction[0][0]);
    expect(logs.filter((l) => l.includes('pre-training epoch'))).toHaveLength(4);
    // the teacher tap is forwarded once per training sample for the pre-training (kept for its later
    // epochs), then once per sample by the distillation's first epoch (teacher-output cache after)
    expect(result.ledger.roles.teacher.forwardImages).toBe(40 + 40);
    expect(result.history.every((h) => Number.isFinite(h.train['loss/factor-transfer']) && h.train['loss/factor-transfer'] > 0)).toBe(true);
  });

  it('a resumed run does not pre-train again (its checkpoint restores the paraphraser after runStart)', async () => {
    const registry = new Registry([testModule(), testConvModule, logitLossesModule, featureLossesModule]);
    const spec = base({ plugins: [{ use: 'loss/cross-entropy' }, { use: 'loss/factor-transfer', with: { pairs: [['student.c2', 'teacher.c2']], paraphraserEpochs: 2 } }] });
    const engine = await prepareRun(spec, { registry, cacheDir: null });
    await engine.prepare();
    const ft = instance(engine, 'loss/factor-transfer');
    const before = values(ft.buffers?.() ?? []);
    let handler: ((info: unknown) => Promise<void>) | undefined;
    ft.register({ on: (hook: string, h: unknown) => void (hook === 'runStart' ? (handler = h as never) : undefined) } as never);
    await (handler as (info: unknown) => Promise<void>)({ resumed: { epoch: 2, batchIndex: 0, step: 10 } });
    expect(values(ft.buffers?.() ?? [])).toEqual(before);
    expect((ft.getState?.() as { pretrained: boolean }).pretrained).toBe(false);
    engine.dispose();
  });

  it('start-up errors: a target tap that is not a teacher\'s; a rate that leaves no factor channel', async () => {
    const registry = new Registry([testModule(), testConvModule, logitLossesModule, featureLossesModule]);
    const fail = async (w: Record<string, unknown>) => {
      return prepareRun(base({ data: { name: 'blobs', train: 8, test: 4 }, plugins: [{ use: 'loss/factor-transfer', with: w }] }), { registry, cacheDir: null }).then(
        (engine) => {
          engine.dispose();
          return null;
        },
        (x) => x as KdError,
      );
    };
    const e1 = await fail({ pairs: [['teacher.c2', 'student.c2']] });
    expect(e1).toMatchObject({ code: 'KD_SPEC_INVALID', path: 'plugins[0].with.pairs[0][1]' });
    const e2 = await fail({ pairs: [['student.c2', 'teacher.c1']], rate: 0.25 });
    expect(e2).toMatchObject({ code: 'KD_PLUGIN_OPTIONS', path: 'plugins[0].with.rate' });
    expect(e2?.message).toContain('int(2·0.25) = 0');
  });
});

/** A sampler that mixes the batch (transformed: the sample indices are gone). */
const mixSampler = definePlugin({
  id: 'test/mix',
  kind: 'sampler',
  describe: 'reverses and averages the batch with itself (test fixture)',
  options: z.object({}).strict(),
  transformsBatch: true,
  create: (_o, deps) => ({
    name: deps.name,
    register: (bus) => bus.on('batchStart', (ctx) => ctx.replaceBatch({ x: tf.mul(tf.add(ctx.batch.x, tf.reverse(ctx.batch.x, 0)), 0.5), y: ctx.batch.y }, { transformed: true })),
  }),
});

describe('loss/crd mode memory in a run', () => {
  const dense = { teacher: { model: 'test-dense', seed: 11, train: { epochs: 1 } }, student: { model: 'test-dense' } };
  const crd = { use: 'loss/crd', with: { pairs: [['student.fc1', 'teacher.fc1']], dim: 4 }, weight: 0.5 };

  it('clamps K to the smallest other-class pool, sets Z on the first batch, and updates exactly the batch rows of both banks', async () => {
    const logs: string[] = [];
    const registry = new Registry([testModule(), logitLossesModule, featureLossesModule]);
    const engine = await prepareRun(base({ ...dense, plugins: [{ use: 'loss/cross-entropy' }, crd] }), { registry, cacheDir: null, log: (l) => logs.push(l) });
    const stepper = await engine.stepper();
    const plugin = instance(engine, 'loss/crd');
    const [v1, v2] = plugin.buffers?.() ?? [];
    expect(v1.shape).toEqual([40, 4]);
    // blobs labels i mod 3: 14, 13, 13 samples, so the smallest other-class pool has 40 − 14 = 26
    expect(logs).toContain('loss/crd: negatives clamped from 16384 to 26, the smallest other-class pool of the 40 training samples (RepDistiller draws with replacement past it)');
    const before = [v1.arraySync() as number[][], v2.arraySync() as number[][]];
    const r = stepper.step();
    // a smoke check of the run; the memory-mode value by hand: crd-memory.spec.ts ('the loss equals a hand computation on a tiny bank', 'Z = mean(exp-scores) · N')
    expect(Number.isFinite(r.terms['loss/crd'])).toBe(true);
    const z = (plugin.getState?.() as { z: [number, number][] }).z[0];
    expect(logs.filter((l) => l.startsWith('loss/crd: normalisation constants'))).toHaveLength(1);
    // Z = mean(exp(s/T)) · N with |s| ≤ 1: between N·e^(−1/0.07) and N·e^(1/0.07)
    for (const zi of z) expect(zi).toBeGreaterThan(0);
    const batch = new Set(epochBatches(40, { batchSize: 4, seed: 5, epoch: 1 })[0]);
    [v1, v2].forEach((bank, k) => {
      const after = bank.arraySync() as number[][];
      after.forEach((row, i) => {
        if (batch.has(i)) {
          expect(row).not.toEqual(before[k][i]);
          expect(Math.hypot(...row)).toBeCloseTo(1, 5);
        } else expect(row).toEqual(before[k][i]);
      });
    });
    stepper.step();
    expect((plugin.getState?.() as { z: [number, number][] }).z[0]).toEqual(z); // fixed after the first batch
    engine.dispose();
  });

  it('a sampler that transforms batches (no sample indices) fails the step with KD_PLUGIN_DEPENDENCY naming mode', async () => {
    const registry = new Registry([testModule(mixSampler), logitLossesModule, featureLossesModule]);
    const engine = await prepareRun(base({ ...dense, plugins: [{ use: 'test/mix' }, { use: 'loss/cross-entropy' }, crd] }), { registry, cacheDir: null });
    const stepper = await engine.stepper();
    expect(() => stepper.step()).toThrow(expect.objectContaining({ code: 'KD_PLUGIN_DEPENDENCY', path: 'plugins[2].with.mode' }));
    engine.dispose();
  });

  it('mode in-batch still runs with the same sampler', async () => {
    const registry = new Registry([testModule(mixSampler), logitLossesModule, featureLossesModule]);
    const engine = await prepareRun(base({ ...dense, plugins: [{ use: 'test/mix' }, { use: 'loss/cross-entropy' }, { ...crd, with: { ...crd.with, mode: 'in-batch' } }] }), {
      registry,
      cacheDir: null,
    });
    await engine.prepare();
    const plugin = instance(engine, 'loss/crd');
    expect(plugin.buffers).toBeUndefined();
    // the term by hand, in doubles, from the step's fc1 taps (of the mixed batch) and the heads before the update:
    // z = l2normalize(f·W + b); L = CE(z_s z_tᵀ/τ, diag) + CE(z_t z_sᵀ/τ, diag), τ = 0.07
    let byHand: number | null = null;
    engine.bus.forPlugin('test-probe', 'observe').on('loss', (ctx) => {
      const [ws, bs, wt, bt] = (plugin.variables?.() ?? []).map((v) => v.arraySync() as number[][] | number[]);
      const embed = (f: number[][], w: number[][], b: number[]) =>
        f.map((row) => {
          const y = b.map((bj, j) => row.reduce((acc, v, i) => acc + v * w[i][j], bj));
          const n = Math.hypot(...y);
          return y.map((v) => v / n);
        });
      const zs = embed(ctx.outputs('student').taps.fc1.arraySync() as number[][], ws as number[][], bs as number[]);
      const zt = embed(ctx.outputs('teacher').taps.fc1.arraySync() as number[][], wt as number[][], bt as number[]);
      const diagCe = (a: number[][], c: number[][]) =>
        a.reduce((acc, ai, i) => {
          const l = c.map((cj) => ai.reduce((d, v, k) => d + v * cj[k], 0) / 0.07);
          const m = Math.max(...l);
          return acc + m + Math.log(l.reduce((d, v) => d + Math.exp(v - m), 0)) - l[i];
        }, 0) / a.length;
      byHand = diagCe(zs, zt) + diagCe(zt, zs);
    });
    const stepper = await engine.stepper();
    const term = stepper.step().terms['loss/crd'];
    expect(term).toBeGreaterThan(0);
    expect(term).toBeCloseTo(byHand as unknown as number, 4);
    engine.dispose();
  });
});
