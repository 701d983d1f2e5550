import { holdOut } from '@tfkd/kd-core';
import * as api from './index';
import { DATASETS } from './module';
import { syntheticSplits } from './synthetic';

describe('@tfkd/datasets public surface', () => {
  it("exports no batching, tensor or split helpers of its own: kd-core's data.ts is the one API", () => {
    // Catches the removed second API (batchIndices, epochOrder, gatherBatch, selectExamples, the
    // train/validation split, toTensors) and any new look-alike.
    expect(Object.keys(api).filter((k) => /^(batch|epoch|gather|select|split|holdOut|toTensors)/i.test(k))).toEqual([]);
    expect(Object.keys(api)).toEqual(expect.arrayContaining(['loadFashionMnist', 'readCifar', 'readIdx', 'synthetic', 'datasetsModule']));
  });

  it("a set loaded through the dataset definition (the runner's route) gets the same holdOut split as the loader's own output, for the same seed", async () => {
    const opts = { train: 60, test: 10, numClasses: 3, shape: [2, 2, 1] as [number, number, number], noise: 0.1 };
    const def = DATASETS.find((d) => d.id === 'synthetic')!;
    const viaSpec = (await def.load(opts, { seed: 17, specPath: 'data' })).train;
    const direct = syntheticSplits({ ...opts, seed: 17 }).train;
    const a = holdOut(viaSpec, 0.1, 17);
    const b = holdOut(direct, 0.1, 17);
    expect(Array.from(a.heldOut.labels)).toEqual(Array.from(b.heldOut.labels));
    expect(Array.from(a.heldOut.images)).toEqual(Array.from(b.heldOut.images));
    expect(Array.from(a.train.images)).toEqual(Array.from(b.train.images));
    expect([a.heldOut.labels.length, a.train.labels.length]).toEqual([6, 54]);
  });
});
