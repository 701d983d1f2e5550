import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { KdError } from '@tfkd/kd-core';
import { boxOverlap, composeScenes, fashionScenesDataset, loadFashionScenes, resizeBilinear, sceneObjects, type SceneItems, type SceneSet } from './fashion-scenes';
import { encodeIdx } from './idx';

/** 28x28 items: item k is a solid block (value `v`) at rows r0..r1, cols c0..c1, label `label`. */
function blocks(specs: Array<{ r: [number, number]; c: [number, number]; v?: number; label: number }>): SceneItems {
  const images = new Float32Array(specs.length * 784);
  specs.forEach((s, k) => {
    for (let y = s.r[0]; y <= s.r[1]; y++) for (let x = s.c[0]; x <= s.c[1]; x++) images[k * 784 + y * 28 + x] = s.v ?? 1;
  });
  return { images, labels: Int32Array.from(specs.map((s) => s.label)), shape: [28, 28, 1] };
}

const ITEMS = blocks([
  { r: [10, 14], c: [5, 19], label: 3 },
  { r: [0, 27], c: [0, 27], v: 0.5, label: 7 },
  { r: [3, 24], c: [9, 17], v: 0.8, label: 1 },
  { r: [12, 12], c: [12, 12], label: 9 },
]);

function plane(set: SceneSet, s: number): { img: Float32Array; mask: Int32Array } {
  const n = set.shape[0] * set.shape[1];
  return { img: set.images.subarray(s * n, (s + 1) * n), mask: set.masks.subarray(s * n, (s + 1) * n) };
}

describe('composeScenes', () => {
  it('is deterministic: same items and options give identical bytes; another seed differs', () => {
    const a = composeScenes(ITEMS, { count: 12, seed: 5 });
    const b = composeScenes(ITEMS, { count: 12, seed: 5 });
    const c = composeScenes(ITEMS, { count: 12, seed: 6 });
    for (const k of ['images', 'masks', 'boxes', 'classes', 'offsets', 'sourceItems'] as const) expect(Buffer.from(a[k].buffer).equals(Buffer.from(b[k].buffer))).toBe(true);
    expect(Buffer.from(a.images.buffer).equals(Buffer.from(c.images.buffer))).toBe(false);
  });

  it('a hand-made item at scale 1 gets its exact box, pixels and mask (box edges exclusive)', () => {
    const set = composeScenes(blocks([{ r: [10, 14], c: [5, 19], label: 3 }]), { count: 5, seed: 1, items: [1, 1], scale: [1, 1], size: 40 });
    for (let s = 0; s < set.count; s++) {
      const { boxes, classes } = sceneObjects(set, s);
      expect(classes).toEqual([3]);
      const [x1, y1, x2, y2] = boxes[0];
      expect([x2 - x1, y2 - y1]).toEqual([15, 5]);
      expect(x1 >= 0 && y1 >= 0 && x2 <= 40 && y2 <= 40).toBe(true);
      const { img, mask } = plane(set, s);
      const want = (p: number): [number, number] => {
        const [x, y] = [p % 40, Math.floor(p / 40)];
        return x >= x1 && x < x2 && y >= y1 && y < y2 ? [1, 4] : [0, 0];
      };
      expect(Array.from(img)).toEqual(Array.from(img, (_, p) => want(p)[0]));
      expect(Array.from(mask)).toEqual(Array.from(mask, (_, p) => want(p)[1]));
    }
  });

  it('a one-pixel item has a one-pixel box [x, y, x+1, y+1]', () => {
    const set = composeScenes(blocks([{ r: [12, 12], c: [12, 12], label: 9 }]), { count: 3, seed: 2, items: [1, 1], scale: [1, 1], size: 16 });
    for (let s = 0; s < 3; s++) {
      const [x1, y1, x2, y2] = sceneObjects(set, s).boxes[0];
      expect([x2 - x1, y2 - y1]).toEqual([1, 1]);
      expect(plane(set, s).img[y1 * 16 + x1]).toBe(1);
    }
  });

  it('scaled items: the box is the tight box of the non-zero pixels (checked on single-item scenes)', () => {
    const set = composeScenes(ITEMS, { count: 20, seed: 3, items: [1, 1], scale: [0.6, 1.4] });
    for (let s = 0; s < set.count; s++) {
      const { img } = plane(set, s);
      let [x1, y1, x2, y2] = [64, 64, -1, -1];
      img.forEach((v, i) => {
        if (v > 0) {
          const [x, y] = [i % 64, Math.floor(i / 64)];
          [x1, y1, x2, y2] = [Math.min(x1, x), Math.min(y1, y), Math.max(x2, x + 1), Math.max(y2, y + 1)];
        }
      });
      expect(sceneObjects(set, s).boxes[0]).toEqual([x1, y1, x2, y2]);
    }
  });

  it('bilinear resize with half-pixel centres: identity at scale 1, 2x of [0, 1] is [0, 0.25, 0.75, 1]', () => {
    const src = Float32Array.from([0.1, 0.2, 0.3, 0.4]);
    expect(Array.from(resizeBilinear(src, 2, 2, 2, 2))).toEqual(Array.from(src));
    expect(Array.from(resizeBilinear(Float32Array.from([0, 1]), 1, 2, 1, 4))).toEqual([0, 0.25, 0.75, 1]);
  });

  it('masks agree with boxes and pixels; overlaps stay within the declared bounds', () => {
    const set = composeScenes(ITEMS, { count: 40, seed: 4, items: [2, 4], maxIou: 0.2, maxCover: 0.5 });
    let objects = 0;
    const bad: string[] = [];
    for (let s = 0; s < set.count; s++) {
      const { boxes, classes } = sceneObjects(set, s);
      objects += boxes.length;
      for (let i = 0; i < boxes.length; i++)
        for (let j = i + 1; j < boxes.length; j++) {
          const { iou, cover } = boxOverlap(boxes[i], boxes[j]);
          expect(iou).toBeLessThanOrEqual(0.2);
          expect(cover).toBeLessThanOrEqual(0.5);
        }
      const { img, mask } = plane(set, s);
      for (let p = 0; p < img.length; p++) {
        if (mask[p] > 0 !== img[p] > 0.05) bad.push(`scene ${s} pixel ${p}: mask ${mask[p]}, value ${img[p]}`); // opaque above the threshold
        if (mask[p] === 0) continue;
        const [x, y] = [p % 64, Math.floor(p / 64)];
        const owner = boxes.some((b, o) => classes[o] === mask[p] - 1 && x >= b[0] && x < b[2] && y >= b[1] && y < b[3]);
        if (!owner) bad.push(`scene ${s} pixel ${p}: class ${mask[p] - 1} outside every box of that class`);
      }
    }
    expect(bad).toEqual([]);
    expect(objects).toBeGreaterThan(60);
  });

  it('later items are on top in the mask', () => {
    // Two full-canvas-wide items cannot both fit under maxIou 0.3, so allow any overlap here.
    const full = blocks([{ r: [0, 27], c: [0, 27], label: 2 }, { r: [0, 27], c: [0, 27], label: 5 }]);
    const set = composeScenes(full, { count: 8, seed: 9, items: [2, 2], scale: [1, 1], size: 28, maxIou: 1, maxCover: 1 });
    for (let s = 0; s < 8; s++) {
      const { classes } = sceneObjects(set, s);
      expect(classes).toHaveLength(2);
      expect(new Set(plane(set, s).mask)).toEqual(new Set([classes[1] + 1]));
    }
  });

  it('empty scenes (items [0, 0]) have no objects and an all-background mask', () => {
    const set = composeScenes(ITEMS, { count: 3, seed: 1, items: [0, 0] });
    expect(Array.from(set.offsets)).toEqual([0, 0, 0, 0]);
    expect(set.masks.every((m) => m === 0) && set.images.every((v) => v === 0)).toBe(true);
  });

  it('rejects bad options with KD_SPEC_INVALID at the option key', () => {
    const err = (f: () => unknown): KdError => {
      try {
        f();
      } catch (e) {
        return e as KdError;
      }
      throw new Error('expected a failure');
    };
    expect(err(() => composeScenes(ITEMS, { count: 1, seed: 1, items: [3, 1] })).path).toBe('items');
    expect(err(() => composeScenes(ITEMS, { count: 1, seed: 1, maxIou: 2 })).code).toBe('KD_SPEC_INVALID');
    expect(err(() => composeScenes(ITEMS, { count: -1, seed: 1 })).path).toBe('count');
  });
});

describe('loadFashionScenes / fashion-scenes definition', () => {
  let tmp: string;
  beforeAll(() => {
    // Train items are all grey (128), test items all white (255): a train scene holding a test
    // item would show a pixel above 128/255.
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tfkd-scenes-'));
    const px = (n: number, v: number) => new Uint8Array(n * 784).map((_, i) => (Math.floor((i % 784) / 28) % 27 > 3 ? v : 0));
    fs.writeFileSync(path.join(tmp, 'train-images-idx3-ubyte'), encodeIdx([4, 28, 28], px(4, 128)));
    fs.writeFileSync(path.join(tmp, 'train-labels-idx1-ubyte'), encodeIdx([4], [0, 1, 2, 3]));
    fs.writeFileSync(path.join(tmp, 't10k-images-idx3-ubyte'), encodeIdx([3, 28, 28], px(3, 255)));
    fs.writeFileSync(path.join(tmp, 't10k-labels-idx1-ubyte'), encodeIdx([3], [7, 8, 9]));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('train scenes use train items only, test scenes test items only', () => {
    const { train, test } = loadFashionScenes({ path: tmp, train: 30, test: 20, seed: 3 });
    expect(Math.max(...train.images)).toBeCloseTo(128 / 255, 6);
    expect(Array.from(new Set(train.classes)).every((c) => c <= 3)).toBe(true);
    expect(Math.max(...test.images)).toBe(1);
    expect(Array.from(new Set(test.classes)).every((c) => c >= 7)).toBe(true);
    expect(Math.max(...train.sourceItems)).toBeLessThan(4);
    expect(Math.max(...test.sourceItems)).toBeLessThan(3);
    expect([train.source, test.source]).toEqual(['full', 'full']);
  });

  it('loads through the definition (defaults, run seed) from the shipped subset', async () => {
    const opts = fashionScenesDataset.options.parse({ subset: true, train: 6, test: 4, limit: { train: 50, test: 50 } }) as Record<string, unknown>;
    expect(opts).toMatchObject({ size: 64, items: [1, 4], scale: [0.6, 1.4], maxIou: 0.3, maxCover: 0.6, threshold: 0.05 });
    const a = await fashionScenesDataset.load(opts, { seed: 11, specPath: 'data' });
    const b = await fashionScenesDataset.load({ ...opts, seed: 11 }, { seed: 99, specPath: 'data' });
    expect(Buffer.from(a.train.images.buffer).equals(Buffer.from(b.train.images.buffer))).toBe(true);
    expect([a.train.count, a.test.count, a.train.shape]).toEqual([6, 4, [64, 64, 1]]);
    expect(a.train.source).toBe('subset');
    expect(a.train.offsets[6]).toBeGreaterThanOrEqual(6);
  });
});
