/**
 * The fused optimizers of @tfkd/kd-core on wasm (kernels in optimizer-kernels.ts, Adam's SIMD loop
 * in simd.ts): bit for bit tfjs's own optimizers on wasm, and the fused kernels on cpu; the SIMD
 * loop equals the JS loop; one kernel call per step; no leaks; a small CNN trained with either
 * optimizer ends with the same weights.
 */
import { FUSED_ADAM_KERNEL, FUSED_SGD_KERNEL, FusedAdamOptimizer, FusedMomentumOptimizer, FusedSGDOptimizer } from '@tfkd/kd-core';
import { memorySnapshot, plain, tf, useBackend } from './__fixtures__/harness';
import { initWasmBackend, registerWasmTrainingKernels } from './index';
import { simdKernels } from './simd';

beforeAll(async () => {
  expect(await initWasmBackend()).toBe(true);
});

/** Sizes 1–13 cover every SIMD tail (size mod 4), plus a conv kernel and a dense matrix. */
const SHAPES = [[1], [2], [3], [5], [6], [7], [13], [3, 3, 1, 16], [3, 3, 16, 32], [50, 10]];

/** Gradients with a spread of magnitudes (1e-6 … 10) and signs, some exact zeros. */
function grad(size: number, seed: number): Float32Array {
  const p = plain([size], seed).values as Float32Array;
  return Float32Array.from(p, (u, i) => (i % 11 === 3 ? 0 : Math.sign(u) * Math.pow(10, -6 + 7 * Math.abs(u))));
}

type Make = () => tf.Optimizer;

/** `steps` steps on fresh variables with fixed per-step gradients on `backend`; the weights' and slots' bits. */
async function train(backend: 'cpu' | 'wasm', make: Make, steps: number): Promise<Float32Array[]> {
  await useBackend(backend);
  const vars = SHAPES.map((s, i) => tf.variable(tf.tensor(plain(s, 50 + i).values, s)));
  const opt = make();
  for (let k = 0; k < steps; k++) {
    if (k === 3) (opt as unknown as { setLearningRate?: (lr: number) => void }).setLearningRate?.(0.02);
    tf.tidy(() => opt.applyGradients(vars.map((v, i) => ({ name: v.name, tensor: tf.tensor(grad(v.size, 1000 * k + i), v.shape) }))));
  }
  const [iter, ...slots] = await opt.getWeights();
  const out = [...vars, ...slots.map((s) => s.tensor)].map((t) => Float32Array.from(t.dataSync()));
  iter.tensor.dispose();
  opt.dispose();
  tf.dispose(vars);
  return out;
}

function expectSameBits(a: Float32Array[], b: Float32Array[]): void {
  expect(a.length).toBe(b.length);
  a.forEach((x, i) => {
    const same = Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(b[i].buffer, b[i].byteOffset, b[i].byteLength));
    if (!same) throw new Error(`tensor ${i} (${x.length} elements) differs: ${x.slice(0, 4)} vs ${b[i].slice(0, 4)}`);
  });
}

const CASES: Array<[string, Make, Make]> = [
  ['adam', () => new FusedAdamOptimizer(1e-3), () => tf.train.adam(1e-3)],
  ['adam (0.05, 0.8, 0.95, 1e-4)', () => new FusedAdamOptimizer(0.05, 0.8, 0.95, 1e-4), () => tf.train.adam(0.05, 0.8, 0.95, 1e-4)],
  ['sgd', () => new FusedSGDOptimizer(0.1), () => tf.train.sgd(0.1)],
  ['momentum', () => new FusedMomentumOptimizer(0.1, 0.9), () => tf.train.momentum(0.1, 0.9)],
  ['nesterov', () => new FusedMomentumOptimizer(0.05, 0.95, true), () => tf.train.momentum(0.05, 0.95, true)],
];

describe('fused optimizers on wasm', () => {
  it('the SIMD loops are active here (Node, wasm SIMD build)', async () => {
    await useBackend('wasm');
    expect(simdKernels(tf.backend())).not.toBeNull();
  });

  it.each(CASES)('%s: 8 steps equal the tfjs optimizer on wasm and the fused kernel on cpu, bit for bit', async (_, fused, plainOpt) => {
    const wasmFused = await train('wasm', fused, 8);
    expectSameBits(wasmFused, await train('wasm', plainOpt, 8));
    expectSameBits(wasmFused, await train('cpu', fused, 8));
    expect(wasmFused[0][0]).not.toBe(plain([1], 50).values[0]); // it trained
  });

  it('Adam: the SIMD loop and the JS loop give the same bits', async () => {
    const simd = await train('wasm', () => new FusedAdamOptimizer(1e-2), 5);
    registerWasmTrainingKernels({ simd: false });
    try {
      expectSameBits(simd, await train('wasm', () => new FusedAdamOptimizer(1e-2), 5));
    } finally {
      registerWasmTrainingKernels({ simd: true });
    }
  });

  it('one kernel call per step; 100 steps leave tensors, buffers and bytes unchanged', async () => {
    await useBackend('wasm');
    for (const [make, kernel] of [
      [() => new FusedAdamOptimizer(1e-3), FUSED_ADAM_KERNEL],
      [() => new FusedMomentumOptimizer(0.1, 0.9, true), FUSED_SGD_KERNEL],
      [() => new FusedSGDOptimizer(0.1), FUSED_SGD_KERNEL],
    ] as Array<[Make, string]>) {
      const vars = SHAPES.map((s, i) => tf.variable(tf.tensor(plain(s, 70 + i).values, s)));
      const grads = vars.map((v, i) => tf.tensor(grad(v.size, 90 + i), v.shape));
      const opt = make();
      const step = () => opt.applyGradients(vars.map((v, i) => ({ name: v.name, tensor: grads[i] })));
      step();
      const prof = await tf.profile(step);
      expect(prof.kernels.map((k) => k.name)).toEqual([kernel]);
      const before = memorySnapshot();
      for (let i = 0; i < 100; i++) step();
      expect(memorySnapshot()).toEqual(before);
      opt.dispose();
      tf.dispose([...vars, ...grads]);
    }
  });
});

// A small CNN (1-channel input: the first layer's im2col filter gradient; 16 channels: the SIMD
// MaxPoolGrad) trained 5 steps with the fused Adam and with tf.train.adam on wasm: same weights.
describe('small CNN training with the fused Adam on wasm', () => {
  const W = { w1: [3, 3, 1, 16], b1: [16], w2: [3, 3, 16, 8], b2: [8], d: [2 * 2 * 8, 3] } as const;
  const X = plain([6, 10, 10, 1], 501);
  const T = plain([6, 3], 502);
  async function weightsAfter(make: Make): Promise<Float32Array[]> {
    await useBackend('wasm');
    const v = Object.fromEntries(Object.entries(W).map(([k, s], i) => [k, tf.variable(tf.tensor(plain([...s], 510 + i).values, [...s]))])) as Record<keyof typeof W, tf.Variable>;
    const x = tf.tensor4d(X.values, [6, 10, 10, 1]);
    const t = tf.tensor2d(T.values, [6, 3]);
    const opt = make();
    const loss = () => {
      let h = tf.maxPool(tf.relu(tf.add(tf.conv2d(x, v.w1 as tf.Tensor4D, 1, 'same'), v.b1)) as tf.Tensor4D, 2, 2, 'valid'); // [6,5,5,16]
      h = tf.maxPool(tf.relu(tf.add(tf.conv2d(h, v.w2 as tf.Tensor4D, 1, 'same'), v.b2)) as tf.Tensor4D, 2, 2, 'valid'); // [6,2,2,8]
      return tf.mean(tf.square(tf.sub(tf.matMul(tf.reshape(h, [6, -1]), v.d as tf.Tensor2D), t))) as tf.Scalar;
    };
    for (let k = 0; k < 5; k++) tf.tidy(() => void opt.minimize(loss, false, Object.values(v)));
    const out = Object.values(v).map((w) => Float32Array.from(w.dataSync()));
    opt.dispose();
    tf.dispose([x, t, ...Object.values(v)]);
    return out;
  }

  it('ends with the same weights, bit for bit, as with tf.train.adam', async () => {
    expectSameBits(await weightsAfter(() => new FusedAdamOptimizer(1e-2)), await weightsAfter(() => tf.train.adam(1e-2)));
  });
});
