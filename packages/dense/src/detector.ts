/**
 * A small one-stage anchor-free detector (FCOS assignment, GFL box head) for 64×64 scenes.
 *
 * Backbone (width w): `stem` 3×3·w → `c2` 3×3·2w /2 → `c3a` /2, `c3` (3×3·4w, stride 4) → `c4a` /2,
 * `c4` (3×3·8w, stride 8), all ReLU. Neck (FPN-lite, F = 4w channels, linear): `p4` = 1×1(c4);
 * `p3` = 1×1(c3) + nearest-up(p4). Head per level (not shared): `<p>_tower` 3×3·F ReLU, then
 * `cls_<p>` 3×3·K (bias −log(99), the RetinaNet/FCOS prior π = 0.01) and `box_<p>` 3×3·4(n+1):
 * per side (l, t, r, b) logits of a distribution over the distances 0..n strides (GFL, n = regMax).
 * Outputs, in order: cls_p3, box_p3, cls_p4, box_p4. Taps: c3, c4 (backbone), p3, p4 (neck).
 */
import type { ModelBuildOptions } from '@tfkd/kd-core';
import * as tf from '@tensorflow/tfjs-core';
import type { Tensor } from '@tensorflow/tfjs-core';
import { input, layers, model, type LayersModel, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import { checkDenseOptions, conv, sizedDefinitions } from './common';
import { makeLayout, type DetectorLayout } from './layout';

export interface DetectorOptions extends ModelBuildOptions {
  /** Backbone base width w (channels w, 2w, 4w, 8w; neck and head 4w). */
  width?: number;
  /** Largest distance bin n of the box distributions (GFL reg_max). Default 8. */
  regMax?: number;
}

export const DETECTOR_TAPS = ['c3', 'c4', 'p3', 'p4'];

/** The layout a detector built with these options has (levels, locations, output names). */
export function detectorLayout(opts: DetectorOptions): DetectorLayout {
  const c = checkDenseOptions('detector', opts, 8, 8);
  return makeLayout(c.inputShape, c.numClasses, opts.regMax ?? 8);
}

export function buildDetector(opts: DetectorOptions, name = 'detector', defaultWidth = 8): LayersModel {
  const c = checkDenseOptions(name, opts, defaultWidth, 8);
  const regMax = opts.regMax ?? 8;
  const w = c.width;
  const f = 4 * w;
  const x0 = input({ shape: c.inputShape, name: 'input' });
  let x = conv(c.seed, 'stem', x0, { filters: w, relu: true });
  x = conv(c.seed, 'c2', x, { filters: 2 * w, strides: 2, relu: true });
  x = conv(c.seed, 'c3a', x, { filters: 4 * w, strides: 2, relu: true });
  const c3 = conv(c.seed, 'c3', x, { filters: 4 * w, relu: true });
  x = conv(c.seed, 'c4a', c3, { filters: 8 * w, strides: 2, relu: true });
  const c4 = conv(c.seed, 'c4', x, { filters: 8 * w, relu: true });
  const p4 = conv(c.seed, 'p4', c4, { filters: f, kernel: 1 });
  const lat3 = conv(c.seed, 'lat3', c3, { filters: f, kernel: 1 });
  const up4 = layers.upSampling2d({ size: [2, 2], name: 'up4' }).apply(p4) as SymbolicTensor;
  const p3 = layers.add({ name: 'p3' }).apply([lat3, up4]) as SymbolicTensor;
  const outputs: SymbolicTensor[] = [];
  for (const [lv, feat] of [['p3', p3], ['p4', p4]] as const) {
    const tower = conv(c.seed, `${lv}_tower`, feat, { filters: f, relu: true });
    outputs.push(conv(c.seed, `cls_${lv}`, tower, { filters: c.numClasses, bias: -Math.log(99) }));
    outputs.push(conv(c.seed, `box_${lv}`, tower, { filters: 4 * (regMax + 1) }));
  }
  return model({ inputs: x0, outputs, name });
}

const describeDetector = (w: number): string =>
  `One-stage anchor-free detector (FCOS targets, GFL distributional boxes), width ${w}: conv backbone to stride 8, ` +
  `FPN-lite neck p3 (stride 4) + p4 (stride 8), per-level tower + cls_<p> [h,w,K] and box_<p> [h,w,4(n+1)] outputs; ` +
  'options width, regMax (8). Taps c3, c4, p3, p4.';

export const [detectorDefinition, detectorTeacherDefinition, detectorStudentDefinition] = sizedDefinitions('detector', { student: 8, teacher: 16 }, describeDetector, DETECTOR_TAPS, buildDetector, ['detection']);

/** The heads of all levels, flattened: cls [N, L, K] logits and box [N, L, 4, n+1] logits. */
export interface DetectorHeads {
  cls: tf.Tensor3D;
  box: tf.Tensor4D;
}

/**
 * Concatenates the per-level head outputs (model output order, or by name) into location-major
 * tensors, in the location order of {@link locationTable}.
 */
export function detectorHeads(outputs: Tensor[] | Record<string, Tensor>, layout: DetectorLayout): DetectorHeads {
  const get = (i: number): Tensor => (Array.isArray(outputs) ? outputs[i] : outputs[layout.outputs[i]]);
  return tf.tidy(() => {
    const cls: Tensor[] = [];
    const box: Tensor[] = [];
    layout.levels.forEach((lv, i) => {
      const c = get(2 * i);
      const b = get(2 * i + 1);
      if (!c || !b || c.shape[1] !== lv.size[0] || c.shape[2] !== lv.size[1]) {
        throw new Error(`detectorHeads: level ${lv.name} expects outputs of ${lv.size.join('x')}, got ${c?.shape} / ${b?.shape}`);
      }
      const n = c.shape[0];
      const hw = lv.size[0] * lv.size[1];
      cls.push(tf.reshape(c, [n, hw, layout.numClasses]));
      box.push(tf.reshape(b, [n, hw, 4, layout.regMax + 1]));
    });
    return { cls: tf.concat(cls, 1) as tf.Tensor3D, box: tf.concat(box, 1) as tf.Tensor4D };
  });
}
