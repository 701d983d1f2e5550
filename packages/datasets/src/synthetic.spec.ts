import { KdError } from '@tfkd/kd-core';
import { SYNTHETIC_MAX_VALUES, synthetic, syntheticSplits } from './synthetic';

const opts = { n: 60, numClasses: 3, shape: [4, 4, 2] as [number, number, number], seed: 7 };

describe('synthetic', () => {
  it('is identical for the same seed', () => {
    const a = synthetic(opts);
    const b = synthetic({ ...opts });
    expect(Buffer.from(a.images.buffer).equals(Buffer.from(b.images.buffer))).toBe(true);
    expect(Array.from(a.labels)).toEqual(Array.from(b.labels));
    expect(a.name).toBe('synthetic-7');
    expect(a.source).toBe('synthetic');
    expect(a.shape).toEqual([4, 4, 2]);
    expect(a.numClasses).toBe(3);
    expect(a.classNames).toEqual(['class_0', 'class_1', 'class_2']);
    expect(a.note).toBe('class-conditional Gaussian blobs, seed 7, noise 0.15');
  });

  it('differs for a different seed', () => {
    const a = synthetic(opts);
    const b = synthetic({ ...opts, seed: 8 });
    let same = 0;
    for (let i = 0; i < a.images.length; i++) if (a.images[i] === b.images[i]) same++;
    expect(same).toBeLessThan(a.images.length / 10);
    expect(Array.from(a.labels)).not.toEqual(Array.from(b.labels));
  });

  it('has balanced labels, values in [0, 1], and class-dependent means', () => {
    const ds = synthetic({ ...opts, n: 300, noise: 0.05 });
    const counts = [0, 0, 0];
    for (const l of ds.labels) counts[l]++;
    expect(counts).toEqual([100, 100, 100]);
    expect(Math.min(...ds.images)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...ds.images)).toBeLessThanOrEqual(1);
    // Per-class mean images: examples sit near their own class mean (noise 0.05 ≪ mean spread).
    const size = 32;
    const means = [0, 1, 2].map((k) => {
      const m = new Float64Array(size);
      ds.labels.forEach((l, i) => {
        if (l === k) for (let j = 0; j < size; j++) m[j] += ds.images[i * size + j] / 100;
      });
      return m;
    });
    const dist = (i: number, k: number) =>
      means[k].reduce((a, v, j) => a + (ds.images[i * size + j] - v) ** 2, 0);
    for (let i = 0; i < 300; i++) {
      const nearest = [0, 1, 2].reduce((best, k) => (dist(i, k) < dist(i, best) ? k : best), 0);
      expect(nearest).toBe(ds.labels[i]);
    }
  });

  it('noise 0 gives exactly the class means', () => {
    const ds = synthetic({ ...opts, noise: 0 });
    const first = new Map<number, number[]>();
    ds.labels.forEach((l, i) => {
      const img = Array.from(ds.images.subarray(i * 32, (i + 1) * 32));
      if (!first.has(l)) first.set(l, img);
      else expect(img).toEqual(first.get(l));
    });
    for (const v of ds.images) {
      expect(v).toBeGreaterThanOrEqual(0.15);
      expect(v).toBeLessThan(0.85 + 1e-6);
    }
  });

  it('syntheticSplits shares the means; train equals synthetic() with the same seed', () => {
    const { train, test } = syntheticSplits({ ...opts, train: 60, test: 30, noise: 0 });
    const single = synthetic({ ...opts, noise: 0 });
    expect(Array.from(train.images)).toEqual(Array.from(single.images));
    expect(Array.from(train.labels)).toEqual(Array.from(single.labels));
    expect(train.name).toBe('synthetic-7:train');
    expect(test.name).toBe('synthetic-7:test');
    const k = test.labels[0];
    const i = train.labels.indexOf(k);
    expect(Array.from(test.images.subarray(0, 32))).toEqual(
      Array.from(train.images.subarray(i * 32, (i + 1) * 32)),
    );
  });

  it.each([
    [{ n: -1 }, 'n', 'synthetic: n must be a non-negative integer, got -1'],
    [{ numClasses: 0 }, 'numClasses', 'synthetic: numClasses must be a positive integer, got 0'],
    [{ shape: [4, 4] }, 'shape', 'synthetic: shape must be [H, W, C] of positive integers, got [4,4]'],
    [{ noise: -0.1 }, 'noise', 'synthetic: noise must be ≥ 0, got -0.1'],
  ])('rejects %j', (bad, key, message) => {
    try {
      synthetic({ ...opts, ...(bad as object) });
      throw new Error('no error');
    } catch (e) {
      expect(e).toBeInstanceOf(KdError);
      expect((e as KdError).code).toBe('KD_SPEC_INVALID');
      expect((e as KdError).path).toBe(key);
      expect((e as KdError).message).toBe(message);
    }
  });

  it('refuses sets too large to allocate with KD_SPEC_INVALID (train: 2^40 was a RangeError from Int32Array)', () => {
    const base = { train: 10, test: 10, numClasses: 3, shape: [6, 6, 1] as [number, number, number], seed: 1 };
    for (const [over, key] of [
      [{ train: 2 ** 40 }, 'train'],
      [{ test: 2 ** 40 }, 'test'],
      [{ numClasses: 2 ** 40 }, 'numClasses'],
      [{ shape: [2 ** 20, 2 ** 20, 1] }, 'train'],
    ] as const) {
      let err: unknown;
      try {
        syntheticSplits({ ...base, ...over } as typeof base);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(KdError);
      expect((err as KdError).code).toBe('KD_SPEC_INVALID');
      expect((err as KdError).path).toBe(key);
      expect((err as KdError).message).toContain(`more than the ${SYNTHETIC_MAX_VALUES}`);
    }
    // small sets are unaffected
    expect(() => synthetic({ n: 1, numClasses: 2, shape: [1, 1, 1], seed: 1 })).not.toThrow();
  });
});
