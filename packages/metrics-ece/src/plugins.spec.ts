import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { LifecycleBus, RunSpec, Rng, type EvalReport, type PluginDefinition, type RunSpecInput } from '@tfkd/kd-core';
import { Registry, runSpec } from '@tfkd/engine';
import { blobSplits, testModule } from '@tfkd/kd-core/testing';
import { mkdtemp, readdir, readFile, rm } from 'fs/promises';
import { tmpdir } from 'os';
import * as path from 'path';
import { computeCalibration } from '@tfkd/kd-core';
import { calibrationMetric, diagramFileName, eceMetric, metricDefinitions, metricsModule, nllMetric } from './plugins';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function report(): EvalReport {
  const metrics: Record<string, Record<string, number>> = {};
  return { phase: 'distill', epoch: 1, metrics, set: (role, values) => void (metrics[role] = { ...(metrics[role] ?? {}), ...values }) };
}

/** One plugin on its own bus, fed `batches` of (logits, labels) for `role`, then evalEnd. */
async function feed(def: PluginDefinition, options: unknown, batches: [string, number[][], number[]][]): Promise<EvalReport> {
  const bus = new LifecycleBus();
  const deps = { name: def.id, weight: 1, numClasses: 3, inputShape: [1], roles: [], tapShape: () => [], rng: new Rng(1), specPath: 'eval[0]' };
  const plugin = def.create(def.options.parse(options), deps);
  plugin.register(bus.forPlugin(plugin.name, 'observe'));
  for (const [role, logits, labels] of batches) {
    tf.tidy(() => bus.emit('evalBatch', { phase: 'distill', epoch: 1, role, logits: tf.tensor2d(logits), labels: tf.tensor1d(labels, 'int32') }));
  }
  const rep = report();
  await bus.emitAsync('evalEnd', rep);
  return rep;
}

describe('metric plugins', () => {
  const logits = [
    [2, 0, 0],
    [0, 1, 0],
    [0, 0, 3],
    [1, 1, 0],
  ];
  const labels = [0, 2, 2, 1];

  it('accumulate per role over batches and set the one-shot value on evalEnd', async () => {
    const rep = await feed(eceMetric, {}, [
      ['student', logits.slice(0, 3), labels.slice(0, 3)],
      ['teacher', logits.slice(2), labels.slice(2)],
      ['student', logits.slice(3), labels.slice(3)],
    ]);
    const f32 = (rows: number[][]) => rows.map((r) => r.map(Math.fround));
    expect(rep.metrics.student.ece).toBe(computeCalibration(f32(logits), labels, { input: 'logits' }).ece);
    expect(rep.metrics.teacher.ece).toBe(computeCalibration(f32(logits.slice(2)), labels.slice(2), { input: 'logits' }).ece);
    expect(Object.keys(rep.metrics.student)).toEqual(['ece']);
    // hand value for the teacher: softmax(0,0,3) → conf e³/(e³+2) = 0.909 right; (1,1,0) → e/(2e+1) = 0.422 wrong (argmax 0)
    const c1 = Math.exp(3) / (Math.exp(3) + 2);
    const c2 = Math.E / (2 * Math.E + 1);
    expect(rep.metrics.teacher.ece).toBeCloseTo(((1 - c1) + c2) / 2, 6);
  });

  it('reset after evalEnd: a second evaluation sees only its own batches', async () => {
    const bus = new LifecycleBus();
    const deps = { name: 'nll', weight: 1, numClasses: 3, inputShape: [1], roles: [], tapShape: () => [], rng: new Rng(1), specPath: 'eval[0]' };
    nllMetric.create({}, deps).register(bus.forPlugin('nll', 'observe'));
    const run = async (rows: number[][], ys: number[]) => {
      tf.tidy(() => bus.emit('evalBatch', { phase: 'p', epoch: 1, role: 'student', logits: tf.tensor2d(rows), labels: tf.tensor1d(ys, 'int32') }));
      const rep = report();
      await bus.emitAsync('evalEnd', rep);
      return rep.metrics.student.nll;
    };
    expect(await run([[0, 0]], [0])).toBeCloseTo(Math.LN2, 7);
    // logits (0, ln 3) and label 1: −ln(3/4)
    expect(await run([[0, Math.log(3)]], [1])).toBeCloseTo(-Math.log(0.75), 7);
  });

  it('metric/calibration sets the six values and writes one SVG per role when given svgDir', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'ece-'));
    try {
      const rep = await feed(calibrationMetric as PluginDefinition, { bins: 10, svgDir: path.join(dir, 'svg') }, [
        ['student', logits, labels],
        ['teacher', logits, labels],
      ]);
      const expected = computeCalibration(logits, labels, { input: 'logits', bins: 10 });
      expect(Object.keys(rep.metrics.student).sort()).toEqual(['adaptiveEce', 'brier', 'classwiseEce', 'ece', 'mce', 'nll']);
      for (const key of ['adaptiveEce', 'brier', 'classwiseEce', 'ece', 'mce', 'nll'] as const) {
        expect(rep.metrics.student[key]).toBe(expected[key]);
      }
      const files = (await readdir(path.join(dir, 'svg'))).sort();
      expect(files).toEqual([diagramFileName('student', 'distill', 1), diagramFileName('teacher', 'distill', 1)]);
      expect(files[0]).toBe('reliability-student-distill-epoch1.svg');
      const svg = await readFile(path.join(dir, 'svg', files[0]), 'utf8');
      expect(svg).toContain(`ECE = ${(100 * expected.ece).toFixed(2)}%`);
      expect(svg).toContain('metric/calibration — student, distill epoch 1');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('metricsModule binds every definition, with unique metric/* ids and strict options', () => {
    const registry = new Registry([metricsModule]);
    expect(registry.plugins().map((d) => d.id).sort()).toEqual([
      'metric/accuracy',
      'metric/adaptive-ece',
      'metric/brier',
      'metric/calibration',
      'metric/classwise-ece',
      'metric/ece',
      'metric/mce',
      'metric/nll',
    ]);
    expect(metricDefinitions.every((d) => d.kind === 'metric')).toBe(true);
    expect(eceMetric.options.parse({})).toEqual({ bins: 15 });
    expect(() => eceMetric.options.parse({ bins: 0 })).toThrow();
    expect(() => nllMetric.options.parse({ bins: 15 })).toThrow();
  });
});

describe('an Engine run with eval: [accuracy, ece]', () => {
  const base: RunSpecInput = {
    seed: 3,
    backend: 'cpu',
    data: { name: 'blobs', train: 96, test: 48 },
    student: { model: 'test-dense' },
    train: { epochs: 3, batchSize: 16, optimizer: { name: 'adam', lr: 0.02, momentum: 0, weightDecay: 0 } },
    plugins: [{ use: 'test/ce' }],
  };

  it('yields metrics.student.ece equal to computeCalibration on the model’s test logits', async () => {
    const registry = new Registry([testModule(), metricsModule]);
    const result = await runSpec(RunSpec.parse({ ...base, eval: ['accuracy', 'ece'] }), { registry });
    const model = result.models.get('student');
    if (!model) throw new Error('no student model');
    const { test } = blobSplits(7, 96, 48);
    const logits = tf.tidy(() => (model.predict(tf.tensor4d(test.images, [48, ...test.shape])) as tf.Tensor).dataSync());
    result.models.forEach((m) => m.dispose());
    const expected = computeCalibration(logits, test.labels, { input: 'logits' });
    expect(result.eval.student.ece).toBe(expected.ece);
    expect(result.eval.student.ece).toBeGreaterThan(0);
    expect(result.eval.student.accuracy).toBeCloseTo(expected.accuracy, 12);
    expect(result.history.every((h) => typeof h.eval.student.ece === 'number')).toBe(true);
  });

  it('runs metric/calibration from plugins: with svgDir, one diagram per evaluation', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'ece-run-'));
    try {
      const registry = new Registry([testModule(), metricsModule]);
      const spec = RunSpec.parse({ ...base, eval: ['accuracy', 'brier'], plugins: [{ use: 'test/ce' }, { use: 'metric/calibration', with: { svgDir: dir } }] });
      const result = await runSpec(spec, { registry });
      const model = result.models.get('student');
      if (!model) throw new Error('no student model');
      const { test } = blobSplits(7, 96, 48);
      const logits = tf.tidy(() => (model.predict(tf.tensor4d(test.images, [48, ...test.shape])) as tf.Tensor).dataSync());
      result.models.forEach((m) => m.dispose());
      expect(Object.keys(result.eval.student).sort()).toEqual(['accuracy', 'adaptiveEce', 'brier', 'classwiseEce', 'ece', 'mce', 'nll']);
      // the six values are computeCalibration's on the trained model's test logits (default 15 bins);
      // brier comes from both metric/brier (eval) and metric/calibration: the two routes agree
      const expected = computeCalibration(logits, test.labels, { input: 'logits', bins: 15 });
      for (const key of ['adaptiveEce', 'brier', 'classwiseEce', 'ece', 'mce', 'nll'] as const) expect([key, result.eval.student[key]]).toEqual([key, expect.closeTo(expected[key], 10)]);
      expect(result.eval.student.accuracy).toBeCloseTo(expected.accuracy, 12);
      expect((await readdir(dir)).sort()).toEqual([1, 2, 3].map((e) => diagramFileName('student', result.history[0].phase, e)));
      // the last diagram prints the final ECE
      expect(await readFile(path.join(dir, diagramFileName('student', result.history[0].phase, 3)), 'utf8')).toContain(`ECE = ${(100 * expected.ece).toFixed(2)}%`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
