import fc from 'fast-check';
import { FC_SEED, memorySnapshot, plain, relErr, runOn, tf, useBackend } from './__fixtures__/harness';

const K = 'Einsum';

/** Equations tfjs's einsum supports, covering every label class of the matMul path. */
const EQUATIONS = [
  'ij,jk->ik', // matmul
  'ij,kj->ik', // B transposed (uses transposeB, no copy)
  'ji,jk->ik', // A transposed
  'bij,bjk->bik', // batched
  'bij,bkj->bki', // batched, output permuted
  'ij,ij->i', // row-wise dot (batch label i, contraction j)
  'i,j->ij', // outer product
  'ij,j->i', // matrix-vector
  'ijk,k->ij',
  'abc,cd->dba',
  'ij->ji', // transpose
  'ij->i', // reduction
  'ij->ij', // identity
  'i,i->', // dot
];

/** tfjs's cpu kernel gets these wrong (it leaves one summed label unsummed); checked against loops. */
const CPU_WRONG = ['ij,jk->', 'ij,k->ik', 'ijk,jl->'];

/** Float64 einsum by enumerating every assignment of the labels. */
function naiveEinsum(eq: string, xs: { values: ArrayLike<number>; shape: number[] }[]): { values: Float64Array; shape: number[] } {
  const [lhs, out] = eq.split('->');
  const terms = lhs.split(',');
  const labels = [...new Set(lhs.replace(/,/g, '') + out)];
  const size: Record<string, number> = {};
  terms.forEach((t, i) => [...t].forEach((l, k) => (size[l] = xs[i].shape[k])));
  const outShape = [...out].map((l) => size[l]);
  const res = new Float64Array(outShape.reduce((a, b) => a * b, 1));
  const idx: Record<string, number> = {};
  const flat = (t: string, shape: number[]) => [...t].reduce((acc, l, k) => acc * shape[k] + idx[l], 0);
  const visit = (d: number): void => {
    if (d === labels.length) {
      let p = 1;
      terms.forEach((t, i) => (p *= xs[i].values[flat(t, xs[i].shape)]));
      res[flat(out, outShape)] += p;
      return;
    }
    for (let v = 0; v < size[labels[d]]; v++) {
      idx[labels[d]] = v;
      visit(d + 1);
    }
  };
  visit(0);
  return { values: res, shape: outShape };
}

describe('Einsum on wasm', () => {
  it('matches cpu on every supported equation pattern with random sizes', async () => {
    const arb = fc.record({
      eq: fc.constantFrom(...EQUATIONS),
      sizes: fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 6, maxLength: 6 }),
      seed: fc.integer({ min: 1, max: 1 << 30 }),
    });
    await fc.assert(
      fc.asyncProperty(arb, async ({ eq, sizes, seed }) => {
        const labels = [...new Set(eq.replace(/[^a-z]/g, ''))];
        const size = (l: string) => sizes[labels.indexOf(l)];
        const terms = eq.split('->')[0].split(',');
        const inputs = terms.map((t, i) => plain([...t].map(size), seed + i));
        const got = await runOn('wasm', K, inputs, { equation: eq });
        const want = await runOn('cpu', K, inputs, { equation: eq });
        expect(got.shape).toEqual(want.shape);
        expect(relErr(got.values, want.values)).toBeLessThanOrEqual(1e-5);
        expect(relErr(got.values, naiveEinsum(eq, inputs).values)).toBeLessThanOrEqual(1e-5);
      }),
      { seed: FC_SEED, numRuns: 80 },
    );
  });

  it.each(CPU_WRONG)('computes %s correctly (float64 reference; the cpu kernel is wrong here)', async (eq) => {
    const terms = eq.split('->')[0].split(',');
    const sizes: Record<string, number> = { i: 2, j: 3, k: 4, l: 5 };
    const inputs = terms.map((t, i) => plain([...t].map((l) => sizes[l]), 40 + i));
    const got = await runOn('wasm', K, inputs, { equation: eq });
    const want = naiveEinsum(eq, inputs);
    expect(got.shape).toEqual(want.shape);
    expect(relErr(got.values, want.values)).toBeLessThanOrEqual(1e-5);
  });

  it('works through tf.einsum (the op)', async () => {
    await useBackend('wasm');
    const out = tf.tidy(() => tf.einsum('ij,jk->ik', tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[5, 6], [7, 8]])).arraySync());
    expect(out).toEqual([
      [19, 22],
      [43, 50],
    ]);
  });

  it('handles int32 operands (broadcast-multiply-sum fallback)', async () => {
    await useBackend('wasm');
    const out = tf.tidy(() => tf.einsum('ij,jk->ik', tf.tensor2d([[1, 2], [3, 4]], undefined, 'int32'), tf.tensor2d([[5, 6], [7, 8]], undefined, 'int32')));
    expect(out.dtype).toBe('int32');
    expect(out.arraySync()).toEqual([
      [19, 22],
      [43, 50],
    ]);
    out.dispose();
  });

  it("sums a label that only one operand has ('ij,k->ik'), where tfjs's cpu kernel returns a wrong shape", async () => {
    await useBackend('wasm');
    const out = tf.tidy(() => tf.einsum('ij,k->ik', tf.tensor2d([[2, 3], [4, 5]]), tf.tensor1d([10, 100, 1000])).arraySync());
    expect(out).toEqual([
      [50, 500, 5000],
      [90, 900, 9000],
    ]);
  });

  it('rejects unsupported equations with a KdError', async () => {
    await useBackend('wasm');
    const x = tf.ones([2, 2]);
    expect(() => tf.engine().runKernel(K, [x, x, x] as unknown as tf.NamedTensorMap, { equation: 'ij,jk,kl->il' })).toThrow(
      expect.objectContaining({ name: 'KdError', code: 'KD_SHAPE_MISMATCH' }),
    );
    x.dispose();
  });

  it.each(['bij,bkj->bki', 'ij->ij', 'ij->i'])('does not leak over 100 calls (%s)', async (equation) => {
    await useBackend('wasm');
    const terms = equation.split('->')[0].split(',');
    const xs = terms.map((t, i) => tf.tensor(plain([...t].map(() => 3), i + 1).values, [...t].map(() => 3)));
    const call = () => tf.engine().runKernel<tf.Tensor>(K, xs as unknown as tf.NamedTensorMap, { equation });
    call().dispose();
    const before = memorySnapshot();
    for (let i = 0; i < 100; i++) call().dispose();
    expect(memorySnapshot()).toEqual(before);
    tf.dispose(xs);
  });
});
