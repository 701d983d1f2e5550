/**
 * The hot-path replacements of #19: MaxPoolGrad (replaced), Sum (wrapped: leading-axes float32
 * reductions on the heap), Identity (shares data instead of copying); MaxPoolGrad's and Sum's wasm
 * SIMD loops against their JS loops (same bits). Property tests against the
 * cpu backend (<= 1e-5 relative), leak tests, an end-to-end conv+bias+ReLU+max-pool+dense
 * gradient against cpu, and the native kernels still usable after `replaceSlowKernels: false`.
 */
import fc from 'fast-check';
import { tidyValue } from '@tfkd/kd-core/testing';
import { FC_SEED, memorySnapshot, plain, relErr, runOn, tf, useBackend, type Plain } from './__fixtures__/harness';
import { initWasmBackend, registerWasmTrainingKernels } from './index';
import { FusedAdamOptimizer } from '@tfkd/kd-core';
import { simdKernels } from './simd';

beforeAll(async () => {
  expect(await initWasmBackend()).toBe(true);
});

/** Rounds to a few levels and clamps at 0 so that windows hold ties (as after a ReLU). */
function withTies(p: Plain): Plain {
  return { ...p, values: Float32Array.from(p.values, (v) => Math.max(0, Math.round(v * 3) / 3)) };
}

interface PoolCase {
  n: number;
  h: number;
  w: number;
  c: number;
  f: number;
  s: number;
  pad: 'same' | 'valid';
  ties: boolean;
  seed: number;
}

const poolArb = fc
  .record({
    n: fc.integer({ min: 1, max: 3 }),
    h: fc.integer({ min: 2, max: 9 }),
    w: fc.integer({ min: 2, max: 9 }),
    // 1–5: the JS loop alone and SIMD + a JS tail; 8/12/16: the SIMD loop alone.
    c: fc.oneof(fc.integer({ min: 1, max: 5 }), fc.constantFrom(8, 12, 16)),
    f: fc.integer({ min: 1, max: 3 }),
    s: fc.integer({ min: 1, max: 3 }),
    pad: fc.constantFrom<'same' | 'valid'>('same', 'valid'),
    ties: fc.boolean(),
    seed: fc.integer({ min: 1, max: 1 << 30 }),
  })
  .filter((c) => c.pad === 'same' || (c.h >= c.f && c.w >= c.f));

async function maxPoolGradBoth(c: PoolCase): Promise<{ wasm: Float64Array; cpu: Float64Array }> {
  const x0 = plain([c.n, c.h, c.w, c.c], c.seed);
  const x = c.ties ? withTies(x0) : x0;
  const attrs = { filterSize: c.f, strides: c.s, pad: c.pad };
  const y = await runOn('cpu', 'MaxPool', { x }, attrs);
  const output: Plain = { values: Float32Array.from(y.values), shape: y.shape, dtype: 'float32' };
  const dy = plain(y.shape, c.seed + 1);
  const inputs = { dy, input: x, output };
  const cpu = await runOn('cpu', 'MaxPoolGrad', inputs, attrs);
  const wasm = await runOn('wasm', 'MaxPoolGrad', inputs, attrs);
  expect(wasm.shape).toEqual([c.n, c.h, c.w, c.c]);
  return { wasm: wasm.values, cpu: cpu.values };
}

describe('MaxPoolGrad on wasm (replacement)', () => {
  it('equals cpu over random shapes, windows 1-3, strides 1-3, same/valid, with and without ties (<= 1e-5)', async () => {
    await fc.assert(
      fc.asyncProperty(poolArb, async (c) => {
        const { wasm, cpu } = await maxPoolGradBoth(c);
        expect(relErr(wasm, cpu)).toBeLessThanOrEqual(1e-5);
      }),
      { seed: FC_SEED, numRuns: 80 },
    );
  });

  it('the wasm SIMD loop (4 channels at a time) gives the JS loop\'s bits, with and without a JS channel tail', async () => {
    await useBackend('wasm');
    expect(simdKernels(tf.backend())).not.toBeNull();
    const cases: PoolCase[] = [
      { n: 2, h: 26, w: 26, c: 16, f: 2, s: 2, pad: 'valid', ties: true, seed: 21 }, // the small CNN's first pool
      { n: 2, h: 11, w: 11, c: 32, f: 2, s: 2, pad: 'valid', ties: false, seed: 22 }, // its second (odd size)
      { n: 3, h: 9, w: 7, c: 6, f: 3, s: 1, pad: 'same', ties: true, seed: 23 }, // overlapping windows, tail of 2
      { n: 1, h: 8, w: 9, c: 13, f: 3, s: 2, pad: 'same', ties: false, seed: 24 },
      { n: 2, h: 5, w: 5, c: 4, f: 3, s: 3, pad: 'same', ties: true, seed: 25 },
    ];
    for (const c of cases) {
      const simd = await maxPoolGradBoth(c);
      registerWasmTrainingKernels({ simd: false });
      try {
        const js = await maxPoolGradBoth(c);
        expect(Array.from(simd.wasm)).toEqual(Array.from(js.wasm));
      } finally {
        registerWasmTrainingKernels({ simd: true });
      }
      expect(relErr(simd.wasm, simd.cpu)).toBeLessThanOrEqual(1e-5);
    }
  });

  it('a ReLU-zero window sends the gradient to its first position, as cpu does', async () => {
    const { wasm, cpu } = await maxPoolGradBoth({ n: 1, h: 4, w: 4, c: 2, f: 2, s: 2, pad: 'valid', ties: true, seed: 5 });
    expect(Array.from(wasm)).toEqual(Array.from(cpu));
  });
});

describe('Sum on wasm (wrapped)', () => {
  const sumArb = fc.record({
    shape: fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 4 }),
    axesMask: fc.integer({ min: 0, max: 15 }),
    prefix: fc.integer({ min: 1, max: 3 }),
    usePrefix: fc.boolean(),
    keepDims: fc.boolean(),
    seed: fc.integer({ min: 1, max: 1 << 30 }),
  });
  it('equals cpu for prefix reductions (the heap path, <= 1e-5) and any other axes (native)', async () => {
    await fc.assert(
      fc.asyncProperty(sumArb, async ({ shape, axesMask, prefix, usePrefix, keepDims, seed }) => {
        // Make some shapes large enough for the heap path (>= 4096 elements).
        const big = shape.map((d, i) => (i === 0 ? d * 48 : d));
        const rank = big.length;
        const axis = usePrefix
          ? [...Array(Math.min(prefix, rank)).keys()]
          : [...Array(rank).keys()].filter((a) => axesMask & (1 << a));
        const x = plain(big, seed);
        const cpu = await runOn('cpu', 'Sum', { x }, { axis, keepDims });
        const wasm = await runOn('wasm', 'Sum', { x }, { axis, keepDims });
        expect(wasm.shape).toEqual(cpu.shape);
        // Ours (a prefix of the axes, float64 accumulators) to 1e-5; other axes run the native
        // kernel, whose float32 accumulation drifts a little further from cpu on long rows.
        const heapPath = axis.length > 0 && axis.length < rank && axis.every((a, i) => a === i) && x.values.length >= 4096;
        expect(relErr(wasm.values, cpu.values)).toBeLessThanOrEqual(heapPath ? 1e-5 : 1e-4);
      }),
      { seed: FC_SEED, numRuns: 60 },
    );
  });

  it('the wasm SIMD loop (float64 accumulators, 2 columns at a time) gives the JS loop\'s bits, odd column counts included', async () => {
    await useBackend('wasm');
    const cases: Array<[number[], number[]]> = [
      [[16, 26, 26, 16], [0, 1, 2]], // the small CNN's first bias gradient (batch 16)
      [[64, 11, 11, 32], [0, 1, 2]],
      [[300, 7, 13], [0]], // 91 columns: odd
      [[40, 9, 3, 5], [0, 1]], // 15 columns
      [[5000, 1], [0]], // one column: the JS loop alone
    ];
    for (const [shape, axis] of cases) {
      const x = plain(shape, shape.length * 7 + shape[0]);
      const simd = await runOn('wasm', 'Sum', { x }, { axis, keepDims: false });
      registerWasmTrainingKernels({ simd: false });
      try {
        const js = await runOn('wasm', 'Sum', { x }, { axis, keepDims: false });
        expect(Array.from(simd.values)).toEqual(Array.from(js.values));
      } finally {
        registerWasmTrainingKernels({ simd: true });
      }
      const cpu = await runOn('cpu', 'Sum', { x }, { axis, keepDims: false });
      expect(relErr(simd.values, cpu.values)).toBeLessThanOrEqual(1e-5);
    }
  });

  it('int32 and small inputs go to the native kernel', async () => {
    const xi: Plain = { values: Int32Array.from({ length: 8192 }, (_, i) => i % 7), shape: [2048, 4], dtype: 'int32' };
    const cpu = await runOn('cpu', 'Sum', { x: xi }, { axis: [0], keepDims: false });
    const wasm = await runOn('wasm', 'Sum', { x: xi }, { axis: [0], keepDims: false });
    expect(Array.from(wasm.values)).toEqual(Array.from(cpu.values));
  });
});

describe('Identity on wasm (shares data)', () => {
  it('returns the same values without a new data buffer, and both tensors can be disposed in any order', async () => {
    await useBackend('wasm');
    const before = memorySnapshot();
    const x = tf.tensor([1, 2, 3, 4], [2, 2]);
    const buffers = tf.memory().numDataBuffers;
    const y = tf.engine().runKernel('Identity', { x }, {}) as tf.Tensor;
    expect(tf.memory().numDataBuffers).toBe(buffers);
    x.dispose();
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3, 4]);
    y.dispose();
    expect(memorySnapshot()).toEqual(before);
  });
});

describe('restoring the native kernels after initialisation', () => {
  it('replaceSlowKernels: false gives working native MaxPoolGrad/Sum/Identity, and registering again ours', async () => {
    await useBackend('wasm');
    const c: PoolCase = { n: 2, h: 6, w: 6, c: 3, f: 2, s: 2, pad: 'valid', ties: false, seed: 9 };
    const ours = await maxPoolGradBoth(c);
    registerWasmTrainingKernels({ replaceSlowKernels: false });
    try {
      const native = await maxPoolGradBoth(c);
      expect(relErr(native.wasm, ours.wasm)).toBeLessThanOrEqual(1e-6);
      const s = await runOn('wasm', 'Sum', { x: plain([64, 8, 8], 3) }, { axis: [0, 1], keepDims: false });
      expect(s.shape).toEqual([8]);
    } finally {
      registerWasmTrainingKernels();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// End to end: conv+bias+ReLU -> max-pool -> conv+bias+ReLU (1 input channel first: the im2col
// filter-gradient path; then 6 channels: the batch-as-channels path) -> max-pool -> dense.

const SHAPES = { w1: [3, 3, 1, 6], b1: [6], w2: [3, 3, 6, 8], b2: [8], d: [2 * 2 * 8, 3] } as const;
const X = plain([5, 9, 9, 1], 301);
const T = plain([5, 3], 302);
type Vars = Record<keyof typeof SHAPES, tf.Variable>;

function makeVars(): Vars {
  return Object.fromEntries(
    Object.entries(SHAPES).map(([k, shape], i) => [k, tf.variable(tf.tensor(plain([...shape], 400 + i).values, [...shape]))]),
  ) as Vars;
}
function loss(v: Vars, x: tf.Tensor4D, t: tf.Tensor2D): tf.Scalar {
  const conv = (h: tf.Tensor4D, w: tf.Variable, b: tf.Variable) => tf.relu(tf.add(tf.conv2d(h, w as tf.Tensor4D, 1, 'same'), b)) as tf.Tensor4D;
  let h = tf.maxPool(conv(x, v.w1, v.b1), 2, 2, 'valid'); // [5,4,4,6]
  h = tf.maxPool(conv(h, v.w2, v.b2), 2, 2, 'same'); // [5,2,2,8]
  const logits = tf.matMul(tf.reshape(h, [5, -1]), v.d as tf.Tensor2D);
  return tf.mean(tf.square(tf.sub(logits, t)));
}
async function gradients(backend: 'cpu' | 'wasm'): Promise<Record<string, Float64Array>> {
  await useBackend(backend);
  const v = makeVars();
  const x = tf.tensor4d(X.values, X.shape as [number, number, number, number]);
  const t = tf.tensor2d(T.values, T.shape as [number, number]);
  const out = tidyValue(() => {
    const { grads } = tf.variableGrads(() => loss(v, x, t), Object.values(v));
    return Object.fromEntries(Object.entries(v).map(([k, variable]) => [k, Float64Array.from(grads[variable.name].dataSync())]));
  });
  tf.dispose([x, t, ...Object.values(v)]);
  return out;
}

describe('conv + bias + ReLU + max-pool network gradient on wasm', () => {
  it('equals cpu for every variable (<= 1e-5 relative) and is not trivially zero', async () => {
    const cpu = await gradients('cpu');
    const wasm = await gradients('wasm');
    for (const k of Object.keys(SHAPES)) {
      expect(relErr(wasm[k], cpu[k])).toBeLessThanOrEqual(1e-5);
      expect(Math.max(...cpu[k].map(Math.abs))).toBeGreaterThan(1e-4);
    }
  });

  it('100 training steps (fused Adam) leave tensors, buffers and bytes unchanged', async () => {
    await useBackend('wasm');
    const v = makeVars();
    const x = tf.tensor4d(X.values, X.shape as [number, number, number, number]);
    const t = tf.tensor2d(T.values, T.shape as [number, number]);
    const opt = new FusedAdamOptimizer(1e-3);
    const step = () => opt.minimize(() => loss(v, x, t), true, Object.values(v))?.dispose();
    step();
    const before = memorySnapshot();
    for (let i = 0; i < 100; i++) step();
    expect(memorySnapshot()).toEqual(before);
    opt.dispose();
    tf.dispose([x, t, ...Object.values(v)]);
  });

  it('100 calls of each replaced kernel leak nothing', async () => {
    await useBackend('wasm');
    const x = tf.tensor4d(plain([4, 8, 8, 3], 7).values, [4, 8, 8, 3]);
    const x6 = tf.tensor4d(plain([4, 8, 8, 6], 8).values, [4, 8, 8, 6]); // MaxPoolGrad: SIMD for 4 channels + JS for 2
    const before = memorySnapshot();
    for (let i = 0; i < 100; i++) {
      tf.tidy(() => {
        const y = tf.maxPool(x, 2, 2, 'valid');
        tf.engine().runKernel('MaxPoolGrad', { dy: y, input: x, output: y }, { filterSize: 2, strides: 2, pad: 'valid' });
        const y6 = tf.maxPool(x6, 3, 1, 'same');
        tf.engine().runKernel('MaxPoolGrad', { dy: y6, input: x6, output: y6 }, { filterSize: 3, strides: 1, pad: 'same' });
        tf.sum(tf.tile(x, [64, 1, 1, 1]), [0, 1, 2]);
        tf.engine().runKernel('Identity', { x }, {});
        tf.engine().runKernel('Conv2DBackpropFilter', { x, dy: tf.conv2d(x, tf.ones([3, 3, 3, 2]), 1, 'same') }, { strides: 1, pad: 'same', filterShape: [3, 3, 3, 2], dataFormat: 'NHWC' });
      });
    }
    expect(memorySnapshot()).toEqual(before);
    tf.dispose([x, x6]);
  });
});
