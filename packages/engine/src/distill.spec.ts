import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import * as tfd from '@tensorflow/tfjs-data';
import { loadGraphModel } from '@tensorflow/tfjs-converter';
import { ContainerModule } from 'inversify';
import { z } from 'zod';
import { DATASET_DEFINITION, MODEL_DEFINITION, RunSpec, defineLoss, type KdError, type ModelDefinition } from '@tfkd/kd-core';
import { testModelTools } from '@tfkd/kd-core/testing';
import { logitLossesModule } from '@tfkd/losses-logit';
import { distill, type DistillCallback } from './distill';
import { runSpec } from './execute';
import { Registry } from './registry';

jest.setTimeout(60_000);
beforeAll(async () => {
  await tf.setBackend('cpu');
});

// 64 examples of 16 features in 3 classes (a fixed formula: no generator needed), and 24 to validate on.
function examples(n: number, offset: number): { xs: number[]; ys: number }[] {
  return Array.from({ length: n }, (_, i) => {
    const y = (i + offset) % 3;
    return { xs: Array.from({ length: 16 }, (_, j) => Math.sin(0.7 * (i + offset) + j) * 0.3 + (j % 3 === y ? 0.8 : 0)), ys: y };
  });
}
const TRAIN = examples(64, 0);
const VAL = examples(24, 1000);
const tfData = (rows: { xs: number[]; ys: number }[]) => tfd.array(rows).map((r) => r as unknown as tf.TensorContainer).batch(16) as unknown as tfd.Dataset<{ xs: tf.Tensor; ys: tf.Tensor }>;
const init = (seed: number) => tfl.initializers.glorotUniform({ seed });

/** The teacher, Sequential: 16 → 8 (relu) → 3, no biases (so a GraphModel of two MatMuls is the same function). */
function sequentialTeacher(): tfl.Sequential {
  return tfl.sequential({
    layers: [
      tfl.layers.dense({ inputShape: [16], units: 8, activation: 'relu', useBias: false, kernelInitializer: init(1), name: 'hidden' }),
      tfl.layers.dense({ units: 3, useBias: false, kernelInitializer: init(2), name: 'logits' }),
    ],
  });
}

/** The student, functional: 16 → 6 (relu) → 3. */
function functionalStudent(): tfl.LayersModel {
  const input = tfl.input({ shape: [16] });
  const h = tfl.layers.dense({ units: 6, activation: 'relu', kernelInitializer: init(3), name: 'fc' }).apply(input) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ units: 3, kernelInitializer: init(4), name: 'out' }).apply(h) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

const kd = [
  { use: 'loss/cross-entropy', weight: 0.1 },
  { use: 'loss/hinton-kd', with: { temperature: 4 }, weight: 0.9 },
];
const base = { epochs: 3, optimizer: { name: 'adam' as const, lr: 0.01, weightDecay: 0 }, seed: 5, plugins: kd, modules: [logitLossesModule] };
const weightsOf = (m: tfl.LayersModel) => m.getWeights().map((w) => Array.from(w.dataSync()));

describe('distill(): models and tf.data handed over in code', () => {
  it('Hinton KD from a Sequential teacher into a functional student gives the weights of the equivalent spec run', async () => {
    const teacher = sequentialTeacher();
    const student = functionalStudent();
    const h = await distill(student, { ...base, teachers: teacher, data: tfData(TRAIN), validationData: tfData(VAL) });
    expect(h.params).toEqual({ epochs: 3, batchSize: 16, samples: 64 });

    // The spec route: the same teacher saved and loaded, the same student from a model definition,
    // the same arrays from a dataset definition.
    await testModelTools.save(sequentialTeacher(), '/mem/distill-teacher');
    const split = (rows: typeof TRAIN) => ({
      name: 'arrays', source: 'code', shape: [1, 1, 16] as [number, number, number], numClasses: 3,
      images: Float32Array.from(rows.flatMap((r) => r.xs)), labels: Int32Array.from(rows.map((r) => r.ys)),
    });
    const codeStudent: ModelDefinition = { id: 'code-student', describe: 'test', taps: [], build: () => functionalStudent() };
    const fixtures = new ContainerModule((o) => {
      o.bind(MODEL_DEFINITION).toConstantValue(codeStudent);
      o.bind(DATASET_DEFINITION).toConstantValue({ id: 'arrays', describe: 'test', options: z.object({}).strict(), load: async () => ({ train: split(TRAIN), test: split(VAL) }) });
    });
    const { MODEL_TOOLS } = await import('@tfkd/kd-core');
    const tools = new ContainerModule((o) => void o.bind(MODEL_TOOLS).toConstantValue(testModelTools));
    const r = await runSpec(
      RunSpec.parse({
        seed: 5, backend: 'cpu', data: { name: 'arrays' }, teacher: { load: '/mem/distill-teacher' }, student: { model: 'code-student' },
        train: { epochs: 3, batchSize: 16, optimizer: base.optimizer }, plugins: kd, teacherCache: 'off',
      }),
      { registry: new Registry([tools, fixtures, logitLossesModule]), cacheDir: null },
    );
    expect(weightsOf(student)).toEqual(weightsOf(r.models.get('student') as tfl.LayersModel));
    expect(h.history['val_accuracy']).toEqual(r.history.map((e) => e.eval.student.accuracy));
    r.models.forEach((m) => m.dispose());
    teacher.dispose();
    student.dispose();
  });

  it('tfjs callbacks fire in order with numbers; the History holds every term; the models stay the caller’s', async () => {
    const calls: string[] = [];
    const logs: Record<string, number>[] = [];
    const cb: DistillCallback = {
      setParams: (p) => void calls.push(`setParams:${JSON.stringify(p)}`),
      onTrainBegin: () => void calls.push('onTrainBegin'),
      onEpochBegin: (e) => void calls.push(`onEpochBegin:${e}`),
      onBatchEnd: async (b, l) => {
        await Promise.resolve();
        calls.push(`onBatchEnd:${b}`);
        expect(Number.isFinite(l?.loss)).toBe(true);
      },
      onEpochEnd: (e, l) => void (calls.push(`onEpochEnd:${e}`), logs.push(l ?? {})),
      onTrainEnd: () => void calls.push('onTrainEnd'),
    };
    const teacher = sequentialTeacher();
    const student = functionalStudent();
    const custom: number[] = [];
    const tfCallback = new tfl.CustomCallback({ onEpochEnd: async (e, l) => void custom.push(e, l?.val_accuracy as number) });
    const h = await distill(student, { ...base, epochs: 2, teachers: teacher, data: tfData(TRAIN), validationData: tfData(VAL), callbacks: [cb, tfCallback], yieldEvery: 'batch' });
    expect(custom).toEqual([0, h.history.val_accuracy[0], 1, h.history.val_accuracy[1]]);
    const epoch = (e: number) => [`onEpochBegin:${e}`, ...[0, 1, 2, 3].map((b) => `onBatchEnd:${b}`), `onEpochEnd:${e}`];
    expect(calls).toEqual(['setParams:{"epochs":2,"batchSize":16,"samples":64,"steps":4}', 'onTrainBegin', ...epoch(0), ...epoch(1), 'onTrainEnd']);
    expect(Object.keys(h.history).sort()).toEqual(['loss', 'loss/cross-entropy', 'loss/hinton-kd', 'val_accuracy', 'val_nll']);
    expect(h.epoch).toEqual([0, 1]);
    h.history.loss.forEach((l, i) => {
      expect(l).toBeCloseTo(0.1 * h.history['loss/cross-entropy'][i] + 0.9 * h.history['loss/hinton-kd'][i], 5);
      expect(logs[i]).toMatchObject({ loss: l, 'loss/hinton-kd': h.history['loss/hinton-kd'][i], val_accuracy: h.history.val_accuracy[i] });
    });
    expect(h.ledger.roles.teacher.forwardImages).toBe(2 * 64); // every step's batch (evaluation is not a training cost)
    // nothing of the caller's was disposed; the teacher was frozen
    expect(student.predict(tf.zeros([1, 16])) instanceof tf.Tensor).toBe(true);
    expect(teacher.trainable).toBe(false);
    teacher.dispose();
    student.dispose();
  });
});

describe('distill() with a tf.GraphModel teacher', () => {
  // The Sequential teacher's function as a converted graph: MatMul → Relu → MatMul, its kernels as weights.
  async function graphOf(t: tfl.Sequential) {
    const f = { type: 'DT_FLOAT' };
    const matmul = (name: string, a: string, b: string) => ({ name, op: 'MatMul', input: [a, b], attr: { T: f, transpose_a: { b: false }, transpose_b: { b: false } } });
    const konst = (name: string, shape: number[]) => ({ name, op: 'Const', attr: { dtype: f, value: { tensor: { dtype: 'DT_FLOAT', tensorShape: { dim: shape.map((s) => ({ size: String(s) })) } } } } });
    const modelTopology = {
      node: [
        { name: 'x', op: 'Placeholder', attr: { dtype: f, shape: { shape: { dim: [{ size: '-1' }, { size: '16' }] } } } },
        konst('w1', [16, 8]), matmul('hidden/MatMul', 'x', 'w1'), { name: 'hidden', op: 'Relu', input: ['hidden/MatMul'], attr: { T: f } },
        konst('w2', [8, 3]), matmul('logits', 'hidden', 'w2'),
      ],
      versions: { producer: 1 },
    };
    const [w1, w2] = t.getWeights().map((w) => w.dataSync() as Float32Array);
    const bytes = new Uint8Array(w1.byteLength + w2.byteLength);
    bytes.set(new Uint8Array(w1.buffer, w1.byteOffset, w1.byteLength));
    bytes.set(new Uint8Array(w2.buffer, w2.byteOffset, w2.byteLength), w1.byteLength);
    return loadGraphModel(tf.io.fromMemory({ modelTopology, weightSpecs: [{ name: 'w1', shape: [16, 8], dtype: 'float32' }, { name: 'w2', shape: [8, 3], dtype: 'float32' }], weightData: bytes.buffer, format: 'graph-model' }));
  }

  it('drives logit KD: the same student weights as the Sequential teacher it was converted from', async () => {
    const layers = sequentialTeacher();
    const graph = await graphOf(layers);
    const a = functionalStudent();
    const b = functionalStudent();
    await distill(a, { ...base, teachers: layers, data: tfData(TRAIN) });
    const h = await distill(b, { ...base, teachers: graph, data: tfData(TRAIN) });
    const wa = weightsOf(a);
    weightsOf(b).forEach((w, i) => w.forEach((v, j) => expect(Math.abs(v - wa[i][j])).toBeLessThan(1e-6)));
    expect(h.history['loss/hinton-kd'].every(Number.isFinite)).toBe(true);
    graph.dispose();
    [layers, a, b].forEach((m) => m.dispose());
  });

  it('taps graph nodes by name; a node that does not exist is KD_TAP_UNKNOWN before any step', async () => {
    const graph = await graphOf(sequentialTeacher());
    const seen: number[] = [];
    const tapMean = (node: string) =>
      defineLoss({
        id: 'test/tap-mean',
        describe: 'reads a teacher tap (test)',
        options: z.object({}).strict(),
        requires: () => ({ roles: ['student', 'teacher'], taps: [`teacher.${node}`] }),
        compute: (ctx) => {
          const t = ctx.outputs('teacher').taps[node];
          seen.push(t.shape[1] as number);
          return tf.mul(tf.mean(ctx.outputs('student').logits), 0) as tf.Scalar;
        },
      });
    const student = functionalStudent();
    await distill(student, { ...base, epochs: 1, teachers: graph, data: tfData(TRAIN), plugins: [...kd, tapMean('hidden')] });
    expect(seen).toEqual([8, 8, 8, 8]);
    let steps = 0;
    const e = await distill(student, { ...base, teachers: graph, data: tfData(TRAIN), plugins: [...kd, tapMean('no_such_node')], callbacks: { onBatchEnd: () => void steps++ } }).then(
      () => null,
      (x: unknown) => x as KdError,
    );
    expect(e).toMatchObject({ code: 'KD_TAP_UNKNOWN', path: 'plugins[2]' });
    expect(e?.message).toBe("role 'teacher' (a graph model) has no node 'no_such_node'");
    expect(steps).toBe(0);
    // and a layers student whose tap is misspelt: the spec-style error, before training
    const bad = await distill(student, { ...base, teachers: sequentialTeacher(), data: tfData(TRAIN), plugins: [{ use: 'loss/hinton-kd' }, tapMean('hiden')] }).then(
      () => null,
      (x: unknown) => x as KdError,
    );
    expect(bad).toMatchObject({ code: 'KD_TAP_UNKNOWN', path: 'plugins[1]' });
    graph.dispose();
    student.dispose();
  });
});
