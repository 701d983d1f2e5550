/**
 * `tiny-scenes`: hand-made 16×16 scenes for engine-level tests of the dense tasks (no files). Two
 * classes of filled rectangles (class 0 at value 1, class 1 at 0.5); scene i holds i mod 3 objects,
 * so every third scene is empty; scene 1 (mod 6) has a box on the image border and scene 5 (mod 6)
 * also a degenerate box (zero width: no pixel, no positive). `empty: true` makes every scene empty.
 * Detection: 2 classes; segmentation: 3 (background 0, class + 1).
 */
import { DATASET_DEFINITION, type DataSplits, type Dataset, type DatasetDefinition, Rng, RunSpec, type RunSpecInput, type Task } from '@tfkd/kd-core';
import { ContainerModule } from 'inversify';
import { z } from 'zod';

export const TINY = 16;

export function tinyScenes(count: number, seed: number, task: 'detection' | 'segmentation', empty = false): Dataset {
  const rng = new Rng(seed);
  const plane = TINY * TINY;
  const images = new Float32Array(count * plane);
  const masks = new Int32Array(count * plane);
  const boxes: number[] = [];
  const classes: number[] = [];
  const offsets = new Int32Array(count + 1);
  for (let i = 0; i < count; i++) {
    const n = empty ? 0 : i % 3;
    for (let k = 0; k < n; k++) {
      const c = (i + k) % 2;
      const w = 3 + rng.int(6);
      const h = 3 + rng.int(6);
      // the first object of scene 1, 7, 13, … touches the right and bottom border
      const border = i % 6 === 1 && k === 0;
      const x1 = border ? TINY - w : rng.int(TINY - w + 1);
      const y1 = border ? TINY - h : rng.int(TINY - h + 1);
      for (let y = y1; y < y1 + h; y++)
        for (let x = x1; x < x1 + w; x++) {
          images[i * plane + y * TINY + x] = c === 0 ? 1 : 0.5;
          masks[i * plane + y * TINY + x] = c + 1;
        }
      boxes.push(x1, y1, x1 + w, y1 + h);
      classes.push(c);
    }
    if (!empty && i % 6 === 5) {
      boxes.push(5, 2, 5, 12); // degenerate: x2 = x1
      classes.push(1);
    }
    offsets[i + 1] = classes.length;
  }
  const base = { name: `tiny-scenes-${seed}`, images, labels: new Int32Array(count), shape: [TINY, TINY, 1] as [number, number, number], source: 'synthetic' };
  return task === 'detection'
    ? { ...base, numClasses: 2, objects: { boxes: Float32Array.from(boxes), classes: Int32Array.from(classes), offsets } }
    : { ...base, numClasses: 3, masks };
}

/** How many times the dataset was loaded (a plan error must come before any data). */
export const loads = { count: 0 };

export const tinyScenesDataset: DatasetDefinition = {
  id: 'tiny-scenes',
  describe: 'hand-made 16x16 rectangle scenes (test fixture)',
  tasks: ['detection', 'segmentation'],
  options: z.object({ train: z.number().int().positive().default(12), test: z.number().int().positive().default(6), empty: z.boolean().default(false) }).strict(),
  async load(o, ctx): Promise<DataSplits> {
    loads.count++;
    const opts = o as { train: number; test: number; empty: boolean };
    const task = ctx.task as Task;
    if (task !== 'detection' && task !== 'segmentation') throw new Error(`tiny-scenes: task ${task}`);
    return { train: tinyScenes(opts.train, 1, task, opts.empty), test: tinyScenes(opts.test, 2, task) };
  },
};

export const tinyScenesModule = new ContainerModule((o) => {
  o.bind(DATASET_DEFINITION).toConstantValue(tinyScenesDataset);
});

/**
 * A tiny run of a dense task on `tiny-scenes` (12 train / 6 test scenes, batch 4, one epoch, cpu):
 * the width-2 student of the task with its label loss, SGD 0.01 with momentum 0.9; `over` replaces
 * whole top-level keys.
 */
export const tinyRunSpec = (task: 'detection' | 'segmentation', over: Partial<RunSpecInput> = {}): RunSpec =>
  RunSpec.parse({
    seed: 3,
    backend: 'cpu',
    task,
    data: { name: 'tiny-scenes', train: 12, test: 6 },
    student: { model: task === 'detection' ? 'detector-student' : 'segmenter-student', options: { width: 2 } },
    train: { epochs: 1, batchSize: 4, optimizer: { name: 'sgd', lr: 0.01, momentum: 0.9, weightDecay: 0 } },
    plugins: [{ use: task === 'detection' ? 'loss/detection' : 'loss/seg-cross-entropy' }],
    ...over,
  });
