import fc from 'fast-check';
import { FC_SEED, geometryOf, memorySnapshot, padAttr, PadSpec, plain, relErr, runOn, tf, useBackend } from './__fixtures__/harness';
import { conv2dFilterGradRef } from './__fixtures__/reference';

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
    cin: fc.integer({ min: 1, max: 7 }), // <= 4 at stride 1, dilation 1: the im2col path; above: the batch-as-channels conv
    cout: fc.integer({ min: 1, max: 5 }),
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

describe('Conv2DBackpropFilter on wasm', () => {
  it('matches cpu (dilation 1) and a float64 reference (dilation 2) on random geometry', async () => {
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        expect(await compare(c)).toBeLessThanOrEqual(1e-5);
      }),
      { seed: FC_SEED, numRuns: 60 },
    );
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
  ])('im2col path (Cin <= 4, stride 1): %s', async (_name, over) => {
    const c: Case = { n: 2, h: 7, w: 9, cin: 1, cout: 4, fh: 3, fw: 3, stride: 1, dil: 1, pad: 'same', seed: 11, ...over };
    expect(await compare(c)).toBeLessThanOrEqual(1e-5);
  });

  it('im2col path: two kernel calls (itself and one BatchMatMul), and no leak over 100 calls', async () => {
    await useBackend('wasm');
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
