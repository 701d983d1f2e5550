import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { FUSED_ADAM_KERNEL, FUSED_SGD_KERNEL } from './fused-kernels';
import {
  FusedAdamOptimizer,
  FusedMomentumOptimizer,
  FusedSGDOptimizer,
  makeOptimizer,
  setLearningRate,
} from './optim';
import { TrainSpec } from './spec';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('makeOptimizer', () => {
  it.each([
    ['sgd + momentum', { name: 'sgd', lr: 0.1, momentum: 0.9 }],
    ['sgd + nesterov', { name: 'sgd', lr: 0.1, momentum: 0.9, nesterov: true }],
    ['plain sgd', { name: 'sgd', lr: 0.1, momentum: 0 }],
    ['adam', { name: 'adam', lr: 0.01 }],
  ] as const)('%s: dispose() frees every tensor the optimizer made (tfjs MomentumOptimizer leaks its lr scalar), fused or not', (_, optimizer) => {
    for (const fused of [true, false]) {
      const w = tf.variable(tf.tensor1d([1, 2, 3]));
      const before = tf.memory().numTensors;
      const opt = makeOptimizer(TrainSpec.parse({ optimizer }), { fused });
      for (let step = 0; step < 3; step++) {
        setLearningRate(opt, 0.1 / (step + 1));
        tf.tidy(() => void opt.minimize(() => tf.sum(tf.square(w)) as tf.Scalar, false, [w]));
      }
      expect(tf.memory().numTensors).toBeGreaterThan(before);
      opt.dispose();
      expect(tf.memory().numTensors).toBe(before);
      // the weights did move: the optimizer worked before it was freed
      expect(Array.from(w.dataSync())[0]).toBeLessThan(1);
      w.dispose();
    }
  });

  it('is fused by default, with tfjs class names (checkpoints record them)', () => {
    const adam = makeOptimizer(TrainSpec.parse({ optimizer: { name: 'adam', lr: 0.01 } }));
    const mom = makeOptimizer(TrainSpec.parse({ optimizer: { name: 'sgd', lr: 0.1, momentum: 0.9 } }));
    const sgd = makeOptimizer(TrainSpec.parse({ optimizer: { name: 'sgd', lr: 0.1, momentum: 0 } }));
    expect([adam, mom, sgd].map((o) => o.constructor)).toEqual([FusedAdamOptimizer, FusedMomentumOptimizer, FusedSGDOptimizer]);
    expect([adam, mom, sgd].map((o) => o.getClassName())).toEqual(['Adam', 'Momentum', 'SGD']);
    const plain = makeOptimizer(TrainSpec.parse({ optimizer: { name: 'adam', lr: 0.01 } }), { fused: false });
    expect(plain.constructor).toBe(tf.AdamOptimizer);
    [adam, mom, sgd, plain].forEach((o) => o.dispose());
  });
});

// ---------------------------------------------------------------------------------------------
// The fused optimizers against tfjs's own, bit for bit.

/** Deterministic values with a spread of magnitudes (1e-6 … 10), both signs, and some exact zeros. */
function values(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0;
    const u = s / 4294967296;
    const mag = Math.pow(10, -6 + 7 * ((s >>> 7) % 1000) / 1000);
    out[i] = i % 17 === 5 ? 0 : (u < 0.5 ? -1 : 1) * mag * (0.5 + u);
  }
  return out;
}

const SHAPES = [[3, 3, 1, 5], [5], [7, 4], [1]];

/** Runs `steps` steps of `make()` on fresh variables with fixed gradients per step; returns every variable's and slot's bits. */
async function run(make: () => tf.Optimizer, steps: number, opts: { skip?: number; lrs?: number[] } = {}): Promise<{ weights: Float32Array[]; slots: Float32Array[]; iterations: number }> {
  const vars = SHAPES.map((s, i) => tf.variable(tf.tensor(values(tf.util.sizeFromShape(s), 10 + i), s)));
  const opt = make();
  for (let k = 0; k < steps; k++) {
    if (opts.lrs) setLearningRate(opt, opts.lrs[k % opts.lrs.length]);
    tf.tidy(() => {
      // Array form, so that a variable without a gradient (odd steps) keeps its position (slots are by position).
      const list = vars.map((v, i) => ({
        name: v.name,
        tensor: i === opts.skip && k % 2 === 1 ? (null as unknown as tf.Tensor) : tf.tensor(values(v.size, 1000 * k + i), v.shape),
      }));
      opt.applyGradients(k % 3 === 2 && opts.skip == null ? Object.fromEntries(list.map((e) => [e.name, e.tensor])) : list);
    });
  }
  const [iter, ...slots] = await opt.getWeights();
  const out = {
    weights: vars.map((v) => Float32Array.from(v.dataSync())),
    slots: slots.map((s) => Float32Array.from(s.tensor.dataSync())),
    iterations: iter.tensor.dataSync()[0],
  };
  iter.tensor.dispose();
  opt.dispose();
  tf.dispose(vars);
  return out;
}

function expectSameBits(a: Float32Array[], b: Float32Array[]): void {
  expect(a.length).toBe(b.length);
  a.forEach((x, i) => expect(Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(b[i].buffer, b[i].byteOffset, b[i].byteLength))).toBe(true));
}

describe('fused optimizers equal the tfjs optimizers bit for bit (cpu)', () => {
  it.each([
    ['adam', () => new FusedAdamOptimizer(1e-3), () => tf.train.adam(1e-3)],
    ['adam, other betas and epsilon', () => new FusedAdamOptimizer(0.05, 0.8, 0.95, 1e-4), () => tf.train.adam(0.05, 0.8, 0.95, 1e-4)],
    ['sgd', () => new FusedSGDOptimizer(0.1), () => tf.train.sgd(0.1)],
    ['momentum', () => new FusedMomentumOptimizer(0.1, 0.9), () => tf.train.momentum(0.1, 0.9)],
    ['nesterov', () => new FusedMomentumOptimizer(0.07, 0.95, true), () => tf.train.momentum(0.07, 0.95, true)],
  ])('%s: 12 steps with changing learning rates and a variable without a gradient on odd steps', async (_, fused, plain) => {
    const opts = { skip: 1, lrs: [0.01, 0.003, 0.1] };
    const a = await run(fused, 12, opts);
    const b = await run(plain, 12, opts);
    expectSameBits(a.weights, b.weights);
    expectSameBits(a.slots, b.slots);
    expect(a.iterations).toBe(b.iterations);
    // the weights moved
    expect(a.weights[0][0]).not.toBe(values(1, 10)[0]);
  });

  it('one kernel call per step for all variables (tfjs Adam: ~15 per variable)', async () => {
    const vars = SHAPES.map((s, i) => tf.variable(tf.tensor(values(tf.util.sizeFromShape(s), 20 + i), s)));
    const grads = () => Object.fromEntries(vars.map((v, i) => [v.name, tf.tensor(values(v.size, 30 + i), v.shape)]));
    const kernels = async (opt: tf.Optimizer) => {
      tf.tidy(() => opt.applyGradients(grads())); // slots are created on the first step
      const prof = await tf.profile(() => tf.tidy(() => opt.applyGradients(grads())));
      opt.dispose();
      return prof.kernels.map((k) => k.name).filter((n) => n !== 'Identity'); // tf.tensor of the gradients
    };
    expect(await kernels(new FusedAdamOptimizer(1e-3))).toEqual([FUSED_ADAM_KERNEL]);
    expect(await kernels(new FusedMomentumOptimizer(0.1, 0.9))).toEqual([FUSED_SGD_KERNEL]);
    expect((await kernels(tf.train.adam(1e-3))).length).toBeGreaterThanOrEqual(14 * vars.length);
    tf.dispose(vars);
  });

  it('leaks nothing over 50 steps, and the engine check for leaked data ids passes', () => {
    tf.env().set('IS_TEST', true);
    try {
      for (const make of [() => new FusedAdamOptimizer(1e-3), () => new FusedMomentumOptimizer(0.1, 0.9, true), () => new FusedSGDOptimizer(0.1)]) {
        const w = tf.variable(tf.tensor2d(values(12, 3), [3, 4]));
        const before = tf.memory().numTensors;
        const opt = make();
        const step = () => tf.tidy(() => void opt.minimize(() => tf.sum(tf.square(w)) as tf.Scalar, false, [w]));
        step();
        const after1 = tf.memory();
        for (let i = 0; i < 50; i++) step();
        expect(tf.memory().numTensors).toBe(after1.numTensors);
        expect(tf.memory().numBytes).toBe(after1.numBytes);
        opt.dispose();
        expect(tf.memory().numTensors).toBe(before);
        w.dispose();
      }
    } finally {
      tf.env().set('IS_TEST', false);
    }
  });

  it('checkpoint: getWeights after 5 steps into a fresh optimizer (setWeights + accBeta as the engine restores it), 7 more = 12 uninterrupted', async () => {
    for (const [make, adam] of [
      [() => new FusedAdamOptimizer(1e-2), true],
      [() => new FusedMomentumOptimizer(0.1, 0.9), false],
    ] as const) {
      const whole = await run(make, 12);
      // Interrupted: 5 steps, save, restore into a new optimizer, 7 steps.
      const vars = SHAPES.map((s, i) => tf.variable(tf.tensor(values(tf.util.sizeFromShape(s), 10 + i), s)));
      const stepWith = (opt: tf.Optimizer, k: number) =>
        tf.tidy(() => opt.applyGradients(Object.fromEntries(vars.map((v, i) => [v.name, tf.tensor(values(v.size, 1000 * k + i), v.shape)]))));
      const first = make();
      for (let k = 0; k < 5; k++) stepWith(first, k);
      const saved = (await first.getWeights()).map((w) => ({ name: w.name, tensor: tf.clone(w.tensor) }));
      const acc = adam ? ['accBeta1', 'accBeta2'].map((k) => (first as unknown as Record<string, tf.Variable>)[k].dataSync()[0]) : [];
      first.dispose();
      const second = make();
      await second.setWeights(saved);
      saved.forEach((w) => w.tensor.dispose());
      if (adam) tf.tidy(() => ['accBeta1', 'accBeta2'].forEach((k, i) => (second as unknown as Record<string, tf.Variable>)[k].assign(tf.scalar(acc[i]))));
      for (let k = 5; k < 12; k++) stepWith(second, k);
      expectSameBits(
        vars.map((v) => Float32Array.from(v.dataSync())),
        whole.weights,
      );
      second.dispose();
      tf.dispose(vars);
    }
  });

  it('a tfjs Adam checkpoint continues in the fused optimizer exactly as in tfjs Adam', async () => {
    const cont = async (make: () => tf.Optimizer) => {
      const vars = SHAPES.map((s, i) => tf.variable(tf.tensor(values(tf.util.sizeFromShape(s), 10 + i), s)));
      const stepWith = (opt: tf.Optimizer, k: number) =>
        tf.tidy(() => opt.applyGradients(Object.fromEntries(vars.map((v, i) => [v.name, tf.tensor(values(v.size, 1000 * k + i), v.shape)]))));
      const a = tf.train.adam(1e-2);
      for (let k = 0; k < 4; k++) stepWith(a, k);
      const saved = (await a.getWeights()).map((w) => ({ name: w.name, tensor: tf.clone(w.tensor) }));
      a.dispose();
      const b = make();
      await b.setWeights(saved);
      saved.forEach((w) => w.tensor.dispose());
      for (let k = 4; k < 8; k++) stepWith(b, k);
      b.dispose();
      const out = vars.map((v) => Float32Array.from(v.dataSync()));
      tf.dispose(vars);
      return out;
    };
    expectSameBits(await cont(() => new FusedAdamOptimizer(1e-2)), await cont(() => tf.train.adam(1e-2)));
  });

  it('falls back to the tfjs arithmetic where the backend has no fused kernel (same bits)', async () => {
    const kernel = tf.getKernel(FUSED_ADAM_KERNEL, 'cpu');
    const a = await run(() => new FusedAdamOptimizer(1e-3), 4);
    tf.unregisterKernel(FUSED_ADAM_KERNEL, 'cpu');
    try {
      const b = await run(() => new FusedAdamOptimizer(1e-3), 4);
      expectSameBits(a.weights, b.weights);
      const prof = await tf.profile(() => run(() => new FusedAdamOptimizer(1e-3), 2));
      expect(prof.kernels.map((k) => k.name)).not.toContain(FUSED_ADAM_KERNEL);
    } finally {
      if (kernel) tf.registerKernel(kernel);
    }
  });
});
