import fc from 'fast-check';
import { FC_SEED, geometryOf, memorySnapshot, padAttr, PadSpec, plain, relErr, runOn, tf, useBackend } from './__fixtures__/harness';
import { depthwiseInputGradRef } from './__fixtures__/reference';
import { depthwiseInputStrategy } from './depthwise-backprop-input';

const K = 'DepthwiseConv2dNativeBackpropInput';

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

const attrsOf = (c: Case) => ({ strides: c.stride, dilations: c.dil, pad: padAttr(c.pad), inputShape: [c.n, c.h, c.w, c.c] });
const geometry = (c: Case) => geometryOf([c.n, c.h, c.w, c.c], [c.fh, c.fw, c.c, c.mult], c.stride, c.dil, c.pad, true);

async function compare(c: Case): Promise<number> {
  const g = geometry(c);
  const dy = plain([c.n, g.oh, g.ow, c.c * c.mult], c.seed);
  const filter = plain([c.fh, c.fw, c.c, c.mult], c.seed + 1);
  const got = await runOn('wasm', K, { dy, filter }, attrsOf(c));
  expect(got.shape).toEqual([c.n, c.h, c.w, c.c]);
  const want =
    c.dil === 1
      ? (await runOn('cpu', K, { dy, filter }, attrsOf(c))).values
      : depthwiseInputGradRef({ ...c, ...g }, c.mult, dy.values, filter.values);
  return relErr(got.values, want);
}

const caseArb = (minN: number, maxN: number, minHW: number, maxHW: number) =>
  fc
    .record({
      n: fc.integer({ min: minN, max: maxN }),
      h: fc.integer({ min: minHW, max: maxHW }),
      w: fc.integer({ min: minHW, max: maxHW }),
      c: fc.integer({ min: 1, max: 5 }),
      mult: fc.constantFrom(1, 2),
      fh: fc.integer({ min: 1, max: 3 }),
      fw: fc.integer({ min: 1, max: 3 }),
      stride: fc.constantFrom(1, 2),
      dil: fc.constantFrom(1, 2),
      pad: fc.constantFrom<PadSpec>('same', 'valid', 1, [0, 2]),
      seed: fc.integer({ min: 1, max: 1 << 30 }),
    })
    .filter((c) => (c.stride === 1 || c.dil === 1) && geometry(c).oh >= 1 && geometry(c).ow >= 1);

describe('DepthwiseConv2dNativeBackpropInput on wasm', () => {
  afterEach(() => {
    depthwiseInputStrategy.mode = 'auto';
  });

  it.each(['loop', 'native'] as const)('%s implementation matches cpu / a float64 reference', async (mode) => {
    depthwiseInputStrategy.mode = mode;
    await fc.assert(
      fc.asyncProperty(caseArb(1, 3, 3, 10), async (c) => {
        expect(await compare(c)).toBeLessThanOrEqual(1e-5);
      }),
      { seed: FC_SEED, numRuns: 40 },
    );
  });

  it('auto mode matches cpu on larger problems', async () => {
    await fc.assert(
      fc.asyncProperty(caseArb(4, 6, 12, 18), async (c) => {
        expect(await compare(c)).toBeLessThanOrEqual(1e-5);
      }),
      { seed: FC_SEED + 1, numRuns: 15 },
    );
  });

  it.each<[string, Partial<Case>]>([
    ['multiplier 2, stride 2, same', { mult: 2, stride: 2, pad: 'same' }],
    ['multiplier 1, dilation 2, valid', { dil: 2, pad: 'valid' }],
    ['explicit padding larger than the filter reach', { pad: [3, 3], fh: 2, fw: 2 }],
    ['multiplier 2, stride 2, small', { n: 1, h: 5, w: 5, c: 2, mult: 2, stride: 2 }],
  ])('%s', async (_name, over) => {
    const c: Case = { n: 8, h: 16, w: 16, c: 8, mult: 1, fh: 3, fw: 3, stride: 1, dil: 1, pad: 'same', seed: 5, ...over };
    expect(await compare(c)).toBeLessThanOrEqual(1e-5);
  });

  it.each([
    ['native', [8, 16, 16, 8]],
    ['loop', [1, 4, 4, 2]],
  ])('does not leak over 100 calls (%s path)', async (mode, shape) => {
    depthwiseInputStrategy.mode = mode as 'native' | 'loop';
    await useBackend('wasm');
    const [n, h, w, c] = shape as number[];
    const dy = tf.tensor(plain([n, h / 2, w / 2, c * 2], 1).values, [n, h / 2, w / 2, c * 2]);
    const filter = tf.tensor(plain([3, 3, c, 2], 2).values, [3, 3, c, 2]);
    const attrs = { strides: 2, dilations: 1, pad: 'same', inputShape: [n, h, w, c] };
    tf.engine().runKernel<tf.Tensor>(K, { dy, filter }, attrs).dispose();
    const before = memorySnapshot();
    for (let i = 0; i < 100; i++) tf.engine().runKernel<tf.Tensor>(K, { dy, filter }, attrs).dispose();
    expect(memorySnapshot()).toEqual(before);
    tf.dispose([dy, filter]);
  });
});
