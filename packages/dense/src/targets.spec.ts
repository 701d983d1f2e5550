import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { decodeDetections } from './decode';
import { levelOffsets, locationTable, makeLayout } from './layout';
import { encodeDetectionTargets, imitationMask, type ObjectList } from './targets';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// 16×16 input: p3 stride 4 (4×4 locations, centres 2, 6, 10, 14), p4 stride 8 (2×2, centres 4, 12).
const layout = makeLayout([16, 16, 1], 2, 2, [
  { name: 'p3', stride: 4, range: [-1, 8] },
  { name: 'p4', stride: 8, range: [8, Infinity] },
]);
const P3 = (x: number, y: number) => ((y - 2) / 4) * 4 + (x - 2) / 4;
const P4 = (x: number, y: number) => 16 + ((y - 4) / 8) * 2 + (x - 4) / 8;

function positives(t: ReturnType<typeof encodeDetectionTargets>, n = 0): Record<number, { label: number; d: number[] }> {
  const out: Record<number, { label: number; d: number[] }> = {};
  for (let l = 0; l < layout.locations; l++)
    if (t.positive[n * layout.locations + l]) out[l] = { label: t.labels[n * layout.locations + l], d: Array.from(t.distances.subarray(4 * (n * layout.locations + l), 4 * (n * layout.locations + l) + 4)) };
  return out;
}

describe('layout', () => {
  it('location centres x·stride + stride//2, level-major then row-major', () => {
    const t = locationTable(layout);
    expect(layout.locations).toBe(20);
    expect(levelOffsets(layout)).toEqual([0, 16, 20]);
    expect([t.x[P3(6, 10)], t.y[P3(6, 10)], t.stride[P4(12, 4)], t.x[P4(12, 4)], t.y[P4(12, 4)], t.level[P4(4, 12)]]).toEqual([6, 10, 8, 12, 4, 1]);
  });
});

describe('encodeDetectionTargets (FCOS)', () => {
  it('hand case: each object lands on the level its largest distance fits, distances in strides', () => {
    // A = [1,1,11,7] (class 1): p3 locations (6,2) and (6,6) have max distance 5 ≤ 8; (2,2) has 9.
    // B = [0,0,16,16] (class 0): every p3 candidate has max distance ≥ 10; all four p4 locations qualify.
    const t = encodeDetectionTargets(layout, [{ boxes: [1, 1, 11, 7, 0, 0, 16, 16], classes: [1, 0] }]);
    expect(positives(t)).toEqual({
      [P3(6, 2)]: { label: 1, d: [5 / 4, 1 / 4, 5 / 4, 5 / 4] },
      [P3(6, 6)]: { label: 1, d: [5 / 4, 5 / 4, 5 / 4, 1 / 4] },
      [P4(4, 4)]: { label: 0, d: [0.5, 0.5, 1.5, 1.5] },
      [P4(12, 4)]: { label: 0, d: [1.5, 0.5, 0.5, 1.5] },
      [P4(4, 12)]: { label: 0, d: [0.5, 1.5, 1.5, 0.5] },
      [P4(12, 12)]: { label: 0, d: [1.5, 1.5, 0.5, 0.5] },
    });
    expect(t.numPositive).toBe(6);
    expect(Array.from(t.boxes.subarray(4 * P3(6, 2), 4 * P3(6, 2) + 4))).toEqual([1, 1, 11, 7]);
    expect(t.labels[P3(2, 2)]).toBe(2); // background = numClasses
  });

  it('a location inside two candidates goes to the smaller box (the first on equal areas)', () => {
    const smaller = encodeDetectionTargets(layout, [{ boxes: [3, 0, 13, 7, 4, 0, 12, 6], classes: [1, 0] }], { centerSampling: 0 });
    expect(smaller.labels[P3(6, 2)]).toBe(0);
    const tie = encodeDetectionTargets(layout, [{ boxes: [4, 0, 12, 6, 4, 0, 12, 6], classes: [1, 0] }], { centerSampling: 0 });
    expect(tie.labels[P3(6, 2)]).toBe(1);
  });

  it('centre sampling keeps the locations within 1.5 strides of the centre (clipped to the box)', () => {
    const one = makeLayout([16, 16, 1], 2, 8, [{ name: 'p3', stride: 4, range: [-1, Infinity] }]);
    const count = (r: number) => encodeDetectionTargets(one, [{ boxes: [1, 1, 15, 7], classes: [0] }], { centerSampling: r }).numPositive;
    expect(count(0)).toBe(8); // x ∈ {2, 6, 10, 14}, y ∈ {2, 6}
    expect(count(1.5)).toBe(4); // centre (8, 4) ± 6: x ∈ {6, 10}
  });

  it('empty images, degenerate boxes and boxes at the border', () => {
    const images: ObjectList[] = [{ boxes: [], classes: [] }, { boxes: [5, 5, 5, 9, 7, 3, 2, 9], classes: [0, 1] }, { boxes: [0, 0, 4, 4], classes: [1] }];
    const t = encodeDetectionTargets(layout, images);
    expect([t.count, t.numPositive]).toEqual([3, 1]);
    expect(positives(t, 2)).toEqual({ [P3(2, 2)]: { label: 1, d: [0.5, 0.5, 0.5, 0.5] } });
  });
});

describe('imitationMask (Wang et al.)', () => {
  const one = makeLayout([16, 16, 1], 1, 8, [{ name: 'p3', stride: 4, range: [-1, Infinity] }]);
  const mask = (psi: number) => Array.from(imitationMask(one, [{ boxes: [0, 0, 8, 8], classes: [0] }], { psi, anchorScale: 2, ratios: [1] })[0]);

  it('anchors (side 8) with IoU > ψ·max: ψ = 0.5 keeps the four best (IoU 36/92), ψ = 0.2 adds the 12/116 ones', () => {
    // rows of the 4×4 map
    expect(mask(0.5)).toEqual([1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(mask(0.2)).toEqual([1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0]);
  });

  it('per level [N, h, w]; the threshold is ψ × the best anchor over all levels; empty images give zeros', () => {
    // Box [0, 0, 16, 16], anchor sides 16 (p3) and 32 (p4), ratios 0.5/1/2: the best IoU is 0.62 (a
    // p3 anchor), every p4 anchor has 0.25. ψ = 0.5 leaves p4 out, ψ = 0.3 takes it in (numpy).
    const m = (psi: number) => imitationMask(layout, [{ boxes: [], classes: [] }, { boxes: [0, 0, 16, 16], classes: [0] }], { psi });
    const half = m(0.5);
    expect(half.map((a) => a.length)).toEqual([32, 8]);
    expect([...half[0].subarray(0, 16), ...half[1].subarray(0, 4)].every((v) => v === 0)).toBe(true);
    expect(Array.from(half[0].subarray(16))).toEqual([0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 0]);
    expect(Array.from(half[1].subarray(4))).toEqual([0, 0, 0, 0]);
    const low = m(0.3);
    expect([...low[0].subarray(16), ...low[1].subarray(4)].every((v) => v === 1)).toBe(true);
  });
});

describe('decodeDetections', () => {
  it('perfect heads decode to the assigned box; NMS drops a same-class duplicate, keeps another class', () => {
    // Object [2, 2, 10, 10]: its only positive is p3 (6, 6), 1 stride from every side.
    const L = layout.locations;
    const cls = new Float32Array(L * 2).fill(-10);
    const box = new Float32Array(L * 4 * 3);
    const put = (l: number, k: number, score: number, bins: number[]) => {
      cls[l * 2 + k] = score;
      bins.forEach((b, e) => (box[(l * 4 + e) * 3 + b] = 30));
    };
    put(P3(6, 6), 0, 4, [1, 1, 1, 1]); // σ(4) = 0.982
    put(P3(6, 2), 0, 2, [1, 0, 1, 2]); // the same box from (6, 2): a duplicate, lower score
    put(P3(10, 10), 1, 1, [2, 2, 0, 0]); // [2, 2, 10, 10] again, other class
    const heads = { cls: tf.tensor3d(cls, [1, L, 2]), box: tf.tensor4d(box, [1, L, 4, 3]) };
    const [d] = decodeDetections(heads, layout);
    expect(Array.from(d.classes)).toEqual([0, 1]);
    expect(Array.from(d.scores)).toEqual([Math.fround(1 / (1 + Math.exp(-4))), Math.fround(1 / (1 + Math.exp(-1)))].map((v) => expect.closeTo(v, 6)));
    Array.from(d.boxes).forEach((v, i) => expect(v).toBeCloseTo([2, 2, 10, 10][i % 4], 3));
    tf.dispose([heads.cls, heads.box]);
  });
});
