import fc from 'fast-check';
import { FC_SEED, memorySnapshot, plain, Plain, relErr, runOn, tf, useBackend } from './__fixtures__/harness';
import { tidyValue } from '@tfkd/kd-core/testing';

const K = 'UnsortedSegmentSum';

function ids(count: number, numSegments: number, seed: number, outOfRange: boolean): Plain {
  const v = new Int32Array(count);
  let s = seed;
  for (let i = 0; i < count; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    v[i] = (s >>> 8) % (numSegments + (outOfRange ? 2 : 0)) - (outOfRange ? 1 : 0);
  }
  return { values: v, shape: [count], dtype: 'int32' };
}

describe('UnsortedSegmentSum on wasm', () => {
  it('matches cpu over random shapes, segment counts and out-of-range ids', async () => {
    const arb = fc.record({
      count: fc.integer({ min: 1, max: 40 }),
      rest: fc.array(fc.integer({ min: 1, max: 5 }), { maxLength: 2 }),
      numSegments: fc.integer({ min: 1, max: 12 }),
      outOfRange: fc.boolean(),
      seed: fc.integer({ min: 1, max: 1 << 30 }),
    });
    await fc.assert(
      fc.asyncProperty(arb, async ({ count, rest, numSegments, outOfRange, seed }) => {
        const x = plain([count, ...rest], seed);
        const segmentIds = ids(count, numSegments, seed, outOfRange);
        const got = await runOn('wasm', K, { x, segmentIds }, { numSegments });
        const want = await runOn('cpu', K, { x, segmentIds }, { numSegments });
        expect(got.shape).toEqual([numSegments, ...rest]);
        expect(relErr(got.values, want.values)).toBeLessThanOrEqual(1e-5);
      }),
      { seed: FC_SEED, numRuns: 60 },
    );
  });

  it('sums int32 exactly', async () => {
    const x: Plain = { values: Int32Array.from([1, 2, 3, 4, 5, 6]), shape: [3, 2], dtype: 'int32' };
    const segmentIds: Plain = { values: Int32Array.from([1, 0, 1]), shape: [3], dtype: 'int32' };
    const got = await runOn('wasm', K, { x, segmentIds }, { numSegments: 3 });
    expect(Array.from(got.values)).toEqual([3, 4, 6, 8, 0, 0]);
  });

  it('gives the gradient of gather (embedding lookup) equal to cpu', async () => {
    const table = plain([10, 4], 3);
    const idx = Int32Array.from([0, 3, 3, 9, 1, 3]);
    const grad = async (backend: 'cpu' | 'wasm') => {
      await useBackend(backend);
      return tidyValue(() => {
        const t = tf.tensor(table.values, table.shape);
        const w = tf.tensor(plain([6, 4], 4).values, [6, 4]);
        const g = tf.grad((tt: tf.Tensor) => tf.sum(tf.mul(tf.gather(tt, tf.tensor1d(idx, 'int32')), w)))(t);
        return Float64Array.from(g.dataSync());
      });
    };
    expect(relErr(await grad('wasm'), await grad('cpu'))).toBeLessThanOrEqual(1e-5);
  });

  it('does not leak over 100 calls', async () => {
    await useBackend('wasm');
    const x = tf.tensor(plain([50, 8], 1).values, [50, 8]);
    const segmentIds = tf.tensor(ids(50, 7, 3, true).values, [50], 'int32');
    tf.engine().runKernel<tf.Tensor>(K, { x, segmentIds }, { numSegments: 7 }).dispose();
    const before = memorySnapshot();
    for (let i = 0; i < 100; i++) tf.engine().runKernel<tf.Tensor>(K, { x, segmentIds }, { numSegments: 7 }).dispose();
    expect(memorySnapshot()).toEqual(before);
    tf.dispose([x, segmentIds]);
  });
});
