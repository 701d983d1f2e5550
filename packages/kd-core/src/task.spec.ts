import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { batchTensors, holdOut, selectSamples } from './data';
import { RunSpec } from './spec';
import { runTask, supportedTasks, taskMismatch } from './task';
import type { Dataset } from './tokens';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Four 2×2 samples with 0, 1, 2, 1 objects; masks hold 10·i + pixel. */
const COUNTS = [0, 1, 2, 1];
function dense(): Dataset {
  return {
    name: 'd',
    images: Float32Array.from({ length: 16 }, (_, i) => i / 16),
    labels: new Int32Array(4),
    shape: [2, 2, 1],
    numClasses: 3,
    source: 'test',
    objects: {
      boxes: Float32Array.from([0, 0, 1, 1, 0, 0, 2, 2, 1, 1, 2, 2, 0, 1, 2, 2]),
      classes: Int32Array.from([2, 0, 1, 2]),
      offsets: Int32Array.from([0, 0, 1, 3, 4]),
    },
    masks: Int32Array.from({ length: 16 }, (_, i) => 10 * Math.floor(i / 4) + (i % 4)),
  };
}

describe('task targets through the batching API', () => {
  it('batchTensors gives each sample its objects (in batch order) and its mask', () => {
    const { x, y, objects, masks } = batchTensors(dense(), [3, 0, 2]);
    expect(objects?.map((o) => [Array.from(o.boxes), Array.from(o.classes)])).toEqual([
      [[0, 1, 2, 2], [2]],
      [[], []],
      [[0, 0, 2, 2, 1, 1, 2, 2], [0, 1]],
    ]);
    expect(Array.from(masks?.dataSync() ?? [])).toEqual([30, 31, 32, 33, 0, 1, 2, 3, 20, 21, 22, 23]);
    expect([masks?.shape, masks?.dtype]).toEqual([[3, 2, 2], 'int32']);
    tf.dispose([x, y, masks as tf.Tensor]);
  });

  it('a classification dataset gives x and y only', () => {
    const { objects: _o, masks: _m, ...rest } = dense();
    const out = batchTensors(rest, [1]);
    expect(Object.keys(out).sort()).toEqual(['x', 'y']);
    tf.dispose([out.x, out.y]);
  });

  it('selectSamples and holdOut keep each sample with its objects and mask', () => {
    const s = selectSamples(dense(), [2, 3], 's');
    expect([Array.from(s.objects?.offsets ?? []), Array.from(s.objects?.classes ?? []), Array.from(s.objects?.boxes ?? [])]).toEqual([
      [0, 2, 3],
      [0, 1, 2],
      [0, 0, 2, 2, 1, 1, 2, 2, 0, 1, 2, 2],
    ]);
    expect(Array.from(s.masks ?? [])).toEqual([20, 21, 22, 23, 30, 31, 32, 33]);
    const { train, heldOut } = holdOut(dense(), 0.5, 3);
    for (const part of [train, heldOut]) {
      // each kept sample's mask starts with 10·(its index), and its object count is that sample's
      const firsts = Array.from({ length: part.labels.length }, (_, i) => (part.masks as Int32Array)[4 * i] / 10);
      const o = part.objects as NonNullable<Dataset['objects']>;
      expect(firsts.map((k, i) => o.offsets[i + 1] - o.offsets[i])).toEqual(firsts.map((k) => COUNTS[k]));
    }
  });
});

describe('task declarations', () => {
  it('a spec without `task` is classification and keeps no task key; definitions default to classification', () => {
    const spec = RunSpec.parse({ data: { name: 'blobs' }, student: { model: 'm' } });
    expect('task' in spec).toBe(false);
    expect(runTask(spec)).toBe('classification');
    expect(runTask(RunSpec.parse({ task: 'detection', data: { name: 'b' }, student: { model: 'm' } }))).toBe('detection');
    expect(supportedTasks({})).toEqual(['classification']);
    expect(() => RunSpec.parse({ task: 'ranking', data: { name: 'b' }, student: { model: 'm' } })).toThrow();
  });

  it('KD_TASK_MISMATCH names what, the tasks it supports, the run task, the path and the fix', () => {
    const e = taskMismatch("'loss/hinton-kd'", ['classification'], 'segmentation', 'plugins[2].use', ['loss/seg-pixel-kd']);
    expect([e.code, e.path, e.message]).toEqual(['KD_TASK_MISMATCH', 'plugins[2].use', "'loss/hinton-kd' supports classification; this run's task is segmentation"]);
    expect(e.fix).toBe('use one made for segmentation (loss/seg-pixel-kd), or set `task: classification` if the run is meant to be classification');
  });
});
