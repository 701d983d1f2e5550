import { KdError, Rng } from '@tfkd/kd-core';
import { batchIndices, epochOrder, gatherBatch, selectExamples, splitTrainValidation } from './batching';
import type { Dataset } from './types';

/** 10 examples of shape [1, 2, 1]; example i holds (i, i + 0.5) and label i % 3. */
function tiny(n = 10): Dataset {
  const images = new Float32Array(n * 2);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    images[2 * i] = i;
    images[2 * i + 1] = i + 0.5;
    labels[i] = i % 3;
  }
  return { name: 'tiny', images, labels, shape: [1, 2, 1], numClasses: 3, source: 'synthetic' };
}

const flat = (bs: Int32Array[]) => bs.flatMap((b) => Array.from(b));

describe('batchIndices', () => {
  it('reproduces an epoch exactly from (seed, epoch) alone, as a resumed run would', () => {
    const opts = { batchSize: 4, seed: 123 };
    const run = [0, 1, 2, 3].map((epoch) => batchIndices(10, { ...opts, epoch }));
    // "Resume" at epoch 2 in a fresh process: nothing but (seed, epoch) is needed.
    const resumed = batchIndices(10, { ...opts, epoch: 2 });
    expect(resumed).toEqual(run[2]);
    expect(flat(run[2])).toEqual(Array.from(new Rng(123).fork(2).permutation(10)));
    expect(run[0].map((b) => b.length)).toEqual([4, 4, 2]);
    expect(flat(run[0])).not.toEqual(flat(run[1]));
    expect(flat(batchIndices(10, { ...opts, seed: 124, epoch: 0 }))).not.toEqual(flat(run[0]));
  });

  it('puts every index in an epoch exactly once', () => {
    for (const [n, batchSize, epoch] of [
      [10, 3, 0],
      [257, 32, 5],
      [1, 8, 1],
      [64, 64, 2],
    ]) {
      const all = flat(batchIndices(n, { batchSize, seed: 9, epoch }));
      expect(all.length).toBe(n);
      expect([...all].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
    }
  });

  it('keeps order without shuffling and drops a short last batch on request', () => {
    const ordered = batchIndices(7, { batchSize: 3, seed: 0, epoch: 4, shuffle: false });
    expect(ordered.map((b) => Array.from(b))).toEqual([[0, 1, 2], [3, 4, 5], [6]]);
    const dropped = batchIndices(7, { batchSize: 3, seed: 0, epoch: 4, shuffle: false, dropLast: true });
    expect(dropped.map((b) => Array.from(b))).toEqual([
      [0, 1, 2],
      [3, 4, 5],
    ]);
    const shuffled = batchIndices(7, { batchSize: 3, seed: 5, epoch: 0, dropLast: true });
    expect(flat(shuffled)).toEqual(Array.from(epochOrder(7, 5, 0).subarray(0, 6)));
    expect(batchIndices(0, { batchSize: 3, seed: 5, epoch: 0 })).toEqual([]);
  });

  it('rejects a bad batch size or epoch', () => {
    const e = (() => {
      try {
        batchIndices(10, { batchSize: 0, seed: 1, epoch: 0 });
      } catch (err) {
        return err as KdError;
      }
      throw new Error('no error');
    })();
    expect(e.code).toBe('KD_SPEC_INVALID');
    expect(e.path).toBe('batchSize');
    expect(e.message).toBe('batchSize must be an integer ≥ 1, got 0');
    expect(() => batchIndices(10, { batchSize: 2, seed: 1, epoch: 1.5 })).toThrow(
      'epoch must be an integer ≥ 0, got 1.5',
    );
  });
});

describe('gatherBatch', () => {
  it('copies the chosen examples in order', () => {
    const b = gatherBatch(tiny(), Int32Array.from([7, 0, 7, 3]));
    expect(b.n).toBe(4);
    expect(Array.from(b.x)).toEqual([7, 7.5, 0, 0.5, 7, 7.5, 3, 3.5]);
    expect(Array.from(b.y)).toEqual([1, 0, 1, 0]);
  });

  it('rejects an index out of range', () => {
    try {
      gatherBatch(tiny(), [1, 10]);
      throw new Error('no error');
    } catch (e) {
      expect((e as KdError).code).toBe('KD_SPEC_INVALID');
      expect((e as KdError).path).toBe('indices[1]');
      expect((e as KdError).message).toBe('gatherBatch: index 10 is outside [0, 10) of dataset tiny');
    }
  });
});

describe('splitTrainValidation', () => {
  it('is deterministic, disjoint, covering and keeps original order', () => {
    const ds = tiny(50);
    const a = splitTrainValidation(ds, 0.2, 11);
    const b = splitTrainValidation(ds, 0.2, 11);
    expect(Array.from(a.validationIndices)).toEqual(Array.from(b.validationIndices));
    expect(a.validationIndices.length).toBe(10);
    expect(a.trainIndices.length).toBe(40);
    const v = Array.from(a.validationIndices);
    const t = Array.from(a.trainIndices);
    expect(v).toEqual([...v].sort((x, y) => x - y));
    expect(v.filter((i) => t.includes(i))).toEqual([]);
    expect([...v, ...t].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(v).toEqual(Array.from(new Rng(11).permutation(50).subarray(0, 10)).sort((x, y) => x - y));
    expect(Array.from(a.validation.images.subarray(0, 2))).toEqual([v[0], v[0] + 0.5]);
    expect(Array.from(a.validation.labels)).toEqual(v.map((i) => i % 3));
    expect(a.validation.name).toBe('tiny:validation');
    expect(a.train.name).toBe('tiny:train');
    expect(Array.from(splitTrainValidation(ds, 0.2, 12).validationIndices)).not.toEqual(v);
  });

  it('rejects fractions that leave a split empty', () => {
    expect(() => splitTrainValidation(tiny(), 1, 1)).toThrow(
      'splitTrainValidation: fraction must be in (0, 1), got 1',
    );
    expect(() => splitTrainValidation(tiny(), 0.01, 1)).toThrow(
      'splitTrainValidation: fraction 0.01 of 10 examples leaves an empty split',
    );
  });

  it('selectExamples copies class names and leaves the source untouched', () => {
    const ds = { ...tiny(4), classNames: ['a', 'b', 'c'] };
    const s = selectExamples(ds, [3, 1], 'picked');
    expect(s.name).toBe('picked');
    expect(Array.from(s.images)).toEqual([3, 3.5, 1, 1.5]);
    s.classNames![0] = 'z';
    expect(ds.classNames[0]).toBe('a');
  });
});
