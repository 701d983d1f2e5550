import * as tf from '@tensorflow/tfjs-core';
import { definePlugin, KdError, type PluginDefinition, type PluginDeps, type Rng, type StepContext } from '@tfkd/kd-core';
import type { z } from 'zod';

/** A batch of NHWC images as one flat float32 array (row-major: n, row, column, channel). */
export interface Images {
  data: Float32Array;
  n: number;
  h: number;
  w: number;
  c: number;
}

/** A new batch of the same shape, zero-filled. */
export function like(img: Images): Images {
  return { data: new Float32Array(img.data.length), n: img.n, h: img.h, w: img.w, c: img.c };
}

/** Flat offset of (sample, row, column, channel). */
export function at(img: Images, i: number, r: number, col: number, ch = 0): number {
  return ((i * img.h + r) * img.w + col) * img.c + ch;
}

/**
 * The step's images as typed arrays. The array is the backend's copy (cpu/wasm: its own buffer, which
 * may be the tensor's storage itself): augmentations never write into it, they write a new one.
 */
export function readImages(ctx: StepContext, who: string): Images {
  const x = ctx.batch.x;
  if (x.rank !== 4) {
    throw new KdError('KD_SHAPE_MISMATCH', `'${who}' augments NHWC image batches, got a batch of shape [${x.shape}]`, {
      fix: 'use an image dataset (fashion-mnist, cifar10, …); augmentations do not apply to flat feature vectors',
    });
  }
  const [n, h, w, c] = x.shape as [number, number, number, number];
  return { data: x.dataSync() as Float32Array, n, h, w, c };
}

/** One-hot rows [n, K] of integer labels, or a copy of the batch's soft targets. */
export function readTargets(ctx: StepContext): Float32Array {
  const k = ctx.numClasses;
  if (ctx.batch.targets) return Float32Array.from(ctx.batch.targets.dataSync() as Float32Array);
  const y = ctx.batch.y.dataSync();
  const t = new Float32Array(y.length * k);
  for (let i = 0; i < y.length; i++) t[i * k + y[i]] = 1;
  return t;
}

/**
 * Hand the augmented images (and soft targets, when the augmentation made them) to the step: the
 * batch is marked transformed, so the teacher-output cache is bypassed and the teacher runs on it.
 * The labels `y` stay each image's own; soft targets already on the batch carry over unchanged
 * when `targets` is not given.
 */
export function replaceImages(ctx: StepContext, img: Images, targets?: Float32Array): void {
  const x = tf.tensor4d(img.data, [img.n, img.h, img.w, img.c]);
  const t = targets ? tf.tensor2d(targets, [img.n, ctx.numClasses]) : ctx.batch.targets;
  ctx.replaceBatch({ x, y: ctx.batch.y, targets: t ?? null }, { transformed: true });
}

/**
 * An augmentation that maps the batch's images to new ones (labels and targets kept): a sampler at
 * stage `sample` that reads the batch, draws from its own seeded generator, and marks the batch
 * transformed. `check` runs when the plugin is created — at planning, before any step.
 */
export function defineAugment<S extends z.ZodType>(def: {
  id: string;
  describe: string;
  options: S;
  check?(options: z.output<S>, deps: PluginDeps): void;
  apply(img: Images, rng: Rng, options: z.output<S>): Images;
}): PluginDefinition<S> {
  return definePlugin({
    id: def.id,
    kind: 'sampler',
    describe: def.describe,
    options: def.options,
    stage: 'sample',
    transformsBatch: true,
    create: (o, deps) => {
      def.check?.(o, deps);
      return {
        name: deps.name,
        register(bus) {
          bus.on('batchStart', (ctx) => replaceImages(ctx, def.apply(readImages(ctx, deps.name), ctx.rng, o)));
        },
      };
    },
  });
}
