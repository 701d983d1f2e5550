import { isKdError, type KdError } from '@tfkd/kd-core';
import { fashionScenesDataset, fashionScenesTaskDataset } from './fashion-scenes';
import { DATASETS } from './module';

// `data: { name: fashion-scenes }` as a run's dataset: bound to DATASET_DEFINITION for the dense tasks
// only; each task gets its own targets from the same scenes.
describe('fashion-scenes for task: detection / segmentation', () => {
  const opts = fashionScenesDataset.options.parse({ subset: true, train: 6, test: 4, limit: { train: 50, test: 50 } }) as Record<string, unknown>;

  it('is a run dataset declaring detection and segmentation', () => {
    expect(DATASETS).toContain(fashionScenesTaskDataset);
    expect(fashionScenesTaskDataset.tasks).toEqual(['detection', 'segmentation']);
  });

  it('detection: the scenes, their objects (10 classes), no masks; segmentation: their masks (11 classes), no objects', async () => {
    const scenes = await fashionScenesDataset.load(opts, { seed: 11, specPath: 'data' });
    const det = await fashionScenesTaskDataset.load(opts, { seed: 11, specPath: 'data', task: 'detection' });
    const seg = await fashionScenesTaskDataset.load(opts, { seed: 11, specPath: 'data', task: 'segmentation' });
    for (const split of ['train', 'test'] as const) {
      expect(det[split].images).toEqual(scenes[split].images);
      expect([det[split].numClasses, seg[split].numClasses]).toEqual([10, 11]);
      expect(det[split].objects).toEqual({ boxes: scenes[split].boxes, classes: scenes[split].classes, offsets: scenes[split].offsets });
      expect(det[split].masks).toBeUndefined();
      expect(seg[split].masks).toEqual(scenes[split].masks);
      expect(seg[split].objects).toBeUndefined();
      expect(Array.from(det[split].labels)).toEqual(new Array(scenes[split].count).fill(0));
    }
    expect(seg.train.classNames?.slice(0, 2)).toEqual(['background', 'T-shirt/top']);
  });

  it('refuses a classification run with KD_TASK_MISMATCH at data.name', async () => {
    const e = (await fashionScenesTaskDataset.load(opts, { seed: 1, specPath: 'data' }).then(() => null, (x: unknown) => x)) as KdError;
    expect(isKdError(e) ? [e.code, e.path] : e).toEqual(['KD_TASK_MISMATCH', 'data.name']);
  });
});
