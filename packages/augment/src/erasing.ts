import { type PluginDefinition, type Rng } from '@tfkd/kd-core';
import { z } from 'zod';
import { at, defineAugment, type Images, viewOption } from './image';

/** Per sample (top, left, height, width) of the erased box; height 0 = not erased. */
export type Boxes = Int32Array;

/** Images with box i (`boxes[4i..4i+3]`) set to `value` in every channel; the rest copied. */
export function eraseBoxes(img: Images, boxes: Boxes, value: number): Images {
  const out = { ...img, data: Float32Array.from(img.data) };
  for (let i = 0; i < img.n; i++) {
    const [top, left, bh, bw] = [boxes[4 * i], boxes[4 * i + 1], boxes[4 * i + 2], boxes[4 * i + 3]];
    for (let r = top; r < top + bh; r++) out.data.fill(value, at(img, i, r, left), at(img, i, r, left + bw));
  }
  return out;
}

export interface ErasingDraw {
  p: number;
  scale: readonly [number, number];
  ratio: readonly [number, number];
  /** Cutout instead: a size×size square centred on a uniform pixel, clipped at the border. */
  size: number | null;
}

/**
 * Boxes as torchvision `RandomErasing.get_params` draws them: with probability p, up to 10 tries of
 * area = h·w·U(scale), aspect = exp(U(log ratio)), bh = round(√(area·aspect)), bw = round(√(area/aspect)),
 * kept when it fits (top, left uniform over the positions that fit); no box when all 10 fail.
 * With `size` (Cutout, DeVries & Taylor 2017, uoguelph-mlrg/Cutout): with probability p a size×size
 * square centred on a uniform pixel, clipped at the image border (so it may be smaller).
 */
export function drawErasingBoxes(rng: Rng, n: number, h: number, w: number, o: ErasingDraw): Boxes {
  const boxes = new Int32Array(4 * n);
  for (let i = 0; i < n; i++) {
    if (!(rng.next() < o.p)) continue;
    if (o.size !== null) {
      const cy = rng.int(h);
      const cx = rng.int(w);
      const half = Math.floor(o.size / 2);
      const y1 = Math.max(0, cy - half);
      const y2 = Math.min(h, cy + half);
      const x1 = Math.max(0, cx - half);
      const x2 = Math.min(w, cx + half);
      boxes.set([y1, x1, y2 - y1, x2 - x1], 4 * i);
      continue;
    }
    const [lr0, lr1] = [Math.log(o.ratio[0]), Math.log(o.ratio[1])];
    for (let attempt = 0; attempt < 10; attempt++) {
      const area = h * w * (o.scale[0] + rng.next() * (o.scale[1] - o.scale[0]));
      const aspect = Math.exp(lr0 + rng.next() * (lr1 - lr0));
      const bh = Math.round(Math.sqrt(area * aspect));
      const bw = Math.round(Math.sqrt(area / aspect));
      if (!(bh < h && bw < w) || bh === 0 || bw === 0) continue;
      boxes.set([rng.int(h - bh + 1), rng.int(w - bw + 1), bh, bw], 4 * i);
      break;
    }
  }
  return boxes;
}

const range = (lo: number, hi: number, what: string) =>
  z
    .tuple([z.number().positive(), z.number().positive()])
    .default([lo, hi])
    .refine(([a, b]) => a <= b, 'the first bound must not exceed the second')
    .describe(what);

export const randomErasingSchema = z
  .object({
    p: z.number().min(0).max(1).default(0.5).describe('probability that an image gets a box (torchvision RandomErasing p=0.5; Cutout: 1)'),
    scale: range(0.02, 0.33, 'box area as a fraction of the image, drawn uniformly (torchvision scale=(0.02, 0.33))'),
    ratio: range(0.3, 3.3, 'aspect ratio h/w, drawn log-uniformly (torchvision ratio=(0.3, 3.3))'),
    value: z.number().default(0).describe('value written into the box (torchvision value=0)'),
    size: z
      .number()
      .int()
      .positive()
      .nullable()
      .default(null)
      .describe('Cutout: a size×size square centred on a uniform pixel, clipped at the border (DeVries & Taylor: 16 on CIFAR); null = random erasing'),
    view: viewOption,
  })
  .strict();
export type RandomErasingOptions = z.output<typeof randomErasingSchema>;

/** `augment/random-erasing`: random erasing (Zhong et al. 2020) or Cutout. */
export const randomErasingAugment: PluginDefinition<typeof randomErasingSchema> = defineAugment({
  id: 'augment/random-erasing',
  describe: 'random erasing (Zhong et al., torchvision RandomErasing) or, with `size`, Cutout (DeVries & Taylor): one box per image set to `value`, drawn per sample from the plugin’s seeded generator',
  options: randomErasingSchema,
  apply: (img, rng, o) => eraseBoxes(img, drawErasingBoxes(rng, img.n, img.h, img.w, o), o.value),
});
