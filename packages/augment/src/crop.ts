import { KdError, type PluginDefinition, type Rng } from '@tfkd/kd-core';
import { z } from 'zod';
import { at, like, defineAugment, type Images, viewOption } from './image';

export type PadMode = 'zero' | 'reflect';

/** Source index of padded coordinate `q` (may be outside 0..size−1): reflect without repeating the edge, or −1 for zero padding. */
function source(q: number, size: number, mode: PadMode): number {
  if (q >= 0 && q < size) return q;
  if (mode === 'zero') return -1;
  return q < 0 ? -q : 2 * (size - 1) - q;
}

/**
 * Random crop after padding (torchvision `RandomCrop(size, padding, padding_mode)`): image i is padded
 * by `padding` pixels on each side and the window of the original size whose top-left corner is at
 * (`offsets[2i]`, `offsets[2i + 1]`) in the padded image is kept; offsets run over 0..2·padding, so
 * offset `padding` is the identity. Zero padding fills 0; reflect mirrors without repeating the edge
 * (numpy/torch 'reflect': row −1 is row 1).
 */
export function randomCrop(img: Images, offsets: Int32Array, o: { padding: number; mode: PadMode }): Images {
  const out = like(img);
  const { h, w, c } = img;
  for (let i = 0; i < img.n; i++) {
    const dr = offsets[2 * i] - o.padding;
    const dc = offsets[2 * i + 1] - o.padding;
    for (let r = 0; r < h; r++) {
      const sr = source(r + dr, h, o.mode);
      if (sr < 0) continue;
      for (let col = 0; col < w; col++) {
        const sc = source(col + dc, w, o.mode);
        if (sc < 0) continue;
        const d = at(img, i, r, col);
        const s = at(img, i, sr, sc);
        for (let ch = 0; ch < c; ch++) out.data[d + ch] = img.data[s + ch];
      }
    }
  }
  return out;
}

/** Per sample (row offset, column offset), each uniform in 0..2·padding. */
export function drawCropOffsets(rng: Rng, n: number, padding: number): Int32Array {
  const off = new Int32Array(2 * n);
  for (let i = 0; i < 2 * n; i++) off[i] = rng.int(2 * padding + 1);
  return off;
}

export const randomCropSchema = z
  .object({
    padding: z.number().int().min(1).default(4).describe('pixels of padding per side (torchvision RandomCrop(32, padding=4) on CIFAR; 2–4 suits 28×28)'),
    mode: z.enum(['zero', 'reflect']).default('zero').describe("'zero' fills the padding with 0 (torchvision padding_mode='constant'); 'reflect' mirrors without repeating the edge"),
    view: viewOption,
  })
  .strict();
export type RandomCropOptions = z.output<typeof randomCropSchema>;

/** `augment/random-crop`: pad, then crop at a per-sample random offset. */
export const randomCropAugment: PluginDefinition<typeof randomCropSchema> = defineAugment({
  id: 'augment/random-crop',
  describe: 'pad by `padding` (zero or reflect) and crop back to the image size at a per-sample offset from the plugin’s seeded generator (torchvision RandomCrop)',
  options: randomCropSchema,
  // checked when the plugin is created — at planning, before anything trains
  check(o, deps) {
    const [h, w] = deps.inputShape;
    if (o.mode === 'reflect' && (o.padding >= h || o.padding >= w)) {
      throw new KdError('KD_PLUGIN_OPTIONS', `${deps.name}: reflect padding ${o.padding} needs images larger than it (the data's are ${h}×${w})`, {
        path: `${deps.specPath}.with.padding`,
        fix: `give a padding below ${Math.min(h, w)}, or mode: zero`,
      });
    }
  },
  apply: (img, rng, o) => randomCrop(img, drawCropOffsets(rng, img.n, o.padding), o),
});
