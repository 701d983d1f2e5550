// What a plugin may put in place of a step's batch. `replaceBatch` (a sampler's new images and
// labels) must carry on what the batch has — soft label targets, image views, a dense task's objects
// or masks — one per new image; `setView` writes a view at the batch's image shape. Each refusal is a
// KdError that names the spec order (or the argument) that fixes it.
import type { Tensor } from '@tensorflow/tfjs-core';
import { type Batch, KdError, type ObjectList, type StepContext } from '@tfkd/kd-core';

/** The batch `replaceBatch(b, { transformed })` leaves, once checked against the batch it replaces (`old`). */
export function replacedBatch(
  old: Batch,
  b: Parameters<StepContext['replaceBatch']>[0],
  numClasses: number,
  transformed: boolean,
): Batch {
  if (b.x.shape[0] !== b.y.shape[0]) {
    throw new KdError('KD_SHAPE_MISMATCH', `replaceBatch: ${b.x.shape[0]} images but ${b.y.shape[0]} labels`);
  }
  const targets = b.targets ?? undefined;
  if (old.targets && !targets) {
    throw new KdError(
      'KD_PLUGIN_DEPENDENCY',
      'replaceBatch() without targets on a batch that has soft label targets (set by augment/mixup or augment/cutmix): they would be lost',
      {
        path: 'plugins',
        fix: 'list the mixing augmentation after this sampler in the spec (plugins of stage `sample` run in spec order)',
      },
    );
  }
  if (
    targets &&
    (targets.rank !== 2 || targets.shape[0] !== b.x.shape[0] || targets.shape[1] !== numClasses)
  ) {
    throw new KdError(
      'KD_SHAPE_MISMATCH',
      `replaceBatch: soft targets must be [${b.x.shape[0]}, ${numClasses}], got [${targets.shape}]`,
    );
  }
  const had = Object.keys(old.views ?? {});
  const views = b.views ?? undefined;
  if (had.length > 0 && !views) {
    throw new KdError(
      'KD_PLUGIN_DEPENDENCY',
      `replaceBatch() without views on a batch that has the image views ${had.map((v) => `'${v}'`).join(', ')}: they would be lost`,
      {
        path: 'plugins',
        fix: 'list this sampler before the augmentations that write views (`view:`) in the spec (plugins of stage `sample` run in spec order), or carry the views on (`views`)',
      },
    );
  }
  if (had.length > 0 && targets !== old.targets) {
    throw new KdError(
      'KD_PLUGIN_DEPENDENCY',
      `soft label targets set after the image views ${had.map((v) => `'${v}'`).join(', ')} were written: the targets would describe the main images only`,
      {
        path: 'plugins',
        fix: 'list the mixing augmentation (augment/mixup, augment/cutmix) before the augmentations that write views, so every view starts from the mixed images',
      },
    );
  }
  for (const [name, v] of Object.entries(views ?? {})) checkViewShape(name, v, b.x, 'replaceBatch');
  const dense = denseTargets(old, b);
  return {
    x: b.x,
    y: b.y,
    indices: transformed ? null : (b.indices ?? null),
    size: b.x.shape[0] as number,
    ...(targets ? { targets } : {}),
    ...(views && Object.keys(views).length > 0 ? { views: { ...views } } : {}),
    ...dense,
  };
}

/**
 * A dense task's targets across `replaceBatch`: a batch that has objects (masks) can only be replaced
 * by one that carries objects (masks) for its new images, one per image; they are never dropped.
 */
function denseTargets(
  had: Batch,
  b: { x: Tensor; objects?: readonly ObjectList[] | null; masks?: Tensor | null },
): Pick<Batch, 'objects' | 'masks'> {
  const n = b.x.shape[0] as number;
  const lost = (what: string) =>
    new KdError(
      'KD_PLUGIN_DEPENDENCY',
      `replaceBatch() without ${what} on a batch that has them (a ${what === 'objects' ? 'detection' : 'segmentation'} run): they would be lost`,
      {
        path: 'plugins',
        fix: `a sampler on a dense task must pass the ${what} of its new images on (\`${what}\`), and declare the task only then`,
      },
    );
  if (had.objects && !b.objects) throw lost('objects');
  if (had.masks && !b.masks) throw lost('masks');
  if (b.objects && b.objects.length !== n)
    throw new KdError('KD_SHAPE_MISMATCH', `replaceBatch: ${n} images but ${b.objects.length} object lists`);
  if (b.masks && (b.masks.rank !== 3 || b.masks.shape[0] !== n))
    throw new KdError(
      'KD_SHAPE_MISMATCH',
      `replaceBatch: masks must be [${n}, H, W], got [${b.masks.shape}]`,
    );
  return { ...(b.objects ? { objects: b.objects } : {}), ...(b.masks ? { masks: b.masks } : {}) };
}

/** A view must hold the batch's samples in its order, at the batch's image shape. */
export function checkViewShape(name: string, v: Tensor, x: Tensor, what: string): void {
  if (v.rank !== x.rank || v.shape.some((d, i) => d !== x.shape[i])) {
    throw new KdError(
      'KD_SHAPE_MISMATCH',
      `${what}: view '${name}' is [${v.shape}] but the batch's images are [${x.shape}]`,
      {
        fix: 'a view holds the same samples as the batch, in the same order and at the same image shape',
      },
    );
  }
}
