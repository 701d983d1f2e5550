import fc from 'fast-check';
import { FC_SEED, geometryOf, memorySnapshot, padAttr, PadSpec, plain, relErr, runOn, tf, useBackend } from './__fixtures__/harness';
import { conv2dInputGradRef } from './__fixtures__/reference';

const K = 'Conv2DBackpropInput';

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

const attrsOf = (c: Case) => ({
  strides: c.stride,
  pad: padAttr(c.pad),
  dataFormat: 'NHWC',
  inputShape: [c.n, c.h, c.w, c.cin],
  ...(c.dil > 1 ? { dilations: c.dil } : {}),
});
const geometry = (c: Case) => geometryOf([c.n, c.h, c.w, c.cin], [c.fh, c.fw, c.cin, c.cout], c.stride, c.dil, c.pad, false);

async function compare(c: Case): Promise<number> {
  const g = geometry(c);
  const dy = plain([c.n, g.oh, g.ow, c.cout], c.seed);
  const filter = plain([c.fh, c.fw, c.cin, c.cout], c.seed + 1);
  const got = await runOn('wasm', K, { dy, filter }, attrsOf(c));
  expect(got.shape).toEqual([c.n, c.h, c.w, c.cin]);
  const want =
    c.dil === 1
      ? (await runOn('cpu', K, { dy, filter }, attrsOf(c))).values
      : conv2dInputGradRef({ ...c, c: c.cin, ...g }, c.cout, dy.values, filter.values);
  return relErr(got.values, want);
}

const caseArb = fc
  .record({
    n: fc.integer({ min: 1, max: 3 }),
    h: fc.integer({ min: 3, max: 10 }),
    w: fc.integer({ min: 3, max: 10 }),
    cin: fc.integer({ min: 1, max: 4 }),
    cout: fc.integer({ min: 1, max: 5 }),
    fh: fc.integer({ min: 1, max: 3 }),
    fw: fc.integer({ min: 1, max: 3 }),
    stride: fc.constantFrom(1, 2),
    dil: fc.constantFrom(1, 2),
    pad: fc.constantFrom<PadSpec>('same', 'valid', 0, 1, 2, [0, 2], [2, 1]),
    seed: fc.integer({ min: 1, max: 1 << 30 }),
  })
  .filter((c) => geometry(c).oh >= 1 && geometry(c).ow >= 1);

describe('Conv2DBackpropInput on wasm (replacement of the native kernel)', () => {
  it('matches cpu (dilation 1) and a float64 reference (dilation 2) on random geometry', async () => {
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        expect(await compare(c)).toBeLessThanOrEqual(1e-5);
      }),
      { seed: FC_SEED, numRuns: 60 },
    );
  });

  it.each<[string, Partial<Case>]>([
    ['stride 2, valid, trailing input rows the forward conv never read', { h: 8, w: 8, stride: 2, pad: 'valid' }],
    ['stride 2 and dilation 2, explicit asymmetric padding', { stride: 2, dil: 2, pad: [1, 2] }],
    ['padding larger than the filter reach', { pad: [3, 3], fh: 2, fw: 2 }],
    ['larger: batch 8, 16x16, 8->16 channels, stride 2, same', { n: 8, h: 16, w: 16, cin: 8, cout: 16, stride: 2 }],
  ])('%s', async (_name, over) => {
    const c: Case = { n: 2, h: 7, w: 9, cin: 3, cout: 4, fh: 3, fw: 3, stride: 1, dil: 1, pad: 'same', seed: 9, ...over };
    expect(await compare(c)).toBeLessThanOrEqual(1e-5);
  });

  it('does not leak over 100 calls', async () => {
    await useBackend('wasm');
    const dy = tf.tensor(plain([2, 5, 5, 4], 1).values, [2, 5, 5, 4]);
    const filter = tf.tensor(plain([3, 3, 3, 4], 2).values, [3, 3, 3, 4]);
    const attrs = { strides: 2, pad: 'same', dataFormat: 'NHWC', inputShape: [2, 9, 9, 3] };
    tf.engine().runKernel<tf.Tensor>(K, { dy, filter }, attrs).dispose();
    const before = memorySnapshot();
    for (let i = 0; i < 100; i++) tf.engine().runKernel<tf.Tensor>(K, { dy, filter }, attrs).dispose();
    expect(memorySnapshot()).toEqual(before);
    tf.dispose([dy, filter]);
  });
});
