import { Rng } from '@tfkd/kd-core';
import { drawCropOffsets, randomCrop, randomCropAugment } from './crop';
import { drawErasingBoxes, eraseBoxes } from './erasing';
import { drawFlips, horizontalFlip } from './flip';
import type { Images } from './image';
import { cutmix, drawCutmixBox, mixup } from './mix';
import { applyOp, drawRandAugmentPlan, opMagnitude, opsFor, randAugment } from './randaugment';

// Hand-made images: one 3×3 image 1..9, a two-image batch, and a 2×2 RGB image.
const img3 = (): Images => ({ data: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]), n: 1, h: 3, w: 3, c: 1 });
const rows = (img: Images, i = 0): number[][] =>
  Array.from({ length: img.h }, (_, r) => Array.from(img.data.subarray((i * img.h + r) * img.w * img.c, (i * img.h + r + 1) * img.w * img.c)));
const two = (): Images => ({ data: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 30, 40, 50, 60, 70, 80, 90]), n: 2, h: 3, w: 3, c: 1 });

describe('random crop', () => {
  it('zero padding: offset (0, 0) shifts the image down-right by the padding, offset (2p, 2p) up-left, (p, p) is the identity', () => {
    const pad = { padding: 1, mode: 'zero' as const };
    expect(rows(randomCrop(img3(), Int32Array.from([0, 0]), pad))).toEqual([[0, 0, 0], [0, 1, 2], [0, 4, 5]]);
    expect(rows(randomCrop(img3(), Int32Array.from([2, 2]), pad))).toEqual([[5, 6, 0], [8, 9, 0], [0, 0, 0]]);
    expect(rows(randomCrop(img3(), Int32Array.from([1, 1]), pad))).toEqual([[1, 2, 3], [4, 5, 6], [7, 8, 9]]);
    expect(rows(randomCrop(img3(), Int32Array.from([0, 2]), pad))).toEqual([[0, 0, 0], [2, 3, 0], [5, 6, 0]]);
  });

  it('reflect padding mirrors without repeating the edge (row −1 is row 1)', () => {
    const out = randomCrop(img3(), Int32Array.from([0, 0]), { padding: 1, mode: 'reflect' });
    expect(rows(out)).toEqual([[5, 4, 5], [2, 1, 2], [5, 4, 5]]);
    const far = randomCrop(img3(), Int32Array.from([2, 2]), { padding: 1, mode: 'reflect' });
    expect(rows(far)).toEqual([[5, 6, 5], [8, 9, 8], [5, 6, 5]]);
  });

  it('crops each sample at its own offsets, channels together', () => {
    const rgb: Images = { data: Float32Array.from({ length: 2 * 2 * 2 * 3 }, (_, i) => i + 1), n: 2, h: 2, w: 2, c: 3 };
    const out = randomCrop(rgb, Int32Array.from([1, 1, 0, 2]), { padding: 1, mode: 'zero' });
    expect(Array.from(out.data.subarray(0, 12))).toEqual(Array.from(rgb.data.subarray(0, 12))); // identity
    // sample 1, offset (0, 2): row 0 is padding; row 1 reads source row 0, columns 1, 2 → [pixel (0,1), 0]
    expect(Array.from(out.data.subarray(12))).toEqual([0, 0, 0, 0, 0, 0, 16, 17, 18, 0, 0, 0]);
  });

  it('draws offsets in 0..2p from the generator: same seed same, another seed different', () => {
    const a = drawCropOffsets(new Rng(3), 64, 2);
    expect(drawCropOffsets(new Rng(3), 64, 2)).toEqual(a);
    expect(drawCropOffsets(new Rng(4), 64, 2)).not.toEqual(a);
    expect(Math.min(...a)).toBe(0);
    expect(Math.max(...a)).toBe(4);
  });
});

describe('flip', () => {
  it('reverses the columns of the flagged samples only', () => {
    const out = horizontalFlip(two(), Uint8Array.from([1, 0]));
    expect(rows(out, 0)).toEqual([[3, 2, 1], [6, 5, 4], [9, 8, 7]]);
    expect(rows(out, 1)).toEqual(rows(two(), 1));
  });

  it('flags each sample with probability p, seeded', () => {
    const a = drawFlips(new Rng(1), 4000, 0.5);
    expect(drawFlips(new Rng(1), 4000, 0.5)).toEqual(a);
    expect(drawFlips(new Rng(2), 4000, 0.5)).not.toEqual(a);
    const mean = a.reduce((s, v) => s + v, 0) / a.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.03);
    expect(drawFlips(new Rng(1), 50, 0).every((v) => v === 0)).toBe(true);
  });
});

describe('random erasing / Cutout', () => {
  it('sets exactly the box to the value', () => {
    const out = eraseBoxes(two(), Int32Array.from([1, 0, 2, 2, 0, 0, 0, 0]), -1);
    expect(rows(out, 0)).toEqual([[1, 2, 3], [-1, -1, 6], [-1, -1, 9]]);
    expect(rows(out, 1)).toEqual(rows(two(), 1)); // height 0: not erased
  });

  it('random erasing boxes fit, have an area within scale·h·w (up to rounding) and are seeded', () => {
    const o = { p: 1, scale: [0.1, 0.3] as const, ratio: [0.5, 2] as const, size: null };
    const b = drawErasingBoxes(new Rng(5), 500, 28, 28, o);
    expect(drawErasingBoxes(new Rng(5), 500, 28, 28, o)).toEqual(b);
    expect(drawErasingBoxes(new Rng(6), 500, 28, 28, o)).not.toEqual(b);
    for (let i = 0; i < 500; i++) {
      const [t, l, h, w] = b.subarray(4 * i, 4 * i + 4);
      expect(h).toBeGreaterThan(0);
      expect(t + h).toBeLessThanOrEqual(28);
      expect(l + w).toBeLessThanOrEqual(28);
      expect(h * w).toBeGreaterThanOrEqual(0.1 * 784 * 0.75);
      expect(h * w).toBeLessThanOrEqual(0.3 * 784 * 1.25);
    }
    expect(drawErasingBoxes(new Rng(5), 50, 28, 28, { ...o, p: 0 }).every((v) => v === 0)).toBe(true);
  });

  it('boxes by hand from fixed draws (torchvision get_params: reject what does not fit, then a uniform position)', () => {
    // A generator replaying fixed uniforms (`next`) and integers (`int`, recording its bound).
    const scripted = (nexts: number[], ints: number[], bounds: number[]): Rng => ({ next: () => nexts.shift() as number, int: (n: number) => (bounds.push(n), ints.shift() as number) }) as unknown as Rng;
    const bounds: number[] = [];
    // 6×6, scale [0.3, 0.5], ratio [1/4, 4]. Draw p: 0 < 1.
    // try 1: area = 36·(0.3 + 1·0.2) = 18, aspect = exp(ln ¼ + 1·ln 16) = 4 → bh = round(√72) = round(8.49) = 8 ≥ 6: rejected
    // try 2: area = 36·0.3 = 10.8, aspect = exp(ln ¼ + 0.5·ln 16) = 1 → bh = bw = round(√10.8) = round(3.29) = 3: fits,
    //        top ~ int(6 − 3 + 1 = 4) → 1, left ~ int(4) → 2
    const b = drawErasingBoxes(scripted([0, 1, 1, 0, 0.5], [1, 2], bounds), 1, 6, 6, { p: 1, scale: [0.3, 0.5], ratio: [0.25, 4], size: null });
    expect(Array.from(b)).toEqual([1, 2, 3, 3]);
    expect(bounds).toEqual([4, 4]);
    // Cutout size 8 on 28×28, centre (2, 20): rows [2 − 4, 2 + 4) → [0, 6), columns [16, 24)
    const c = drawErasingBoxes(scripted([0], [2, 20], bounds), 1, 28, 28, { p: 1, scale: [0.02, 0.33], ratio: [0.3, 3.3], size: 8 });
    expect(Array.from(c)).toEqual([0, 16, 6, 8]);
    // p = 0.5 and a draw of 0.7: no box, and nothing else drawn
    const none = drawErasingBoxes(scripted([0.7], [], bounds), 1, 28, 28, { p: 0.5, scale: [0.02, 0.33], ratio: [0.3, 3.3], size: null });
    expect(Array.from(none)).toEqual([0, 0, 0, 0]);
    expect(bounds).toEqual([4, 4, 28, 28]);
  });

  it('Cutout: a size×size square centred on a pixel, clipped at the border', () => {
    const b = drawErasingBoxes(new Rng(8), 400, 28, 28, { p: 1, scale: [0.02, 0.33], ratio: [0.3, 3.3], size: 8 });
    let full = 0;
    for (let i = 0; i < 400; i++) {
      const [t, l, h, w] = b.subarray(4 * i, 4 * i + 4);
      expect(h).toBeLessThanOrEqual(8);
      expect(w).toBeLessThanOrEqual(8);
      if (h === 8) expect(t).toBeGreaterThanOrEqual(0);
      if (h < 8) expect(t === 0 || t + h === 28).toBe(true);
      if (w < 8) expect(l === 0 || l + w === 28).toBe(true);
      if (h === 8 && w === 8) full++;
    }
    expect(full).toBeGreaterThan(200); // (21/28)² ≈ 56 % are not clipped
  });
});

describe('mixup', () => {
  it('mixes images and one-hot targets with λ and the permutation', () => {
    const t = Float32Array.from([1, 0, 0, 0, 0, 1]); // labels 0 and 2, K = 3
    const r = mixup(two(), t, 3, Int32Array.from([1, 0]), 0.75);
    expect(Array.from(r.images.data.subarray(0, 3))).toEqual([0.75 * 1 + 0.25 * 10, 0.75 * 2 + 0.25 * 20, 0.75 * 3 + 0.25 * 30]);
    expect(Array.from(r.images.data.subarray(9, 12))).toEqual([0.75 * 10 + 0.25 * 1, 0.75 * 20 + 0.25 * 2, 0.75 * 30 + 0.25 * 3]);
    expect(Array.from(r.targets)).toEqual([0.75, 0, 0.25, 0.25, 0, 0.75]);
  });
});

describe('CutMix', () => {
  it('pastes the partner’s box and weights the targets by the area kept', () => {
    const t = Float32Array.from([1, 0, 0, 0, 1, 0]);
    const r = cutmix(two(), t, 3, Int32Array.from([1, 0]), { top: 0, left: 1, height: 2, width: 2 });
    expect(rows(r.images, 0)).toEqual([[1, 20, 30], [4, 50, 60], [7, 8, 9]]);
    expect(rows(r.images, 1)).toEqual([[10, 2, 3], [40, 5, 6], [70, 80, 90]]);
    expect(r.lambda).toBeCloseTo(1 - 4 / 9, 12);
    expect(Array.from(r.targets)).toEqual(Array.from([5 / 9, 4 / 9, 0, 4 / 9, 5 / 9, 0], Math.fround));
  });

  it('box: sides ⌊H·√(1 − λ)⌋ around a uniform centre, clipped; seeded', () => {
    const boxes = Array.from({ length: 300 }, (_, i) => drawCutmixBox(new Rng(i), 28, 28, 0.75));
    expect(drawCutmixBox(new Rng(7), 28, 28, 0.75)).toEqual(boxes[7]);
    for (const b of boxes) {
      expect(b.height).toBeLessThanOrEqual(14);
      expect(b.top + b.height).toBeLessThanOrEqual(28);
      expect(b.left + b.width).toBeLessThanOrEqual(28);
    }
    expect(boxes.filter((b) => b.height === 14 && b.width === 14).length).toBeGreaterThan(60); // unclipped: (15/28)² ≈ 29 %
    expect(new Set(boxes.map((b) => `${b.top},${b.left}`)).size).toBeGreaterThan(100);
    // exactly rand_bbox: the centre (cy, cx) is the generator's next two ints in [0, 28), and the box is
    // [c − 7, c + 7) ∩ [0, 28) on each axis (⌊28·√0.25⌋ = 14, half 7) — replayed with a twin generator
    boxes.forEach((b, i) => {
      const twin = new Rng(i);
      const [cy, cx] = [twin.int(28), twin.int(28)];
      expect(b).toEqual({ top: Math.max(0, cy - 7), left: Math.max(0, cx - 7), height: Math.min(28, cy + 7) - Math.max(0, cy - 7), width: Math.min(28, cx + 7) - Math.max(0, cx - 7) });
    });
  });

  it('box sides by hand: 2·⌊⌊H·√(1 − λ)⌋/2⌋ when unclipped (the reference halves the cut), 0 at λ = 1, clipped at the border', () => {
    // λ = 0.5, H = W = 28: ⌊28·0.70711⌋ = ⌊19.80⌋ = 19 → half 9 → side 18 (not 19)
    // a centre at 14 (row and column) is unclipped: rows 5..22
    const seq = (centre: number[]): Rng => ({ int: () => centre.shift() as number }) as unknown as Rng; // the centre draws, fixed
    expect(drawCutmixBox(seq([14, 14]), 28, 28, 0.5)).toEqual({ top: 5, left: 5, height: 18, width: 18 });
    // centre (2, 27): rows [−7, 11) → [0, 11), columns [18, 36) → [18, 28)
    expect(drawCutmixBox(seq([2, 27]), 28, 28, 0.5)).toEqual({ top: 0, left: 18, height: 11, width: 10 });
    // λ = 1: ⌊28·0⌋ = 0 → an empty box wherever the centre
    expect(drawCutmixBox(seq([14, 3]), 28, 28, 1)).toEqual({ top: 14, left: 3, height: 0, width: 0 });
    // non-square image, λ = 0.75: ⌊8·0.5⌋ = 4 rows (half 2), ⌊6·0.5⌋ = 3 columns (half 1 → side 2)
    expect(drawCutmixBox(seq([4, 3]), 8, 6, 0.75)).toEqual({ top: 2, left: 2, height: 4, width: 2 });
  });
});

describe('RandAugment ops on a hand-made image', () => {
  const im = { data: Float32Array.from([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]), h: 3, w: 3, c: 1 };
  const r3 = (a: Float32Array) => Array.from(a, (v) => Math.round(v * 1e4) / 1e4);
  it('geometry: translate, shear, rotate 90° (nearest, fill 0)', () => {
    expect(r3(applyOp('translateX', im, 1))).toEqual([0, 0.1, 0.2, 0, 0.4, 0.5, 0, 0.7, 0.8]);
    expect(r3(applyOp('translateY', im, -1))).toEqual([0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0, 0, 0]);
    expect(r3(applyOp('shearX', im, 1))).toEqual([0.1, 0.2, 0.3, 0.5, 0.6, 0, 0.9, 0, 0]);
    expect(r3(applyOp('rotate', im, 90))).toEqual([0.3, 0.6, 0.9, 0.2, 0.5, 0.8, 0.1, 0.4, 0.7]);
  });
  it('colour: brightness, contrast, solarize, posterize, autoContrast, sharpness', () => {
    expect(r3(applyOp('brightness', im, 0.5))).toEqual([0.15, 0.3, 0.45, 0.6, 0.75, 0.9, 1, 1, 1]);
    expect(r3(applyOp('contrast', im, -0.5))).toEqual([0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7]); // mean 0.5
    expect(r3(applyOp('solarize', im, 0.5))).toEqual([0.1, 0.2, 0.3, 0.4, 0.5, 0.4, 0.3, 0.2, 0.1]);
    expect(r3(applyOp('posterize', im, 1))).toEqual([0, 0, 0, 0, 0.502, 0.502, 0.502, 0.502, 0.502]); // 8-bit ≥ 128 → 128/255
    expect(r3(applyOp('autoContrast', im, 0))).toEqual([0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1]);
    // only the centre is inside: degenerate = (0.1+…+0.9 + 4·0.5)/13 = 6.5/13 = 0.5 = the pixel itself
    expect(r3(applyOp('sharpness', im, 0.9))).toEqual(r3(im.data));
  });
  it('equalize spreads an 8-bit histogram (PIL’s lookup table)', () => {
    const flat = { data: Float32Array.from([0, 0, 0, 0, 0, 0, 0, 0, 1].map((v) => v * 0.2)), h: 3, w: 3, c: 1 };
    // hist: 8 at 0, 1 at 51; step = ⌊(9 − 1)/255⌋ = 0 → unchanged
    expect(Array.from(applyOp('equalize', flat, 0))).toEqual(Array.from(flat.data));
    const big = { data: Float32Array.from({ length: 510 }, (_, i) => (i < 255 ? 0 : 0.5)), h: 1, w: 510, c: 1 };
    // hist: 255 at 0, 255 at 128; step = ⌊255/255⌋ = 1; lut[0] = 0, lut[128] = 255
    const eq = applyOp('equalize', big, 0);
    expect([eq[0], eq[509]]).toEqual([0, 1]);
  });
  it('magnitudes follow torchvision at M = 9 of 31 bins; grayscale drops color', () => {
    expect(opMagnitude('rotate', 9, 31, 28, 28)).toBeCloseTo(9, 12);
    expect(opMagnitude('shearX', 9, 31, 28, 28)).toBeCloseTo(0.09, 12);
    expect(opMagnitude('translateX', 9, 31, 28, 28)).toBe(3); // ⌊150/331·28·0.3⌋
    expect(opMagnitude('posterize', 9, 31, 28, 28)).toBe(7);
    expect(opMagnitude('solarize', 9, 31, 28, 28)).toBeCloseTo(0.7, 12);
    expect(opsFor(1)).not.toContain('color');
    expect(opsFor(3)).toHaveLength(14);
  });
  it('applies each image’s ops in order; the plan is seeded', () => {
    const plan = { ops: ['translateX', 'solarize'] as const, numOps: 2, choice: Int32Array.from([0, 1, 1, 1]), sign: Int8Array.from([1, 1, 1, 1]) };
    const batch: Images = { data: Float32Array.from([...im.data, ...im.data]), n: 2, h: 3, w: 3, c: 1 };
    const out = randAugment(batch, plan, { magnitude: 30, bins: 31 }); // translate ⌊150/331·3⌋ = 1, solarize threshold 0
    expect(r3(out.data.subarray(0, 9))).toEqual([1, 0.9, 0.8, 1, 0.6, 0.5, 1, 0.3, 0.2]);
    expect(r3(out.data.subarray(9))).toEqual(r3(im.data)); // solarized twice
    const ops = opsFor(1);
    const a = drawRandAugmentPlan(new Rng(2), 64, 2, ops);
    expect(drawRandAugmentPlan(new Rng(2), 64, 2, ops)).toEqual(a);
    expect(drawRandAugmentPlan(new Rng(3), 64, 2, ops).choice).not.toEqual(a.choice);
    expect(new Set(a.choice).size).toBe(ops.length);
    expect(Array.from(a.sign).some((s) => s === -1)).toBe(true);
  });
});

describe('augment/random-crop options against the data', () => {
  it('reflect padding as large as the image is KD_PLUGIN_OPTIONS when the plugin is created (at planning, before any step)', () => {
    const { fakePluginDeps } = jest.requireActual('@tfkd/kd-core/testing');
    const deps = { ...fakePluginDeps('augment/random-crop', [{ name: 'student', kind: 'student', trainable: true }]), inputShape: [4, 4, 1], specPath: 'plugins[0]' };
    expect(() => randomCropAugment.create({ padding: 4, mode: 'reflect' }, deps)).toThrow(
      expect.objectContaining({ code: 'KD_PLUGIN_OPTIONS', path: 'plugins[0].with.padding', fix: 'give a padding below 4, or mode: zero' }),
    );
    expect(() => randomCropAugment.create({ padding: 3, mode: 'reflect' }, deps)).not.toThrow();
    expect(() => randomCropAugment.create({ padding: 8, mode: 'zero' }, deps)).not.toThrow();
  });
});
