import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { batchTensors, datasetSize, epochBatches, holdOut, selectSamples } from './data';
import { Rng } from './rng';
import type { Dataset } from './tokens';

beforeAll(async () => {
  // The cpu backend advises installing tfjs-node on first use; not relevant here.
  jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  await tf.setBackend('cpu');
});

/** n samples of shape [1, 2, 1]; sample i holds (i, i + 0.5) and label i % 3, so every copy says where it came from. */
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

/** The source index of each sample of a Dataset cut from `tiny`. */
const origin = (ds: Dataset) => Array.from({ length: ds.labels.length }, (_, i) => ds.images[2 * i]);
const flat = (bs: Int32Array[]) => bs.flatMap((b) => Array.from(b));
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('epochBatches', () => {
  it('replays an epoch from (seed, epoch) alone: the order is Rng(seed).fork(epoch).permutation(n)', () => {
    const run = [0, 1, 2, 3].map((epoch) => epochBatches(10, { batchSize: 4, seed: 123, epoch }));
    // "Resume" at epoch 2 in a fresh call: nothing but (seed, epoch) is needed.
    const resumed = epochBatches(10, { batchSize: 4, seed: 123, epoch: 2 });
    expect(resumed.map((b) => Array.from(b))).toEqual([
      [1, 0, 7, 5],
      [9, 3, 4, 8],
      [6, 2],
    ]);
    expect(resumed).toEqual(run[2]);
    expect(flat(run[2])).toEqual(Array.from(new Rng(123).fork(2).permutation(10)));
    expect(flat(run[0])).not.toEqual(flat(run[1]));
    expect(flat(epochBatches(10, { batchSize: 4, seed: 124, epoch: 0 }))).not.toEqual(flat(run[0]));
  });

  it('puts every index in an epoch exactly once', () => {
    for (const [n, batchSize, epoch] of [
      [10, 3, 0],
      [257, 32, 5],
      [1, 8, 1],
      [64, 64, 2],
    ]) {
      const batches = epochBatches(n, { batchSize, seed: 9, epoch });
      expect(batches.length).toBe(Math.ceil(n / batchSize));
      expect(flat(batches).sort((a, b) => a - b)).toEqual(range(n));
    }
  });

  it('keeps 0..n-1 without shuffling and drops a short last batch on request', () => {
    const ordered = epochBatches(7, { batchSize: 3, seed: 0, epoch: 4, shuffle: false });
    expect(ordered.map((b) => Array.from(b))).toEqual([[0, 1, 2], [3, 4, 5], [6]]);
    const dropped = epochBatches(7, { batchSize: 3, seed: 0, epoch: 4, shuffle: false, dropLast: true });
    expect(dropped.map((b) => Array.from(b))).toEqual([
      [0, 1, 2],
      [3, 4, 5],
    ]);
    const shuffled = epochBatches(7, { batchSize: 3, seed: 5, epoch: 0, dropLast: true });
    expect(flat(shuffled)).toEqual(Array.from(new Rng(5).fork(0).permutation(7).subarray(0, 6)));
    expect(epochBatches(6, { batchSize: 3, seed: 5, epoch: 0, dropLast: true }).map((b) => b.length)).toEqual([3, 3]);
    expect(epochBatches(0, { batchSize: 3, seed: 5, epoch: 0 })).toEqual([]);
  });
});

describe('batchTensors', () => {
  it('copies the chosen samples in order (repeats allowed): x float32 [n, H, W, C], y int32 [n]', () => {
    const before = tf.memory().numTensors;
    const { x, y } = batchTensors(tiny(), Int32Array.from([7, 0, 7, 3]));
    expect(x.shape).toEqual([4, 1, 2, 1]);
    expect(x.dtype).toBe('float32');
    expect(Array.from(x.dataSync())).toEqual([7, 7.5, 0, 0.5, 7, 7.5, 3, 3.5]);
    expect(y.dtype).toBe('int32');
    expect(Array.from(y.dataSync())).toEqual([1, 0, 1, 0]);
    tf.dispose([x, y]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('selectSamples', () => {
  it('copies the samples at the indices, in order, under the new name, leaving the source untouched', () => {
    const ds = tiny(5);
    const s = selectSamples(ds, [3, 1, 3], 'picked');
    expect(s.name).toBe('picked');
    expect(datasetSize(s)).toBe(3);
    expect(Array.from(s.images)).toEqual([3, 3.5, 1, 1.5, 3, 3.5]);
    expect(Array.from(s.labels)).toEqual([0, 1, 0]);
    expect([s.shape, s.numClasses, s.source]).toEqual([[1, 2, 1], 3, 'synthetic']);
    s.images[0] = -1;
    s.labels[0] = 2;
    expect(ds.images[6]).toBe(3);
    expect(ds.labels[3]).toBe(0);
  });
});

describe('holdOut', () => {
  it('holds out round(n * fraction) samples, disjoint from the rest and together covering the set, each side in original order', () => {
    const { train, heldOut } = holdOut(tiny(50), 0.2, 11);
    const h = origin(heldOut);
    const t = origin(train);
    expect([h.length, t.length]).toEqual([10, 40]);
    expect(h).toEqual([...h].sort((a, b) => a - b));
    expect(t).toEqual([...t].sort((a, b) => a - b));
    expect(h.filter((i) => t.includes(i))).toEqual([]);
    expect([...h, ...t].sort((a, b) => a - b)).toEqual(range(50));
    // Labels travel with their images.
    expect(Array.from(heldOut.labels)).toEqual(h.map((i) => i % 3));
    expect(Array.from(train.labels)).toEqual(t.map((i) => i % 3));
    expect([train.name, heldOut.name]).toEqual(['tiny (minus held-out)', 'tiny (held-out)']);
  });

  it('is a function of (n, fraction, seed) alone: the same seed gives the same (pinned) split, another seed another', () => {
    const a = origin(holdOut(tiny(20), 0.25, 11).heldOut);
    expect(a).toEqual([0, 2, 12, 14, 16]);
    expect(origin(holdOut(tiny(20), 0.25, 11).heldOut)).toEqual(a);
    expect(origin(holdOut(tiny(20), 0.25, 12).heldOut)).not.toEqual(a);
    // Its own salted stream, not a bare Rng(seed) permutation's head (what the removed datasets split drew).
    expect(a).not.toEqual(Array.from(new Rng(11).permutation(20).subarray(0, 5)).sort((x, y) => x - y));
  });

  it('holds out at least one sample however small the fraction', () => {
    const { train, heldOut } = holdOut(tiny(10), 0.01, 1);
    expect([datasetSize(heldOut), datasetSize(train)]).toEqual([1, 9]);
  });
});
