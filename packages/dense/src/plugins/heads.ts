/**
 * What the dense plugins share: the checks of a role's model at creation (plan time), its heads in a
 * step (`ctx.outputs(role).heads`, the model's outputs by name) and the batch's targets, encoded
 * once per batch and layout however many plugins of a stack read them.
 */
import { KdError, type ObjectList, type PluginDeps, type StepContext } from '@tfkd/kd-core';
import type { Tensor } from '@tensorflow/tfjs-core';
import { detectorHeads, type DetectorHeads } from '../detector';
import { makeLayout, type DetectorLayout } from '../layout';
import { encodeDetectionTargets, imitationMask, type DetectionTargets, type ImitationMaskOptions } from '../targets';

/** Output shapes (without batch) of a role's model by output name, or null when the deps have no model access (hand-made deps). */
function outputShapes(deps: PluginDeps, role: string): Record<string, number[]> | null {
  const m = deps.model?.(role);
  if (!m) return null;
  return Object.fromEntries(m.outputNames.map((n, i) => [n, (m.outputs[i].shape as number[]).slice(1)]));
}

const describeShapes = (shapes: Record<string, number[]>) =>
  Object.entries(shapes)
    .map(([n, s]) => `${n} [${s}]`)
    .join(', ');

/**
 * The layout of the detector a role runs, checked when the plugin is created (at plan time): the
 * model must have the zoo detector's heads `cls_<level>` [h, w, K] and `box_<level>` [h, w, 4(n+1)]
 * for the run's input size and K classes. n (regMax) is read from the box head.
 */
export function detectorLayoutOf(deps: PluginDeps, role: string): DetectorLayout {
  const shapes = outputShapes(deps, role);
  const inputShape = deps.inputShape as [number, number, number];
  const regMax = shapes?.box_p3 ? shapes.box_p3[2] / 4 - 1 : 8;
  const layout = makeLayout(inputShape, deps.numClasses, Number.isInteger(regMax) && regMax > 0 ? regMax : 8);
  if (!shapes) return layout;
  const want = layout.levels.flatMap((lv) => [
    [`cls_${lv.name}`, [...lv.size, layout.numClasses]],
    [`box_${lv.name}`, [...lv.size, 4 * (layout.regMax + 1)]],
  ] as [string, number[]][]);
  if (want.some(([n, s]) => shapes[n]?.join() !== s.join())) {
    throw new KdError('KD_PLUGIN_DEPENDENCY', `'${deps.name}' needs a detector as '${role}' (outputs ${want.map(([n, s]) => `${n} [${s}]`).join(', ')}); its model has ${describeShapes(shapes)}`, {
      path: deps.specPath,
      fix: `use a detector zoo model for '${role}' (detector, detector-student, detector-teacher), built for this data (${inputShape.join('x')}, ${deps.numClasses} classes)`,
    });
  }
  return layout;
}

/** A segmenter's logits shape [H, W, K] checked at creation: per-pixel K-class logits at the input size. */
export function checkSegmenter(deps: PluginDeps, role: string): void {
  const shapes = outputShapes(deps, role);
  if (!shapes) return;
  const [h, w] = deps.inputShape;
  const first = Object.values(shapes)[0];
  if (first?.join() !== [h, w, deps.numClasses].join()) {
    throw new KdError('KD_PLUGIN_DEPENDENCY', `'${deps.name}' needs a segmenter as '${role}' (first output [${h},${w},${deps.numClasses}]: per-pixel logits); its model has ${describeShapes(shapes)}`, {
      path: deps.specPath,
      fix: `use a segmenter zoo model for '${role}' (segmenter, segmenter-student, segmenter-teacher)`,
    });
  }
}

/** Two detectors whose heads a loss compares must share classes and box bins. */
export function sameLayout(deps: PluginDeps, a: DetectorLayout, b: DetectorLayout): void {
  if (a.regMax !== b.regMax || a.numClasses !== b.numClasses || a.locations !== b.locations) {
    throw new KdError('KD_SHAPE_MISMATCH', `'${deps.name}': the student's and the teacher's detectors differ (regMax ${a.regMax} vs ${b.regMax}, ${a.locations} vs ${b.locations} locations)`, {
      path: deps.specPath,
      fix: 'build both with the same regMax option (default 8) on the same data',
    });
  }
}

/** A role's outputs by name in this step; a run without heads (classification) cannot get here past the plan, but say so if it does. */
export function headsOf(ctx: StepContext, role: string, name: string): Record<string, Tensor> {
  const heads = ctx.outputs(role).heads;
  if (!heads) {
    throw new KdError('KD_TASK_MISMATCH', `'${name}' reads the heads of '${role}', and this run has none (only detection and segmentation runs do)`, {
      fix: 'set `task: detection` or `task: segmentation` in the spec',
    });
  }
  return heads;
}

/** A detector role's heads in this step, flattened over levels: cls [N, L, K], box [N, L, 4, n+1]. */
export function detectorHeadsOf(ctx: StepContext, role: string, layout: DetectorLayout, name: string): DetectorHeads {
  return detectorHeads(headsOf(ctx, role, name), layout);
}

/** The batch's objects (a detection run's), or a coded error. */
export function batchObjects(ctx: StepContext, name: string): readonly ObjectList[] {
  const objects = ctx.batch.objects;
  if (!objects) {
    throw new KdError('KD_TASK_MISMATCH', `'${name}' trains on boxes, and this batch has none`, { fix: 'set `task: detection` and use a dataset with boxes (fashion-scenes)' });
  }
  return objects;
}

/** The batch's masks (a segmentation run's), or a coded error. */
export function batchMasks(ctx: StepContext, name: string): Tensor {
  const masks = ctx.batch.masks;
  if (!masks) {
    throw new KdError('KD_TASK_MISMATCH', `'${name}' trains on per-pixel classes, and this batch has none`, { fix: 'set `task: segmentation` and use a dataset with masks (fashion-scenes)' });
  }
  return masks;
}

const targetMemo = new WeakMap<readonly ObjectList[], Map<string, DetectionTargets>>();
const maskMemo = new WeakMap<readonly ObjectList[], Map<string, Float32Array[]>>();

function memo<T>(store: WeakMap<readonly ObjectList[], Map<string, T>>, objects: readonly ObjectList[], key: string, make: () => T): T {
  let m = store.get(objects);
  if (!m) store.set(objects, (m = new Map()));
  let v = m.get(key);
  if (v === undefined) m.set(key, (v = make()));
  return v;
}

const layoutKey = (l: DetectorLayout) => `${l.inputShape.join('x')}/${l.numClasses}/${l.levels.map((v) => `${v.name}:${v.stride}:${v.range}`).join(',')}`;

/** FCOS targets of this batch's objects (host arrays), computed once per batch, layout and radius. */
export function batchTargets(ctx: StepContext, layout: DetectorLayout, centerSampling: number, name: string): DetectionTargets {
  const objects = batchObjects(ctx, name);
  return memo(targetMemo, objects, `${layoutKey(layout)}/${centerSampling}`, () => encodeDetectionTargets(layout, objects as ObjectList[], { centerSampling }));
}

/** The near-object imitation masks of this batch, per level, computed once per batch and options. */
export function batchImitationMasks(ctx: StepContext, layout: DetectorLayout, opts: ImitationMaskOptions, name: string): Float32Array[] {
  const objects = batchObjects(ctx, name);
  return memo(maskMemo, objects, `${layoutKey(layout)}/${opts.psi}/${opts.anchorScale}/${opts.ratios}`, () => imitationMask(layout, objects as ObjectList[], opts));
}
