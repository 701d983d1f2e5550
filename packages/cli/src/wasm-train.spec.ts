import * as tf from '@tensorflow/tfjs-core';
import { Engine, RunSpec, type RunSpecInput } from '@tfkd/kd-core';
import { MODEL_ZOO } from '@tfkd/models';
import { defaultRegistry } from './modules';

// Issue: every zoo model and every loss trains on wasm. One step on wasm must give the same loss and
// the same updated weights as the same step on cpu (same seed, same batch).
// (In the CLI package because it is the one that depends on every package.)
jest.setTimeout(300_000);

async function oneStep(backend: 'cpu' | 'wasm', over: Partial<RunSpecInput>): Promise<{ loss: number; weights: Float32Array }> {
  const spec = RunSpec.parse({
    seed: 5,
    backend,
    data: { name: 'synthetic', train: 2, test: 2, numClasses: 10, shape: [12, 12, 1], seed: 3 },
    train: { epochs: 1, batchSize: 2, optimizer: { name: 'sgd', lr: 0.05, momentum: 0, weightDecay: 0 } },
    plugins: [{ use: 'loss/cross-entropy' }],
    ...over,
  });
  const engine = new Engine(spec, { registry: defaultRegistry(), cacheDir: null });
  try {
    const r = await engine.run();
    const student = r.models.get('student') as NonNullable<ReturnType<typeof r.models.get>>;
    const weights = tf.tidy(() => tf.concat(student.getWeights().map((w) => tf.reshape(w, [-1]))).dataSync() as Float32Array);
    return { loss: r.history[0].train.loss, weights };
  } finally {
    engine.dispose();
  }
}

function relErr(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let s = 1e-6;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return d / s;
}

describe('every zoo model trains on wasm like on cpu', () => {
  // 12x12 inputs, batch 2 and (for the largest) narrower widths keep the cpu side of the comparison
  // to seconds; the layer types — what the wasm kernels must cover — are those of the full models.
  const narrow: Record<string, Record<string, unknown>> = { 'resnet-teacher': { widths: [8, 16, 32] } };
  it.each(MODEL_ZOO.map((m) => m.id))('%s', async (id) => {
    const student = { model: id, options: narrow[id] ?? {} };
    const cpu = await oneStep('cpu', { student });
    const wasm = await oneStep('wasm', { student });
    expect(Number.isFinite(wasm.loss)).toBe(true);
    expect(Math.abs(wasm.loss - cpu.loss)).toBeLessThan(1e-4 * Math.max(1, Math.abs(cpu.loss)));
    expect(relErr(wasm.weights, cpu.weights)).toBeLessThan(1e-4);
  });
});

describe('every logit loss trains on wasm like on cpu', () => {
  const teacher = { model: 'mlp', options: { hidden: [16] }, seed: 2, train: { epochs: 1 } };
  const student = { model: 'cnn-small' };
  const registry = defaultRegistry();
  const ids = registry
    .plugins()
    .filter((d) => d.kind === 'loss')
    .map((d) => d.id);
  it('covers the logit family', () => {
    expect(ids).toEqual(
      expect.arrayContaining(['loss/cross-entropy', 'loss/hinton-kd', 'loss/dkd', 'loss/dist', 'loss/logit-mse', 'loss/soft-target-ce', 'loss/label-smoothing']),
    );
  });
  it.each(ids)('%s', async (id) => {
    const over = { teacher, student, plugins: [{ use: id, with: id === 'loss/dkd' ? { warmup: 1 } : {} }] };
    const cpu = await oneStep('cpu', over);
    const wasm = await oneStep('wasm', over);
    expect(Number.isFinite(wasm.loss)).toBe(true);
    expect(Math.abs(wasm.loss - cpu.loss)).toBeLessThan(1e-4 * Math.max(1, Math.abs(cpu.loss)));
    expect(relErr(wasm.weights, cpu.weights)).toBeLessThan(1e-4);
  });
});
