import { type PluginDefinition, type Rng } from '@tfkd/kd-core';
import { z } from 'zod';
import { defineAugment, type Images, viewOption } from './image';

/** One image, HWC, values in [0, 1]. */
export interface Image {
  data: Float32Array;
  h: number;
  w: number;
  c: number;
}

export const RANDAUGMENT_OPS = [
  'identity',
  'shearX',
  'shearY',
  'translateX',
  'translateY',
  'rotate',
  'brightness',
  'color',
  'contrast',
  'sharpness',
  'posterize',
  'solarize',
  'autoContrast',
  'equalize',
] as const;
export type RandAugmentOp = (typeof RANDAUGMENT_OPS)[number];

/** Ops whose magnitude takes a random sign (torchvision `_augmentation_space`'s `signed`). */
const SIGNED: ReadonlySet<RandAugmentOp> = new Set(['shearX', 'shearY', 'translateX', 'translateY', 'rotate', 'brightness', 'color', 'contrast', 'sharpness']);

/** The ops that make sense for `channels`: `color` (saturation) is the identity on grayscale, so it is left out there. */
export function opsFor(channels: number): readonly RandAugmentOp[] {
  return channels === 1 ? RANDAUGMENT_OPS.filter((op) => op !== 'color') : RANDAUGMENT_OPS;
}

/**
 * The op's magnitude at bin `m` of `bins` (torchvision `RandAugment._augmentation_space`, float
 * images): shear 0.3, translate 150/331 of the side (whole pixels), rotate 30°, the four blend
 * factors 0.9 (factor 1 + v), posterize 8 − round(4m/(bins − 1)) bits, solarize threshold 1 − m/(bins − 1).
 */
export function opMagnitude(op: RandAugmentOp, m: number, bins: number, h: number, w: number): number {
  const f = bins > 1 ? m / (bins - 1) : 0;
  switch (op) {
    case 'shearX':
    case 'shearY':
      return 0.3 * f;
    case 'translateX':
      return Math.trunc((150 / 331) * w * f);
    case 'translateY':
      return Math.trunc((150 / 331) * h * f);
    case 'rotate':
      return 30 * f;
    case 'brightness':
    case 'color':
    case 'contrast':
    case 'sharpness':
      return 0.9 * f;
    case 'posterize':
      return 8 - Math.round(4 * f);
    case 'solarize':
      return 1 - f;
    default:
      return 0;
  }
}

const clamp01 = (v: number): number => (v < 0 ? 0 : v > 1 ? 1 : v);
const to8 = (v: number): number => Math.round(clamp01(v) * 255);

/**
 * Inverse-map geometry: output (r, col) reads source (a·r + b·col + e, c·r + d·col + f), nearest
 * pixel, 0 outside (torchvision's fill default).
 */
function remap(img: Image, [a, b, e, c, d, f]: readonly number[]): Float32Array {
  const { h, w, c: ch } = img;
  const out = new Float32Array(img.data.length);
  for (let r = 0; r < h; r++) {
    for (let col = 0; col < w; col++) {
      const ir = Math.round(a * r + b * col + e);
      const ic = Math.round(c * r + d * col + f);
      if (ir < 0 || ir >= h || ic < 0 || ic >= w) continue;
      const dst = (r * w + col) * ch;
      const src = (ir * w + ic) * ch;
      for (let k = 0; k < ch; k++) out[dst + k] = img.data[src + k];
    }
  }
  return out;
}

/** out[i] = fn(a[i]) without Float32Array.from's per-element callback overhead. */
function map(a: Float32Array, fn: (v: number, i: number) => number): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = fn(a[i], i);
  return out;
}

function gray(img: Image, p: number): number {
  const d = img.data;
  return img.c === 3 ? 0.2989 * d[p] + 0.587 * d[p + 1] + 0.114 * d[p + 2] : d[p];
}

/** out = clamp(f·a + (1 − f)·b) per value, b given per pixel or as one number. */
function blend(img: Image, f: number, degenerate: (p: number) => number): Float32Array {
  const out = new Float32Array(img.data.length);
  for (let p = 0; p < img.h * img.w; p++) {
    const b = degenerate(p * img.c);
    for (let ch = 0; ch < img.c; ch++) out[p * img.c + ch] = clamp01(f * img.data[p * img.c + ch] + (1 - f) * b);
  }
  return out;
}

/** PIL / torchvision equalize of one channel of 8-bit values. */
function equalizeChannel(img: Image, ch: number, out: Float32Array): void {
  const hist = new Float64Array(256);
  const n = img.h * img.w;
  for (let p = 0; p < n; p++) hist[to8(img.data[p * img.c + ch])]++;
  let last = 255;
  while (last > 0 && hist[last] === 0) last--;
  const step = Math.floor((n - hist[last]) / 255);
  if (step === 0) {
    for (let p = 0; p < n; p++) out[p * img.c + ch] = img.data[p * img.c + ch];
    return;
  }
  const lut = new Float64Array(256);
  let cum = 0;
  for (let i = 0; i < 256; i++) {
    lut[i] = Math.min(255, Math.floor((cum + Math.floor(step / 2)) / step));
    cum += hist[i];
  }
  for (let p = 0; p < n; p++) out[p * img.c + ch] = lut[to8(img.data[p * img.c + ch])] / 255;
}

/**
 * One RandAugment op on one image with the signed magnitude `v` (`opMagnitude`, sign applied).
 * Geometry is nearest-neighbour with fill 0: shears about the top-left corner (torchvision
 * `center=[0, 0]`), rotation about the image centre, translation by whole pixels.
 */
export function applyOp(op: RandAugmentOp, img: Image, v: number): Float32Array {
  const { h, w, c } = img;
  const cy = (h - 1) / 2;
  const cx = (w - 1) / 2;
  switch (op) {
    case 'identity':
      return Float32Array.from(img.data);
    case 'shearX':
      return remap(img, [1, 0, 0, v, 1, 0]);
    case 'shearY':
      return remap(img, [1, v, 0, 0, 1, 0]);
    case 'translateX':
      return remap(img, [1, 0, 0, 0, 1, -v]);
    case 'translateY':
      return remap(img, [1, 0, -v, 0, 1, 0]);
    case 'rotate': {
      const t = (-v * Math.PI) / 180; // a positive angle turns the image counter-clockwise, as torchvision
      const [cos, sin] = [Math.cos(t), Math.sin(t)];
      // source row = cy + (r − cy)·cos − (col − cx)·sin, source column = cx + (r − cy)·sin + (col − cx)·cos
      return remap(img, [cos, -sin, cy - cy * cos + cx * sin, sin, cos, cx - cy * sin - cx * cos]);
    }
    case 'brightness':
      return blend(img, 1 + v, () => 0);
    case 'color':
      return blend(img, 1 + v, (p) => gray(img, p));
    case 'contrast': {
      let s = 0;
      for (let p = 0; p < h * w; p++) s += gray(img, p * c);
      const mean = s / (h * w);
      return blend(img, 1 + v, () => mean);
    }
    case 'sharpness': {
      // degenerate = 3×3 smoothing [[1,1,1],[1,5,1],[1,1,1]]/13 inside, the border pixels unchanged
      const deg = Float32Array.from(img.data);
      for (let r = 1; r < h - 1; r++) {
        for (let col = 1; col < w - 1; col++) {
          for (let ch = 0; ch < c; ch++) {
            let s = 4 * img.data[(r * w + col) * c + ch];
            for (let dr = -1; dr <= 1; dr++) for (let dc = -1; dc <= 1; dc++) s += img.data[((r + dr) * w + col + dc) * c + ch];
            deg[(r * w + col) * c + ch] = s / 13;
          }
        }
      }
      const f = 1 + v;
      return map(img.data, (a, i) => clamp01(f * a + (1 - f) * deg[i]));
    }
    case 'posterize': {
      const mask = (0xff << (8 - v)) & 0xff;
      return map(img.data, (a) => (to8(a) & mask) / 255);
    }
    case 'solarize':
      return map(img.data, (a) => (a >= v ? 1 - a : a));
    case 'autoContrast': {
      const out = new Float32Array(img.data.length);
      for (let ch = 0; ch < c; ch++) {
        let lo = Infinity;
        let hi = -Infinity;
        for (let p = 0; p < h * w; p++) {
          const a = img.data[p * c + ch];
          if (a < lo) lo = a;
          if (a > hi) hi = a;
        }
        const scale = hi > lo ? 1 / (hi - lo) : 1;
        const min = hi > lo ? lo : 0;
        for (let p = 0; p < h * w; p++) out[p * c + ch] = clamp01((img.data[p * c + ch] - min) * scale);
      }
      return out;
    }
    case 'equalize': {
      const out = new Float32Array(img.data.length);
      for (let ch = 0; ch < c; ch++) equalizeChannel(img, ch, out);
      return out;
    }
  }
}

/** Per image and op slot: the op's index in `ops` and the sign (±1) of its magnitude. */
export interface RandAugmentPlan {
  ops: readonly RandAugmentOp[];
  numOps: number;
  choice: Int32Array;
  sign: Int8Array;
}

/** torchvision's draws per image and slot: an op uniformly, then for a signed op a fair sign. */
export function drawRandAugmentPlan(rng: Rng, n: number, numOps: number, ops: readonly RandAugmentOp[]): RandAugmentPlan {
  const choice = new Int32Array(n * numOps);
  const sign = new Int8Array(n * numOps).fill(1);
  for (let s = 0; s < n * numOps; s++) {
    choice[s] = rng.int(ops.length);
    if (SIGNED.has(ops[choice[s]]) && rng.int(2) === 1) sign[s] = -1;
  }
  return { ops, numOps, choice, sign };
}

/** Applies each image's `numOps` ops in order at magnitude bin `magnitude` of `bins`. */
export function randAugment(img: Images, plan: RandAugmentPlan, o: { magnitude: number; bins: number }): Images {
  const d = img.h * img.w * img.c;
  const out = new Float32Array(img.data.length);
  for (let i = 0; i < img.n; i++) {
    let cur: Image = { data: img.data.subarray(i * d, (i + 1) * d), h: img.h, w: img.w, c: img.c };
    for (let k = 0; k < plan.numOps; k++) {
      const s = i * plan.numOps + k;
      const op = plan.ops[plan.choice[s]];
      cur = { ...cur, data: applyOp(op, cur, plan.sign[s] * opMagnitude(op, o.magnitude, o.bins, img.h, img.w)) };
    }
    out.set(cur.data, i * d);
  }
  return { ...img, data: out };
}

export const randAugmentSchema = z
  .object({
    numOps: z.number().int().min(1).default(2).describe('N: ops applied to each image in turn (torchvision num_ops=2)'),
    magnitude: z.number().int().min(0).default(9).describe('M: magnitude bin, 0..bins − 1 (torchvision magnitude=9 of 31 bins)'),
    bins: z.number().int().min(2).default(31).describe('number of magnitude bins (torchvision num_magnitude_bins=31)'),
    ops: z
      .array(z.enum(RANDAUGMENT_OPS))
      .min(1)
      .nullable()
      .default(null)
      .describe('the op list; null = every op that makes sense for the images (all 14; `color` left out on grayscale)'),
    view: viewOption,
  })
  .strict()
  .refine((o) => o.magnitude < o.bins, { message: 'magnitude must be below bins', path: ['magnitude'] });
export type RandAugmentOptions = z.output<typeof randAugmentSchema>;

/** `augment/randaugment`: N random ops per image at magnitude M. */
export const randAugmentAugment: PluginDefinition<typeof randAugmentSchema> = defineAugment({
  id: 'augment/randaugment',
  describe: 'RandAugment (Cubuk et al. 2020, torchvision’s op list and magnitudes): each image gets numOps ops drawn uniformly, at magnitude bin `magnitude` with a random sign, per sample from the plugin’s seeded generator',
  options: randAugmentSchema,
  apply: (img, rng, o) => randAugment(img, drawRandAugmentPlan(rng, img.n, o.numOps, o.ops ?? opsFor(img.c)), o),
});
