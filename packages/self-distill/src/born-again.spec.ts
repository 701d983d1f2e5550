import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { Registry, generationPlan, generationSpec, runGenerations, type GenerationsResult } from '@tfkd/engine';
import { RunSpec, isKdError, type RunSpecInput } from '@tfkd/kd-core';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { modelTools } from '@tfkd/models';
import { engineModules } from './__fixtures__/engine';
import { expectClose, runLossOnce } from './__fixtures__/harness';
import { bornAgainLoss, bornAgainSchema } from './born-again';
import { tfKdSelfTerms } from './tf-kd';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const Z = [
  [1, 2, 0.5],
  [0.2, -1, 1.5],
];
const ZT = [
  [2, 1, 0],
  [0, 0.5, 2],
];

describe('self/born-again, one generation’s loss', () => {
  it('generation 1: CE with the labels only, no teacher needed', () => {
    const o = bornAgainSchema.parse({});
    expect(o).toMatchObject({ generations: 3, generation: 1, alpha: 0.5, temperature: 20, reduction: 'mean' });
    expect(bornAgainLoss.requires?.(o)).toEqual({ roles: ['student'] });
    expect(bornAgainLoss.generations?.(o)).toBe(3);
    const t = runLossOnce(bornAgainLoss, {}, { logits: { student: tf.tensor2d(Z) }, y: [1, 2], roles: [{ name: 'student', kind: 'student', trainable: true }] });
    expect(Object.keys(t)).toEqual(['self/born-again:ce']);
    expectClose(t['self/born-again:ce'].value, 0.383944, 2e-6);
    expect(t['self/born-again:ce'].weight).toBe(1);
  });

  it('generation g ≥ 2: (1 − α)·CE + α·T²·KL(p_{g−1}^T ‖ p_g^T), KL over B·K (KD-Lib BANN)', () => {
    const o = bornAgainSchema.parse({ generation: 2 });
    expect(bornAgainLoss.requires?.(o)).toEqual({ roles: ['student', 'teacher'] });
    const t = runLossOnce(bornAgainLoss, { generation: 2 }, { logits: { student: tf.tensor2d(Z), teacher: tf.tensor2d(ZT) }, y: [1, 2] });
    // at T = 20: KL rows 0.000922, 0.000590 → 400 · (0.000922 + 0.000590) / (2·3) = 0.100779
    // (float32: log-probabilities near ln(1/3) differ in the 4th decimal at T = 20, so ~1e-4 relative)
    expectClose(t['self/born-again:kd'].value, 0.100779, 3e-4);
    expect([t['self/born-again:ce'].weight, t['self/born-again:kd'].weight]).toEqual([0.5, 0.5]);
    const [zt, y] = [tf.tensor2d(ZT), tf.tensor1d([1, 2], 'int32')];
    const fd = finiteDifferenceCheck((z) => tfKdSelfTerms(z, zt, y, { temperature: 20, multiplier: 1, reduction: 'mean' }).kd, Z.flat(), [2, 3], 0.5);
    expect(fd.maxRelError).toBeLessThan(1e-2);
    tf.dispose([zt, y]);
  });
});

const base: RunSpecInput = {
  seed: 4,
  backend: 'cpu',
  data: { name: 'blobs', train: 48, test: 24 },
  student: { model: 'test-dense', options: { hidden: 6 } },
  train: { epochs: 2, batchSize: 8, optimizer: { name: 'adam', lr: 0.02, weightDecay: 0 } },
  plugins: [{ use: 'self/born-again', with: { generations: 3, temperature: 4, reduction: 'batchmean' } }],
  eval: ['accuracy', 'ece'],
};

describe('runGenerations: born-again over 3 generations of test-dense on blobs', () => {
  let cache: string;
  let first: GenerationsResult;

  beforeAll(async () => {
    cache = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-born-again-'));
    first = await runGenerations(RunSpec.parse(base), { registry: new Registry(engineModules()), cacheDir: cache });
  }, 60_000);
  afterAll(() => {
    first?.models.forEach((m) => m.dispose());
    fs.rmSync(cache, { recursive: true, force: true });
  });

  it('reports gen.1, gen.2, gen.3 and their ensemble; roles and models per generation', () => {
    expect(Object.keys(first.eval).sort()).toEqual(['ensemble', 'gen.1', 'gen.2', 'gen.3']);
    expect(first.roles.map((r) => r.name)).toEqual(['gen.1', 'gen.2', 'gen.3']);
    expect([...first.models.keys()]).toEqual(['gen.1', 'gen.2', 'gen.3']);
    for (const e of Object.values(first.eval)) expect(Object.keys(e).sort()).toEqual(['accuracy', 'ece', 'nll']);
    expect(first.generations.map((g) => g.cached)).toEqual([false, false, false]);
  });

  it('generation 1 learns from the labels, generation g from g − 1 (a loaded teacher, counted in the ledger)', () => {
    const phases = [...new Set(first.history.map((h) => h.phase))];
    expect(phases).toEqual(['gen.1', 'gen.2', 'gen.3']);
    const terms = (phase: string) => Object.keys(first.history.find((h) => h.phase === phase)?.train ?? {}).sort();
    expect(terms('gen.1')).toEqual(['loss', 'self/born-again:ce']);
    expect(terms('gen.2')).toEqual(['loss', 'self/born-again:ce', 'self/born-again:kd']);
    expect(first.ledger.roles['gen.1:teacher']).toBeUndefined();
    for (const g of ['gen.2', 'gen.3']) {
      const t = first.ledger.roles[`${g}:teacher`];
      expect(t.forwardImages + t.cacheHits).toBe(2 * 48);
      expect(first.ledger.roles[g].backwardImages).toBe(2 * 48);
    }
    // each generation's history entries carry its own eval under its name
    expect(first.history.filter((h) => h.phase === 'gen.2').every((h) => Object.keys(h.eval).includes('gen.2'))).toBe(true);
  });

  it('each generation is cached under the hash of its spec chain, its parent named in teacher.json', () => {
    const keys = first.generations.map((g) => g.key);
    expect(new Set(keys).size).toBe(3);
    first.generations.forEach((g, i) => {
      expect(g.dir).toBe(path.join(cache, 'teachers', g.key));
      const meta = JSON.parse(fs.readFileSync(path.join(g.dir as string, 'teacher.json'), 'utf8'));
      expect(meta.key.parent).toBe(i === 0 ? null : keys[i - 1]);
      expect(meta.key.generation).toBe(i + 1);
      expect(meta.key.plugins[0].with).not.toHaveProperty('generations');
    });
  });

  it('the ensemble equals averaging the saved generations’ logits; each generation’s accuracy its own', async () => {
    const test = first.data.test;
    const n = test.labels.length;
    const logits: number[][][] = [];
    for (const g of first.generations) {
      const m = await modelTools.load(g.dir as string);
      logits.push(tf.tidy(() => (m.predict(tf.tensor4d(test.images, [n, ...test.shape])) as tf.Tensor).arraySync() as number[][]));
      m.dispose();
    }
    const argmax = (r: number[]) => r.indexOf(Math.max(...r));
    let correct = 0;
    let nll = 0;
    for (let b = 0; b < n; b++) {
      const mean = logits[0][b].map((_, k) => (logits[0][b][k] + logits[1][b][k] + logits[2][b][k]) / 3);
      if (argmax(mean) === test.labels[b]) correct++;
      nll += Math.log(mean.reduce((s, v) => s + Math.exp(v), 0)) - mean[test.labels[b]];
    }
    expect(first.eval.ensemble.accuracy).toBeCloseTo(correct / n, 10);
    expect(first.eval.ensemble.nll).toBeCloseTo(nll / n, 4);
    logits.forEach((l, g) => {
      const acc = l.filter((r, b) => argmax(r) === test.labels[b]).length / n;
      expect(first.eval[`gen.${g + 1}`].accuracy).toBeCloseTo(acc, 10);
    });
    expect(first.eval['gen.3'].accuracy).toBeGreaterThan(0.6);
  });

  it('asking for more generations reuses the cached lineage and trains only the new one', async () => {
    const more = await runGenerations(RunSpec.parse({ ...base, plugins: [{ use: 'self/born-again', with: { generations: 4, temperature: 4, reduction: 'batchmean' } }] }), {
      registry: new Registry(engineModules()),
      cacheDir: cache,
    });
    try {
      expect(more.generations.map((g) => g.cached)).toEqual([true, true, true, false]);
      expect(more.generations.slice(0, 3).map((g) => g.key)).toEqual(first.generations.map((g) => g.key));
      for (const g of ['gen.1', 'gen.2', 'gen.3']) expect(more.eval[g]).toEqual(first.eval[g]);
      expect([...new Set(more.history.map((h) => h.phase))]).toEqual(['gen.4']);
      expect(Object.keys(more.eval).sort()).toEqual(['ensemble', 'gen.1', 'gen.2', 'gen.3', 'gen.4']);
    } finally {
      more.models.forEach((m) => m.dispose());
    }
  }, 60_000);
});

describe('generation plan and specs', () => {
  const registry = new Registry(engineModules());

  it('no multi-generation plugin: no plan; the born-again entry: its count', async () => {
    expect(await generationPlan(RunSpec.parse({ ...base, plugins: [{ use: 'loss/cross-entropy' }] }), registry)).toBeNull();
    expect(await generationPlan(RunSpec.parse(base), registry)).toEqual({ count: 3, index: 0, id: 'self/born-again' });
  });

  it('generation g: student seed base + g − 1, `generation: g`, the previous generation as teacher', () => {
    const spec = RunSpec.parse(base);
    const plan = { count: 3, index: 0, id: 'self/born-again' };
    const g1 = generationSpec(spec, plan, 1, null);
    const g3 = generationSpec(spec, plan, 3, '/cache/teachers/abc');
    expect([g1.student?.seed, g3.student?.seed]).toEqual([4000, 4002]);
    expect(g1.teacher).toBeUndefined();
    expect(g3.teacher).toMatchObject({ load: '/cache/teachers/abc' });
    expect([g1.plugins[0].with.generation, g3.plugins[0].with.generation]).toEqual([1, 3]);
  });

  it('a spec with its own teacher is rejected at `teacher`', async () => {
    const spec = RunSpec.parse({ ...base, teacher: { load: '/nowhere' } });
    const e = await runGenerations(spec, { registry, cacheDir: null }).then(
      () => null,
      (x: unknown) => x,
    );
    expect(isKdError(e) ? [e.code, e.path] : e).toEqual(['KD_SPEC_INVALID', 'teacher']);
  });

  it('runs without a cache folder (generations handed over through a scratch folder)', async () => {
    const r = await runGenerations(RunSpec.parse({ ...base, train: { ...base.train, epochs: 1 }, plugins: [{ use: 'self/born-again', with: { generations: 2 } }] }), { registry, cacheDir: null });
    try {
      expect(Object.keys(r.eval).sort()).toEqual(['ensemble', 'gen.1', 'gen.2']);
      expect(r.generations.map((g) => [g.cached, g.dir])).toEqual([
        [false, null],
        [false, null],
      ]);
    } finally {
      r.models.forEach((m) => m.dispose());
    }
  }, 60_000);
});
