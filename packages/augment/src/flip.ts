import { type PluginDefinition, type Rng } from '@tfkd/kd-core';
import { z } from 'zod';
import { at, like, defineAugment, type Images, viewOption } from './image';

/** Horizontal flip of the images whose `flips[i]` is 1 (column j ↔ w − 1 − j); the others are copied. */
export function horizontalFlip(img: Images, flips: Uint8Array): Images {
  const out = like(img);
  const { h, w, c } = img;
  for (let i = 0; i < img.n; i++) {
    for (let r = 0; r < h; r++) {
      for (let col = 0; col < w; col++) {
        const d = at(img, i, r, col);
        const s = at(img, i, r, flips[i] ? w - 1 - col : col);
        for (let ch = 0; ch < c; ch++) out.data[d + ch] = img.data[s + ch];
      }
    }
  }
  return out;
}

/** Per sample, 1 with probability p. */
export function drawFlips(rng: Rng, n: number, p: number): Uint8Array {
  const f = new Uint8Array(n);
  for (let i = 0; i < n; i++) f[i] = rng.next() < p ? 1 : 0;
  return f;
}

export const flipSchema = z
  .object({
    p: z.number().min(0).max(1).default(0.5).describe('probability that an image is flipped (torchvision RandomHorizontalFlip p=0.5)'),
    view: viewOption,
  })
  .strict();
export type FlipOptions = z.output<typeof flipSchema>;

/** `augment/flip`: horizontal flip per sample. */
export const flipAugment: PluginDefinition<typeof flipSchema> = defineAugment({
  id: 'augment/flip',
  describe: 'horizontal flip of each image with probability p (per sample, from the plugin’s seeded generator)',
  options: flipSchema,
  apply: (img, rng, o) => horizontalFlip(img, drawFlips(rng, img.n, o.p)),
});
