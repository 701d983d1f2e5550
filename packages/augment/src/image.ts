import * as tf from '@tensorflow/tfjs-core';
import { type BatchWriter, definePlugin, KdError, type PluginDefinition, type PluginDeps, type Rng, type StepContext, ViewName } from '@tfkd/kd-core';
import type { z } from 'zod';

/**
 * The option every label-keeping augmentation has: `view: <name>` transforms that named image view
 * (`batch.views[name]`, read by roles with `input: <name>`) instead of the main images `x`, which
 * stay as they are. A view starts as the main images as they are when its first plugin runs; the
 * plugins naming it then compose in spec order. Absent or null: the main images, as before. (No
 * default value: a spec without it resolves, records and hashes exactly as before the option.)
 */
export const viewOption = ViewName.nullish().describe(
  'absent (or null): transform the main images (every role sees them unless its spec says `input:`); a name (weak, strong, …): transform that image view instead, leaving the main images untouched — a role with `input: <name>` sees it',
);

/** The `view` option of a validated options object (null when absent). */
export function viewOf(o: unknown): string | null {
  return ((o as { view?: string | null } | null)?.view ?? null) as string | null;
}

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
export function readImages(ctx: StepContext, who: string, view: string | null = null): Images {
  // A view no plugin wrote yet starts as the main images.
  const x = (view !== null ? ctx.batch.views?.[view] : undefined) ?? ctx.batch.x;
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
 * The labels `y` stay each image's own; soft targets and image views already on the batch carry
 * over unchanged when `targets` is not given. With `view`, the images become that named view
 * instead (`ctx.setView`): the main images, labels and targets stay as they are.
 */
export function replaceImages(ctx: StepContext, img: Images, targets?: Float32Array, view: string | null = null): void {
  const x = tf.tensor4d(img.data, [img.n, img.h, img.w, img.c]);
  if (view !== null) {
    ctx.setView(view, x);
    return;
  }
  const t = targets ? tf.tensor2d(targets, [img.n, ctx.numClasses]) : ctx.batch.targets;
  ctx.replaceBatch({ x, y: ctx.batch.y, targets: t ?? null, views: ctx.batch.views ?? null }, { transformed: true });
}

/**
 * An augmentation that maps the batch's images to new ones (labels and targets kept): a sampler at
 * stage `sample` that reads the batch, draws from its own seeded generator, and marks the batch
 * transformed. `check` runs when the plugin is created — at planning, before any step.
 * The options schema carries `view` (`viewOption`): with a name, the plugin reads and writes that
 * image view instead of `x`, declares it (`writes`: the plan checks roles' `input:` against it) and
 * leaves the main images untransformed, so a teacher reading them keeps its output cache.
 */
export function defineAugment<S extends z.ZodType>(def: {
  id: string;
  describe: string;
  options: S;
  check?(options: z.output<S>, deps: PluginDeps): void;
  apply(img: Images, rng: Rng, options: z.output<S>): Images;
}): PluginDefinition<S> & BatchWriter<z.output<S>> {
  const plugin: PluginDefinition<S> & BatchWriter<z.output<S>> = {
    id: def.id,
    kind: 'sampler',
    describe: def.describe,
    options: def.options,
    stage: 'sample',
    // Only the main images count as the batch: a plugin writing a view leaves them as loaded.
    transformsBatch: (o) => viewOf(o) === null,
    writes: (o) => {
      const view = viewOf(o);
      return view === null ? {} : { views: [view] };
    },
    create: (o, deps) => {
      def.check?.(o, deps);
      const view = viewOf(o);
      return {
        name: deps.name,
        register(bus) {
          bus.on('batchStart', (ctx) => replaceImages(ctx, def.apply(readImages(ctx, deps.name, view), ctx.rng, o), undefined, view));
        },
      };
    },
  };
  return definePlugin(plugin) as PluginDefinition<S> & BatchWriter<z.output<S>>;
}
