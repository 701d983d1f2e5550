/**
 * Where a detector's per-location outputs sit: feature levels, strides, location centres and the
 * FCOS regression range of each level. Everything downstream (targets, decoding, losses, the
 * imitation mask) works on the locations of all levels concatenated, level by level, row-major:
 * location index l = levelOffset + y·w + x.
 */
export interface DetectorLevel {
  /** Tap name of the level's feature map (`p3`, `p4`); the head outputs are `cls_<name>`, `box_<name>`. */
  name: string;
  stride: number;
  /** [h, w] of the level's feature map. */
  size: [number, number];
  /** FCOS range of max(l, t, r, b) in pixels for an object to be assigned here: lo ≤ m ≤ hi. */
  range: [number, number];
}

export interface DetectorLayout {
  /** NHWC input shape of one image. */
  inputShape: [number, number, number];
  numClasses: number;
  /** GFL's n: box distances are distributions over the integers 0..regMax (in strides). */
  regMax: number;
  levels: DetectorLevel[];
  /** Total locations L over all levels. */
  locations: number;
  /** Output names in model output order: cls and box per level. */
  outputs: string[];
}

export const DEFAULT_LEVELS: ReadonlyArray<Pick<DetectorLevel, 'name' | 'stride' | 'range'>> = [
  { name: 'p3', stride: 4, range: [-1, 16] },
  { name: 'p4', stride: 8, range: [16, Infinity] },
];

/** Layout of the zoo detector for an input shape (levels at strides 4 and 8). */
export function makeLayout(inputShape: [number, number, number], numClasses: number, regMax = 8, levels = DEFAULT_LEVELS): DetectorLayout {
  const full = levels.map((l) => ({
    name: l.name,
    stride: l.stride,
    range: [l.range[0], l.range[1]] as [number, number],
    size: [Math.ceil(inputShape[0] / l.stride), Math.ceil(inputShape[1] / l.stride)] as [number, number],
  }));
  return {
    inputShape,
    numClasses,
    regMax,
    levels: full,
    locations: full.reduce((s, l) => s + l.size[0] * l.size[1], 0),
    outputs: full.flatMap((l) => [`cls_${l.name}`, `box_${l.name}`]),
  };
}

/** First location index of each level, plus the total at the end. */
export function levelOffsets(layout: DetectorLayout): number[] {
  const out = [0];
  for (const l of layout.levels) out.push(out[out.length - 1] + l.size[0] * l.size[1]);
  return out;
}

/** Per location: centre x, y in pixels (mmdet's `x·stride + stride // 2`), stride and level index. */
export interface LocationTable {
  x: Float32Array;
  y: Float32Array;
  stride: Float32Array;
  level: Int32Array;
}

export function locationTable(layout: DetectorLayout): LocationTable {
  const n = layout.locations;
  const t: LocationTable = { x: new Float32Array(n), y: new Float32Array(n), stride: new Float32Array(n), level: new Int32Array(n) };
  let l = 0;
  layout.levels.forEach((lv, li) => {
    for (let i = 0; i < lv.size[0]; i++)
      for (let j = 0; j < lv.size[1]; j++, l++) {
        t.x[l] = j * lv.stride + Math.floor(lv.stride / 2);
        t.y[l] = i * lv.stride + Math.floor(lv.stride / 2);
        t.stride[l] = lv.stride;
        t.level[l] = li;
      }
  });
  return t;
}
