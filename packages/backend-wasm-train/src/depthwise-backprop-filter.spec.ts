import fc from 'fast-check';
import { FC_SEED, geometryOf, memorySnapshot, padAttr, PadSpec, plain, relErr, runOn, tf, useBackend } from './__fixtures__/harness';
import { depthwiseFilterGradRef } from './__fixtures__/reference';

const K = 'DepthwiseConv2dNativeBackpropFilter';

interface Case {
  n: number;
  h: number;
  w: number;
  c: number;
  mult: number;
  fh: number;
  fw: number;
  stride: number;
  dil: number;
  pad: PadSpec;
  seed: number;
}

const attrsOf = (c: Case) => ({
  strides: c.stride,
  dilations: c.dil,
  pad: padAttr(c.pad),
  filterShape: [c.fh, c.fw, c.c, c.mult],
});
const geometry = (c: Case) => geometryOf([c.n, c.h, c.w, c.c], [c.fh, c.fw, c.c, c.mult], c.stride, c.dil, c.pad, true);

/** cpu for dilation 1; for dilation 2 the cpu kernel ignores dilations, so a float64 loop instead. */
async function compare(c: Case): Promise<number> {
  const g = geometry(c);
  const x = plain([c.n, c.h, c.w, c.c], c.seed);
  const dy = plain([c.n, g.oh, g.ow, c.c * c.mult], c.seed + 1);
  const got = await runOn('wasm', K, { x, dy }, attrsOf(c));
  expect(got.shape).toEqual([c.fh, c.fw, c.c, c.mult]);
  const want = c.dil === 1 ? (await runOn('cpu', K, { x, dy }, attrsOf(c))).values : depthwiseFilterGradRef({ ...c, ...g }, c.mult, x.values, dy.values);
  return relErr(got.values, want);
}

const caseArb = fc
  .record({
    n: fc.integer({ min: 1, max: 3 }),
    h: fc.integer({ min: 3, max: 10 }),
    w: fc.integer({ min: 3, max: 10 }),
    c: fc.integer({ min: 1, max: 5 }),
    mult: fc.constantFrom(1, 2),
    fh: fc.integer({ min: 1, max: 3 }),
    fw: fc.integer({ min: 1, max: 3 }),
    stride: fc.constantFrom(1, 2),
    dil: fc.constantFrom(1, 2),
    pad: fc.constantFrom<PadSpec>('same', 'valid', 1, [0, 2]),
    seed: fc.integer({ min: 1, max: 1 << 30 }),
  })
  // tfjs's depthwise conv needs stride 1 or dilation 1.
  .filter((c) => (c.stride === 1 || c.dil === 1) && geometry(c).oh >= 1 && geometry(c).ow >= 1);

describe('DepthwiseConv2dNativeBackpropFilter on wasm', () => {
  it('matches cpu / a float64 reference over random geometry and channel multipliers 1 and 2', async () => {
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        expect(await compare(c)).toBeLessThanOrEqual(1e-5);
      }),
      { seed: FC_SEED, numRuns: 60 },
    );
  });

  it.each<[string, Partial<Case>]>([
    ['multiplier 2, stride 2, same', { mult: 2, stride: 2, pad: 'same' }],
    ['multiplier 1, dilation 2, valid', { dil: 2, pad: 'valid' }],
    ['multiplier 2, dilation 2, same', { mult: 2, dil: 2, pad: 'same' }],
  ])('%s', async (_name, over) => {
    const c: Case = { n: 2, h: 9, w: 8, c: 3, mult: 1, fh: 3, fw: 3, stride: 1, dil: 1, pad: 'same', seed: 11, ...over };
    expect(await compare(c)).toBeLessThanOrEqual(1e-5);
  });

  it('does not leak over 100 calls', async () => {
    await useBackend('wasm');
    const x = tf.tensor(plain([2, 8, 8, 3], 1).values, [2, 8, 8, 3]);
    const dy = tf.tensor(plain([2, 4, 4, 6], 2).values, [2, 4, 4, 6]);
    const attrs = { strides: 2, dilations: 1, pad: 'same', filterShape: [3, 3, 3, 2] };
    tf.engine().runKernel<tf.Tensor>(K, { x, dy }, attrs).dispose();
    const before = memorySnapshot();
    for (let i = 0; i < 100; i++) tf.engine().runKernel<tf.Tensor>(K, { x, dy }, attrs).dispose();
    expect(memorySnapshot()).toEqual(before);
    tf.dispose([x, dy]);
  });
});
