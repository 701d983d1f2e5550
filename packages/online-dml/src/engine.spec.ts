import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { Registry, runSpec } from '@tfkd/engine';
import { RunSpec, type RunSpecInput } from '@tfkd/kd-core';
import { tensorCounter, testModule } from '@tfkd/kd-core/testing';
import { onlineDmlModule } from './module';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const base: RunSpecInput = {
  seed: 3,
  backend: 'cpu',
  data: { name: 'blobs', train: 40, test: 12 },
  students: [{ model: 'test-dense' }, { model: 'test-dense' }, { model: 'test-dense' }],
  train: { epochs: 3, batchSize: 4, optimizer: { name: 'adam', lr: 0.02, momentum: 0, weightDecay: 0 } },
  plugins: [{ use: 'online/dml' }, { use: 'obs/count' }],
  eval: ['accuracy', 'peer-ensemble'],
};

describe('Engine + online/dml + metric/peer-ensemble (3 × test-dense)', () => {
  it('reports student.0..2, ensemble and peer-mean; the numbers match a recomputation; no tensor leaks over 30 steps', async () => {
    const counts: number[] = [];
    const registry = new Registry([testModule(tensorCounter(counts)), onlineDmlModule]);
    const result = await runSpec(RunSpec.parse(base), { registry });
    try {
      expect(Object.keys(result.eval).sort()).toEqual(['ensemble', 'peer-mean', 'student.0', 'student.1', 'student.2']);
      expect(counts).toHaveLength(30);
      expect(counts[29]).toBe(counts[4]);
      // every student has its ce and kl term in the epoch means
      expect(Object.keys(result.history[0].train).sort()).toEqual(
        ['loss', ...[0, 1, 2].flatMap((i) => [`online/dml:student.${i}:ce`, `online/dml:student.${i}:kl`])].sort(),
      );
      const tr = result.history[2].train;
      const sum = [0, 1, 2].reduce((s, i) => s + tr[`online/dml:student.${i}:ce`] + 0.5 * tr[`online/dml:student.${i}:kl`], 0);
      expect(tr.loss).toBeCloseTo(sum, 4);

      // recompute the ensemble from the trained models on the test split
      const test = result.data.test;
      const n = test.labels.length;
      const logits = [0, 1, 2].map((i) =>
        tf.tidy(() => (result.models.get(`student.${i}`)?.predict(tf.tensor4d(test.images, [n, ...test.shape])) as tf.Tensor).arraySync() as number[][]),
      );
      let correct = 0;
      let nll = 0;
      const accs = [0, 0, 0];
      for (let b = 0; b < n; b++) {
        const y = test.labels[b];
        logits.forEach((l, i) => (accs[i] += l[b].indexOf(Math.max(...l[b])) === y ? 1 / n : 0));
        const mean = logits[0][b].map((_, k) => (logits[0][b][k] + logits[1][b][k] + logits[2][b][k]) / 3);
        if (mean.indexOf(Math.max(...mean)) === y) correct++;
        nll += Math.log(mean.reduce((s, v) => s + Math.exp(v), 0)) - mean[y];
      }
      expect(result.eval.ensemble.accuracy).toBeCloseTo(correct / n, 10);
      expect(result.eval.ensemble.nll).toBeCloseTo(nll / n, 4);
      accs.forEach((a, i) => expect(result.eval[`student.${i}`].accuracy).toBeCloseTo(a, 10));
      expect(result.eval['peer-mean'].accuracy).toBeCloseTo((accs[0] + accs[1] + accs[2]) / 3, 10);
      // the students learn the blobs task
      expect(result.eval['peer-mean'].accuracy).toBeGreaterThan(0.6);
    } finally {
      result.models.forEach((m) => m.dispose());
    }
  });

  it('online/one trains a one-mlp: loss = ce + ce-ensemble + kl, eval of the gated ensemble', async () => {
    const registry = new Registry([testModule(), onlineDmlModule]);
    const spec = RunSpec.parse({
      ...base,
      students: undefined,
      student: { model: 'one-mlp', options: { hidden: 8, branchHidden: 8 } },
      train: { ...base.train, epochs: 1 },
      plugins: [{ use: 'online/one' }],
      // One model: its student entry is the gated ensemble (peer-ensemble refuses a single student).
      eval: ['accuracy'],
    });
    const result = await runSpec(spec, { registry });
    try {
      const tr = result.history[0].train;
      expect(Object.keys(tr).sort()).toEqual(['loss', 'online/one:ce', 'online/one:ce-ensemble', 'online/one:kl']);
      expect(tr.loss).toBeCloseTo(tr['online/one:ce'] + tr['online/one:ce-ensemble'] + tr['online/one:kl'], 4);
      // 3 branch CEs of a 3-class problem start near 3·ln 3 (the terms' values by hand: one.spec.ts)
      expect(tr['online/one:ce']).toBeGreaterThan(0);
      expect(tr['online/one:ce']).toBeLessThan(3 * Math.log(3) + 1);
      expect(Object.keys(result.eval)).toEqual(['student']);
      // The student's output is its gated logits: accuracy and nll recomputed from the trained model
      const test = result.data.test;
      const n = test.labels.length;
      const z = tf.tidy(() => (result.models.get('student')?.predict(tf.tensor4d(test.images, [n, ...test.shape])) as tf.Tensor).arraySync() as number[][]);
      const correct = z.filter((row, b) => row.indexOf(Math.max(...row)) === test.labels[b]).length;
      const nll = z.reduce((s, row, b) => s + Math.log(row.reduce((a, v) => a + Math.exp(v), 0)) - row[test.labels[b]], 0) / n;
      expect(result.eval.student.accuracy).toBeCloseTo(correct / n, 10);
      expect(result.eval.student.nll).toBeCloseTo(nll, 4);
    } finally {
      result.models.forEach((m) => m.dispose());
    }
  });

  it('online/dml with a single `student:` fails at start-up', async () => {
    const registry = new Registry([testModule(), onlineDmlModule]);
    const spec = RunSpec.parse({ ...base, students: undefined, student: { model: 'test-dense' }, plugins: [{ use: 'online/dml' }] });
    await expect(runSpec(spec, { registry })).rejects.toMatchObject({ code: 'KD_PLUGIN_DEPENDENCY', path: 'students' });
  });
});
