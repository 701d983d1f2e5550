import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { Engine, planRun, Registry, runSpec } from '@tfkd/engine';
import { batchTensors, type Dataset, isKdError, type KdError, type ObjectList, RunSpec, type RunSpecInput } from '@tfkd/kd-core';
import { testModule } from '@tfkd/kd-core/testing';
import { logitLossesModule } from '@tfkd/losses-logit';
import { loads, TINY, tinyRunSpec, tinyScenes, tinyScenesModule } from '../__fixtures__/tiny-scenes';
import { decodeDetections } from '../decode';
import { buildDetector, detectorHeads } from '../detector';
import { makeLayout } from '../layout';
import { meanAveragePrecision } from '../map';
import { kdModule } from '../module';
import { buildSegmenter } from '../segmenter';
import { SegmentationEvaluator } from '../seg-metrics';

// Engine-level tests of the dense tasks: the task check at plan time, the metrics recorded by a run
// against this package's functions on the same predictions (two routes, equal to the last bit), and
// training steps on scenes without objects, with border and degenerate boxes.
jest.setTimeout(120_000);

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const registry = () => new Registry([testModule(), logitLossesModule, tinyScenesModule, kdModule]);
const shape: [number, number, number] = [TINY, TINY, 1];
const detSpec = (over: Partial<RunSpecInput> = {}): RunSpec => tinyRunSpec('detection', over);
const segSpec = (over: Partial<RunSpecInput> = {}): RunSpec => tinyRunSpec('segmentation', over);

async function failure(p: Promise<unknown>): Promise<KdError> {
  const e = await p.then(() => null, (x: unknown) => x);
  if (!isKdError(e)) throw new Error(`expected a KdError, got ${String(e)}`);
  return e;
}

/** Every object list of a dataset, per sample. */
const objectsOf = (ds: Dataset): ObjectList[] =>
  Array.from({ length: ds.labels.length }, (_, i) => {
    const o = ds.objects as NonNullable<Dataset['objects']>;
    return { boxes: o.boxes.subarray(4 * o.offsets[i], 4 * o.offsets[i + 1]), classes: o.classes.subarray(o.offsets[i], o.offsets[i + 1]) };
  });

/**
 * A teacher whose class heads give scores spread around 0.5 (many detections) and whose box heads put
 * every side at about one stride (8×8 boxes at stride 4, near the scenes' 3-8 px objects: some match).
 */
function spreadDetector(seed: number): LayersModel {
  const m = buildDetector({ inputShape: shape, numClasses: 2, seed, width: 2 }, 'detector-teacher', 2);
  for (const name of ['cls_p3', 'cls_p4']) {
    const layer = m.getLayer(name);
    const [k] = layer.getWeights();
    layer.setWeights([tf.mul(k, 8), tf.tensor1d([0.3, -0.2])]);
  }
  for (const name of ['box_p3', 'box_p4']) {
    const layer = m.getLayer(name);
    const [k] = layer.getWeights();
    layer.setWeights([tf.mul(k, 0.1), tf.tensor1d(Array.from({ length: 36 }, (_, i) => (i % 9 === 1 ? 4 : 0)))]);
  }
  return m;
}

describe('tasks at plan time (KD_TASK_MISMATCH)', () => {
  it('loss/hinton-kd on a detection run fails in the plan, at plugins[1].use, before any data is loaded or step taken', async () => {
    const before = loads.count;
    const spec = detSpec({ teacher: { model: 'detector-teacher', options: { width: 2 }, train: { epochs: 1 } }, plugins: [{ use: 'loss/detection' }, { use: 'loss/hinton-kd' }] });
    const e = await failure(planRun(spec, { registry: registry(), cacheDir: null }));
    expect(e.code).toBe('KD_TASK_MISMATCH');
    expect(e.path).toBe('plugins[1].use');
    expect(e.message).toBe("'loss/hinton-kd' supports classification; this run's task is detection");
    expect(e.fix).toContain('loss/det-logit-kd');
    expect(e.fix).toContain('task: classification');
    expect(loads.count).toBe(before);
  });

  it('a dataset or zoo model of another task, and classification-only spec options, are refused at their spec paths', async () => {
    const blobs = await failure(planRun(detSpec({ data: { name: 'blobs' } }), { registry: registry(), cacheDir: null }));
    expect([blobs.code, blobs.path]).toEqual(['KD_TASK_MISMATCH', 'data.name']);
    expect(blobs.fix).toContain('tiny-scenes');
    const model = await failure(planRun(detSpec({ student: { model: 'segmenter-student' } }), { registry: registry(), cacheDir: null }));
    expect([model.code, model.path]).toEqual(['KD_TASK_MISMATCH', 'student.model']);
    const dense = await failure(planRun(RunSpec.parse({ ...detSpec(), task: undefined, data: { name: 'blobs' }, plugins: [{ use: 'test/ce' }], student: { model: 'detector-student' } }), { registry: registry(), cacheDir: null }));
    expect([dense.code, dense.path, dense.message]).toEqual(['KD_TASK_MISMATCH', 'student.model', "model 'detector-student' supports detection; this run's task is classification"]);
    const calib = await failure(planRun(detSpec({ calibrate: { method: 'temperature', holdout: 0.2 } }), { registry: registry(), cacheDir: null }));
    expect([calib.code, calib.path]).toEqual(['KD_TASK_MISMATCH', 'calibrate']);
    const metric = await failure(planRun(detSpec({ eval: ['miou'] }), { registry: registry(), cacheDir: null }));
    expect([metric.code, metric.path]).toEqual(['KD_TASK_MISMATCH', 'eval[0]']);
  });

  it('a teacher trained from labels trains on the task\'s label loss and is evaluated by its metric', async () => {
    const plan = await planRun(detSpec({ teacher: { model: 'detector-teacher', options: { width: 2 }, train: { epochs: 1 } }, plugins: [{ use: 'loss/detection' }, { use: 'loss/det-logit-kd' }] }), { registry: registry(), cacheDir: null });
    const t = plan.runs[0].spec;
    expect([t.task, t.plugins.map((p) => p.use), t.eval]).toEqual(['detection', ['loss/detection'], ['metric/map']]);
  });
});

describe('detection runs', () => {
  it("metric/map of a run equals map() of this package on the same predictions (teacher and student)", async () => {
    const teacher = spreadDetector(21);
    const spec = detSpec({ teacher: { model: 'detector-teacher', options: { width: 2 } }, plugins: [{ use: 'loss/detection' }, { use: 'loss/det-localization' }] });
    const engine = new Engine(spec, { registry: registry(), models: new Map([['teacher', teacher]]) });
    try {
      const result = await engine.run();
      const test = result.data.test;
      const layout = makeLayout(shape, 2, 8);
      for (const [role, model] of [['teacher', teacher], ['student', result.models.get('student') as LayersModel]] as const) {
        const { x } = batchTensors(test, Int32Array.from({ length: 6 }, (_, i) => i));
        const outs = model.predict(x) as tf.Tensor[];
        const heads = detectorHeads(outs, layout);
        const dets = decodeDetections(heads, layout);
        tf.dispose([x, ...outs, heads.cls, heads.box]);
        const want = meanAveragePrecision(objectsOf(test), dets, { numClasses: 2 });
        expect(result.eval[role]).toEqual({ map: want.map, map50: want.map50, map75: want.map75, mar: want.mar });
        if (role === 'teacher') {
          expect(dets.reduce((s, d) => s + d.scores.length, 0)).toBeGreaterThan(10);
          expect(want.map50).toBeGreaterThan(0);
        }
      }
      // the history records the metric per evaluation, as accuracy is recorded
      expect(Object.keys(result.history[0].eval.student).sort()).toEqual(['map', 'map50', 'map75', 'mar']);
      expect(Object.keys(result.history[0].train).sort()).toEqual(['loss', 'loss/det-localization', 'loss/detection:cls', 'loss/detection:dfl', 'loss/detection:giou']);
    } finally {
      engine.dispose();
      teacher.dispose();
    }
  });

  it('scenes without objects, border and degenerate boxes train with finite losses; an empty batch has GIoU and DFL 0', async () => {
    const kd = [{ use: 'loss/detection' }, { use: 'loss/det-feature-imitation' }, { use: 'loss/det-bounded-regression' }, { use: 'loss/det-localization' }, { use: 'loss/det-logit-kd' }];
    const teacher = spreadDetector(5);
    try {
      for (const empty of [true, false]) {
        const spec = detSpec({ data: { name: 'tiny-scenes', train: 12, test: 6, empty }, teacher: { model: 'detector-teacher', options: { width: 2 } }, plugins: kd });
        const engine = new Engine(spec, { registry: registry(), models: new Map([['teacher', teacher]]) });
        const stepper = await engine.stepper();
        for (let i = 0; i < 2; i++) {
          const r = stepper.step();
          expect(r.skipped).toBe(false);
          expect(Number.isFinite(r.loss)).toBe(true);
          for (const v of Object.values(r.terms)) expect(Number.isFinite(v)).toBe(true);
          if (empty) {
            expect([r.terms['loss/detection:giou'], r.terms['loss/detection:dfl'], r.terms['loss/det-bounded-regression'], r.terms['loss/det-localization']]).toEqual([0, 0, 0, 0]);
            expect(r.terms['loss/det-feature-imitation']).toBe(0);
            expect(r.terms['loss/detection:cls']).toBeGreaterThan(0);
          }
        }
        engine.dispose();
      }
    } finally {
      teacher.dispose();
    }
  });
});

describe('segmentation runs', () => {
  it('metric/miou of a run equals SegmentationEvaluator on the same predictions (teacher and student)', async () => {
    const teacher = buildSegmenter({ inputShape: shape, numClasses: 3, seed: 4, width: 2 }, 'segmenter-teacher', 2);
    const spec = segSpec({ teacher: { model: 'segmenter-teacher', options: { width: 2 } }, plugins: [{ use: 'loss/seg-cross-entropy' }, { use: 'loss/seg-pixel-kd' }, { use: 'loss/seg-pairwise' }] });
    const engine = new Engine(spec, { registry: registry(), models: new Map([['teacher', teacher]]) });
    try {
      const result = await engine.run();
      const test = result.data.test;
      for (const [role, model] of [['teacher', teacher], ['student', result.models.get('student') as LayersModel]] as const) {
        const pred = tf.tidy(() => tf.argMax(model.predict(batchTensors(test, Int32Array.from({ length: 6 }, (_, i) => i)).x) as tf.Tensor, -1).dataSync() as Int32Array);
        const ev = new SegmentationEvaluator(3);
        ev.add(pred, test.masks as Int32Array);
        const want = ev.result();
        expect(result.eval[role]).toEqual({ miou: want.miou, pixelAccuracy: want.pixelAccuracy });
        expect(want.miou).toBeGreaterThan(0);
      }
      expect(Object.keys(result.history[0].train).sort()).toEqual(['loss', 'loss/seg-cross-entropy', 'loss/seg-pairwise', 'loss/seg-pixel-kd']);
    } finally {
      engine.dispose();
      teacher.dispose();
    }
  });

  it('a run from labels through runSpec: loss decreasing, pixel accuracy recorded', async () => {
    const result = await runSpec(segSpec({ train: { epochs: 3, batchSize: 8, optimizer: { name: 'adam', lr: 0.01, momentum: 0, weightDecay: 0 } }, data: { name: 'tiny-scenes', train: 16, test: 6 } }), { registry: registry(), cacheDir: null });
    try {
      const losses = result.history.map((h) => h.train.loss);
      expect(losses[2]).toBeLessThan(losses[0]);
      expect(result.eval.student.pixelAccuracy).toBeGreaterThan(0.5);
    } finally {
      for (const m of result.models.values()) m.dispose();
    }
  });
});

describe('tiny-scenes fixture', () => {
  it('has empty scenes, a border box and a degenerate box', () => {
    const d = tinyScenes(6, 1, 'detection');
    const o = d.objects as NonNullable<Dataset['objects']>;
    expect(Array.from(o.offsets)).toEqual([0, 0, 1, 3, 3, 4, 7]);
    expect(Array.from(o.boxes.subarray(0, 4)).slice(2)).toEqual([TINY, TINY]);
    expect(Array.from(o.boxes.subarray(24, 28))).toEqual([5, 2, 5, 12]);
  });
});
