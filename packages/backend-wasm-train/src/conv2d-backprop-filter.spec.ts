import fc from 'fast-check';
import { FC_SEED, geometryOf, memorySnapshot, padAttr, PadSpec, plain, relErr, runOn, tf, useBackend } from './__fixtures__/harness';
import { conv2dFilterGradRef } from './__fixtures__/reference';
import { registerWasmTrainingKernels } from './register';
import { simdKernels } from './simd';

const K = 'Conv2DBackpropFilter';

interface Case {
  n: number;
  h: number;
  w: number;
  cin: number;
  cout: number;
  fh: number;
  fw: number;
  stride: number;
  dil: number;
  pad: PadSpec;
  seed: number;
}

function attrsOf(c: Case): Record<string, unknown> {
  return { strides: c.stride, pad: padAttr(c.pad), dataFormat: 'NHWC', filterShape: [c.fh, c.fw, c.cin, c.cout], ...(c.dil > 1 ? { dilations: c.dil } : {}) };
}

function geometry(c: Case) {
  return geometryOf([c.n, c.h, c.w, c.cin], [c.fh, c.fw, c.cin, c.cout], c.stride, c.dil, c.pad, false);
}

async function compare(c: Case): Promise<number> {
  const { oh, ow, top, left } = geometry(c);
  const x = plain([c.n, c.h, c.w, c.cin], c.seed);
  const dy = plain([c.n, oh, ow, c.cout], c.seed + 1);
  const got = await runOn('wasm', K, { x, dy }, attrsOf(c));
  expect(got.shape).toEqual([c.fh, c.fw, c.cin, c.cout]);
  const want =
    c.dil === 1
      ? (await runOn('cpu', K, { x, dy }, attrsOf(c))).values
      : conv2dFilterGradRef({ ...c, c: c.cin, oh, ow, top, left }, c.cout, x.values, dy.values);
  return relErr(got.values, want);
}

const caseArb = fc
  .record({
    n: fc.integer({ min: 1, max: 3 }),
    h: fc.integer({ min: 3, max: 10 }),
    w: fc.integer({ min: 3, max: 10 }),
    // SIMD GEMM: tiles of 4 input x 8/4/1 output channels and 1-row tiles for cin mod 4, so 1–9 x 1–20
    // covers every tile kind. (Composed path, `simd: false`: <= 4 at stride 1, dilation 1 is im2col, else the conv.)
    cin: fc.integer({ min: 1, max: 9 }),
    cout: fc.integer({ min: 1, max: 20 }),
    fh: fc.integer({ min: 1, max: 3 }),
    fw: fc.integer({ min: 1, max: 3 }),
    stride: fc.constantFrom(1, 2),
    dil: fc.constantFrom(1, 2),
    pad: fc.constantFrom<PadSpec>('same', 'valid', 0, 1, 2, [0, 2], [2, 1]),
    seed: fc.integer({ min: 1, max: 1 << 30 }),
  })
  .filter((c) => {
    const g = geometry(c);
    return g.oh >= 1 && g.ow >= 1;
  });

/** Runs `fn` with the SIMD loops off: the kernel then takes its composition of native kernels. */
async function composedPath<T>(fn: () => Promise<T>): Promise<T> {
  registerWasmTrainingKernels({ simd: false });
  try {
    return await fn();
  } finally {
    registerWasmTrainingKernels({ simd: true });
  }
}

/** Runs `fn` with dW's pixel blocks set to `kb` KB of x and dy (TFKD_DW_BLOCK_KB). */
async function withBlockKb<T>(kb: number, fn: () => Promise<T>): Promise<T> {
  const keep = process.env.TFKD_DW_BLOCK_KB;
  process.env.TFKD_DW_BLOCK_KB = String(kb);
  try {
    return await fn();
  } finally {
    if (keep == null) delete process.env.TFKD_DW_BLOCK_KB;
    else process.env.TFKD_DW_BLOCK_KB = keep;
  }
}

describe('Conv2DBackpropFilter on wasm', () => {
  it('runs the SIMD GEMM here (wasm SIMD available)', async () => {
    await useBackend('wasm');
    expect(simdKernels(tf.backend())?.dwTap).toEqual(expect.any(Function));
  });

  it('matches cpu (dilation 1) and a float64 reference (dilation 2) on random geometry', async () => {
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        expect(await compare(c)).toBeLessThanOrEqual(1e-5);
      }),
      { seed: FC_SEED, numRuns: 100 },
    );
  });

  it('matches cpu on random geometry with tiny and with whole-batch pixel blocks (block edges inside and across images)', async () => {
    for (const kb of [0.001, 1e6]) {
      await withBlockKb(kb, () =>
        fc.assert(
          fc.asyncProperty(caseArb, async (c) => {
            expect(await compare(c)).toBeLessThanOrEqual(1e-5);
          }),
          { seed: FC_SEED + 1, numRuns: 30 },
        ),
      );
    }
  });

  it('the composed path (SIMD off) still matches cpu on random geometry', async () => {
    await composedPath(() =>
      fc.assert(
        fc.asyncProperty(caseArb, async (c) => {
          expect(await compare(c)).toBeLessThanOrEqual(1e-5);
        }),
        { seed: FC_SEED + 2, numRuns: 30 },
      ),
    );
  });

  it.each<[string, Partial<Case>]>([
    ['batch 1, 1 channel, stride 2, same, odd sizes', { n: 1, h: 9, w: 7, cin: 1, cout: 16, stride: 2, pad: 'same' }],
    ['batch 1, odd sizes, stride 2, valid, 5 -> 12 channels', { n: 1, h: 11, w: 13, cin: 5, cout: 12, stride: 2, pad: 'valid' }],
    ['batch 1, 1 channel, 1 output channel', { n: 1, h: 5, w: 5, cin: 1, cout: 1, pad: 'same' }],
    ['a 1x1 image', { n: 2, h: 1, w: 1, cin: 4, cout: 8, fh: 1, fw: 1, pad: 'valid' }],
    ['a filter larger than the image, same padding', { n: 2, h: 3, w: 2, cin: 4, cout: 8, fh: 5, fw: 5, pad: 'same' }],
  ])('%s', async (_name, over) => {
    const c: Case = { n: 2, h: 7, w: 9, cin: 3, cout: 4, fh: 3, fw: 3, stride: 1, dil: 1, pad: 'same', seed: 13, ...over };
    expect(await compare(c)).toBeLessThanOrEqual(1e-5);
  });

  it.each<[string, [number, number, number, number], number, number, PadSpec]>([
    ['cnn-large conv1b (batch 4)', [4, 28, 28, 32], 32, 1, 'same'],
    ['cnn-large conv2a (batch 8)', [8, 14, 14, 32], 64, 1, 'same'],
    ['cnn-large conv3b (batch 8)', [8, 7, 7, 128], 128, 1, 'same'],
    ['cnn-large conv1a (batch 16)', [16, 28, 28, 1], 32, 1, 'same'],
    ['stride 2, valid, 24 -> 40 channels', [6, 15, 15, 24], 40, 2, 'valid'],
  ])('SIMD GEMM = the previous (composed) kernel and a float64 reference on %s', async (_name, xShape, cout, stride, pad) => {
    // (The cpu kernel takes minutes on these: the reference is the float64 loop of __fixtures__.)
    const [n, h, w, cin] = xShape;
    const c: Case = { n, h, w, cin, cout, fh: 3, fw: 3, stride, dil: 1, pad, seed: 17 };
    const g = geometry(c);
    const x = plain(xShape, 17);
    const dy = plain([n, g.oh, g.ow, cout], 18);
    const ours = await runOn('wasm', K, { x, dy }, attrsOf(c));
    const previous = await composedPath(() => runOn('wasm', K, { x, dy }, attrsOf(c)));
    const ref = conv2dFilterGradRef({ ...c, c: cin, ...g }, cout, x.values, dy.values);
    expect(relErr(ours.values, previous.values)).toBeLessThanOrEqual(1e-5);
    expect(relErr(ours.values, ref)).toBeLessThanOrEqual(1e-5);
    expect(relErr(previous.values, ref)).toBeLessThanOrEqual(1e-5);
  });

  it('matches cpu on a mid-sized layer (batch 1, 12x12, 16 -> 24 channels, same)', async () => {
    const c: Case = { n: 1, h: 12, w: 12, cin: 16, cout: 24, fh: 3, fw: 3, stride: 1, dil: 1, pad: 'same', seed: 19 };
    expect(await compare(c)).toBeLessThanOrEqual(1e-5);
  });

  it('SIMD GEMM: one kernel call (no transposes, no inner kernels), and no leak over 100 calls', async () => {
    await useBackend('wasm');
    const x = tf.tensor(plain([4, 12, 12, 32], 5).values, [4, 12, 12, 32]);
    const dy = tf.tensor(plain([4, 12, 12, 16], 6).values, [4, 12, 12, 16]);
    const attrs = { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, 32, 16] };
    const prof = await tf.profile(() => tf.engine().runKernel<tf.Tensor>(K, { x, dy }, attrs).dispose());
    expect(prof.kernels.map((k) => k.name)).toEqual([K]);
    const before = memorySnapshot();
    for (let i = 0; i < 100; i++) tf.engine().runKernel<tf.Tensor>(K, { x, dy }, attrs).dispose();
    expect(memorySnapshot()).toEqual(before);
    const out = tf.engine().runKernel<tf.Tensor>(K, { x, dy }, attrs);
    expect(out.shape).toEqual([3, 3, 32, 16]);
    expect(tf.memory().numDataBuffers).toBe(before.numDataBuffers + 1);
    out.dispose();
    tf.dispose([x, dy]);
  });

  it.each<[string, Partial<Case>]>([
    ['stride 2, same', { stride: 2, pad: 'same' }],
    ['stride 2, valid, input rows unused by the forward conv', { h: 8, w: 8, stride: 2, pad: 'valid' }],
    ['dilation 2, same', { dil: 2, pad: 'same' }],
    ['stride 2 and dilation 2, explicit asymmetric padding', { stride: 2, dil: 2, pad: [1, 2] }],
    ['numeric padding 1', { pad: 1 }],
    ['1x1 filter, stride 2', { fh: 1, fw: 1, stride: 2, pad: 'valid' }],
  ])('%s', async (_name, over) => {
    const c: Case = { n: 2, h: 7, w: 9, cin: 3, cout: 4, fh: 3, fw: 3, stride: 1, dil: 1, pad: 'same', seed: 7, ...over };
    expect(await compare(c)).toBeLessThanOrEqual(1e-5);
  });

  it('matches cpu on a larger reduction (batch 8, 20x20, 8->8 channels)', async () => {
    const c: Case = { n: 8, h: 20, w: 20, cin: 8, cout: 8, fh: 3, fw: 3, stride: 1, dil: 1, pad: 'valid', seed: 3 };
    expect(await compare(c)).toBeLessThanOrEqual(1e-5);
  });

  it.each<[string, Partial<Case>]>([
    ['a first layer: 1 channel, 28x28, valid (the small CNN)', { n: 6, h: 28, w: 28, cin: 1, cout: 16, pad: 'valid' }],
    ['a first layer: 1 channel, 28x28, same', { n: 4, h: 28, w: 28, cin: 1, cout: 32, pad: 'same' }],
    ['3 channels, 5x5 filter, explicit padding', { n: 3, h: 12, w: 11, cin: 3, cout: 6, fh: 5, fw: 5, pad: [2, 1] }],
    ['4 channels, padding larger than the filter reach', { n: 2, h: 4, w: 5, cin: 4, cout: 3, fh: 2, fw: 3, pad: 2 }],
  ])('%s (SIMD GEMM, and the composed path\'s im2col for Cin <= 4 at stride 1)', async (_name, over) => {
    const c: Case = { n: 2, h: 7, w: 9, cin: 1, cout: 4, fh: 3, fw: 3, stride: 1, dil: 1, pad: 'same', seed: 11, ...over };
    expect(await compare(c)).toBeLessThanOrEqual(1e-5);
    expect(await composedPath(() => compare(c))).toBeLessThanOrEqual(1e-5);
  });

  it('composed path, im2col: two kernel calls (itself and one BatchMatMul), and no leak over 100 calls', async () => {
    await useBackend('wasm');
    await composedPath(async () => {
      const x = tf.tensor(plain([4, 12, 12, 1], 5).values, [4, 12, 12, 1]);
      const dy = tf.tensor(plain([4, 10, 10, 8], 6).values, [4, 10, 10, 8]);
      const attrs = { strides: 1, pad: 'valid', dataFormat: 'NHWC', filterShape: [3, 3, 1, 8] };
      const prof = await tf.profile(() => tf.engine().runKernel<tf.Tensor>(K, { x, dy }, attrs).dispose());
      expect(prof.kernels.map((k) => k.name)).toEqual(['BatchMatMul', K]);
      const before = memorySnapshot();
      for (let i = 0; i < 100; i++) tf.engine().runKernel<tf.Tensor>(K, { x, dy }, attrs).dispose();
      expect(memorySnapshot()).toEqual(before);
      const out = tf.engine().runKernel<tf.Tensor>(K, { x, dy }, attrs);
      expect(out.shape).toEqual([3, 3, 1, 8]);
      expect(tf.memory().numDataBuffers).toBe(before.numDataBuffers + 1);
      out.dispose();
      tf.dispose([x, dy]);
    });
  });

  it('rejects NCHW with a KdError that says how to fix it', async () => {
    await useBackend('wasm');
    const x = tf.zeros([1, 2, 5, 5]);
    const dy = tf.zeros([1, 3, 3, 3]);
    let err: unknown;
    try {
      tf.engine().runKernel(K, { x, dy }, { strides: 1, pad: 'valid', dataFormat: 'NCHW', filterShape: [3, 3, 2, 3] });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ name: 'KdError', code: 'KD_BACKEND_UNAVAILABLE' });
    expect((err as { fix?: string }).fix).toMatch(/NHWC/);
    tf.dispose([x, dy]);
  });

  it('does not leak over 100 calls (tensors, data buffers, bytes)', async () => {
    await useBackend('wasm');
    const x = tf.tensor(plain([2, 9, 9, 3], 1).values, [2, 9, 9, 3]);
    const dy = tf.tensor(plain([2, 5, 5, 4], 2).values, [2, 5, 5, 4]);
    const attrs = { strides: 2, pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, 3, 4] };
    tf.engine().runKernel<tf.Tensor>(K, { x, dy }, attrs).dispose();
    const before = memorySnapshot();
    for (let i = 0; i < 100; i++) tf.engine().runKernel<tf.Tensor>(K, { x, dy }, attrs).dispose();
    expect(memorySnapshot()).toEqual(before);
    // The returned tensor owns exactly one new buffer.
    const out = tf.engine().runKernel<tf.Tensor>(K, { x, dy }, attrs);
    expect(tf.memory().numDataBuffers).toBe(before.numDataBuffers + 1);
    out.dispose();
    tf.dispose([x, dy]);
  });
});
