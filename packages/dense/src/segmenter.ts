/**
 * A small encoder–decoder segmenter (U-Net-like, additive skips) with per-pixel logits [H, W, K].
 *
 * Width w: `enc1` 3×3·w (full size) → max-pool → `enc2a`, `enc2` 3×3·2w (1/2) → max-pool →
 * `enc3a`, `enc3` 3×3·4w (1/4), all ReLU. Decoder: `up3` = 1×1·2w(enc3) bilinear ×2, added to enc2,
 * `dec2` 3×3·2w ReLU; `up2` = 1×1·w(dec2) bilinear ×2, added to enc1, `dec1` 3×3·w ReLU; `logits`
 * 1×1·K. Taps enc1, enc2, enc3, dec2, dec1. For fashion-scenes K = 11 (background + 10 classes).
 */
import type { ModelBuildOptions } from '@tfkd/kd-core';
import { input, layers, model, type LayersModel, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import { checkDenseOptions, conv, sizedDefinitions } from './common';

export interface SegmenterOptions extends ModelBuildOptions {
  /** Base width w (channels w, 2w, 4w). */
  width?: number;
}

export const SEGMENTER_TAPS = ['enc1', 'enc2', 'enc3', 'dec2', 'dec1'];

export function buildSegmenter(opts: SegmenterOptions, name = 'segmenter', defaultWidth = 8): LayersModel {
  const c = checkDenseOptions(name, opts, defaultWidth, 4);
  const w = c.width;
  const pool = (n: string, x: SymbolicTensor) => layers.maxPooling2d({ poolSize: 2, strides: 2, name: n }).apply(x) as SymbolicTensor;
  const up = (n: string, x: SymbolicTensor) => layers.upSampling2d({ size: [2, 2], interpolation: 'bilinear', name: n }).apply(x) as SymbolicTensor;
  const add = (n: string, a: SymbolicTensor, b: SymbolicTensor) => layers.add({ name: n }).apply([a, b]) as SymbolicTensor;
  const x0 = input({ shape: c.inputShape, name: 'input' });
  const enc1 = conv(c.seed, 'enc1', x0, { filters: w, relu: true });
  let x = conv(c.seed, 'enc2a', pool('pool1', enc1), { filters: 2 * w, relu: true });
  const enc2 = conv(c.seed, 'enc2', x, { filters: 2 * w, relu: true });
  x = conv(c.seed, 'enc3a', pool('pool2', enc2), { filters: 4 * w, relu: true });
  const enc3 = conv(c.seed, 'enc3', x, { filters: 4 * w, relu: true });
  const up3 = up('up3', conv(c.seed, 'proj3', enc3, { filters: 2 * w, kernel: 1 }));
  const dec2 = conv(c.seed, 'dec2', add('skip2', up3, enc2), { filters: 2 * w, relu: true });
  const up2 = up('up2', conv(c.seed, 'proj2', dec2, { filters: w, kernel: 1 }));
  const dec1 = conv(c.seed, 'dec1', add('skip1', up2, enc1), { filters: w, relu: true });
  const logits = conv(c.seed, 'logits', dec1, { filters: c.numClasses, kernel: 1 });
  return model({ inputs: x0, outputs: logits, name });
}

const describeSegmenter = (w: number): string =>
  `Encoder–decoder segmenter, width ${w}: 3 encoder stages (w, 2w, 4w; max-pool 2), bilinear up-sampling with ` +
  'additive 1×1-projected skips, per-pixel logits [H, W, K] (K = 11 for fashion-scenes). Taps enc1, enc2, enc3, dec2, dec1.';

export const [segmenterDefinition, segmenterTeacherDefinition, segmenterStudentDefinition] = sizedDefinitions('segmenter', { student: 8, teacher: 16 }, describeSegmenter, SEGMENTER_TAPS, buildSegmenter, ['segmentation']);
