/**
 * Hand-built COCO cases and what pycocotools says about them. The reference numbers were made with
 * pycocotools built from source: cocodataset/cocoapi at 8c9bcc3 (fetched snapshot), PythonAPI
 * `python3 setup.py build_ext --inplace` with Debian 12's cython3 0.29.32 and python3-numpy 1.24.2
 * (two shims in the driver script: `np.float = float`, which cocoeval.py still uses, and empty
 * `matplotlib` modules, which coco.py imports for plotting only). Each case went through
 * COCO()/loadRes/COCOeval('bbox').evaluate()/accumulate() with categories 1..numClasses and
 * `[x, y, x2 − x, y2 − y]` boxes; map/map50/map75 are means of `eval['precision'][t, :, k, 0, −1]`
 * over entries > −1 (t = all, 0, 5), mar of `eval['recall'][:, k, 0, −1]`, as `summarize()` does.
 * The pycocotools 2.0.11 wheel (manylinux, from the PyPI mirror pip reaches here) with numpy 2.4
 * gave the same numbers to the last digit.
 */
export interface CocoImage { gt: number[][]; gtClasses: number[]; crowd?: number[]; det: number[][]; scores: number[]; detClasses: number[] }
export interface CocoCase { numClasses: number; maxDets?: number[]; images: CocoImage[] }

export const CASES: Record<string, CocoCase> = {
  basic: {
    numClasses: 2,
    images: [
      {
        gt: [[0, 0, 10, 10], [20, 20, 30, 40], [40, 5, 50, 15]],
        gtClasses: [0, 1, 0],
        det: [[1, 1, 10, 10], [20, 22, 30, 40], [40, 5, 49, 15], [0, 30, 8, 40]],
        scores: [0.9, 0.8, 0.3, 0.6],
        detClasses: [0, 1, 0, 0],
      },
      {
        gt: [[5, 5, 25, 25]],
        gtClasses: [1],
        det: [[6, 5, 25, 26], [30, 30, 40, 40], [5, 5, 25, 25]],
        scores: [0.7, 0.95, 0.2],
        detClasses: [1, 1, 0],
      },
    ],
  },
  crowd: {
    numClasses: 1,
    images: [
      {
        gt: [[0, 0, 30, 30], [40, 40, 50, 50]],
        gtClasses: [0, 0],
        det: [[2, 2, 12, 12], [5, 5, 15, 15], [40, 40, 50, 50], [40, 41, 50, 50], [20, 20, 35, 35]],
        scores: [0.9, 0.85, 0.8, 0.7, 0.6],
        detClasses: [0, 0, 0, 0, 0],
        crowd: [1, 0],
      },
      {
        gt: [[0, 0, 64, 64]],
        gtClasses: [0],
        det: [[10, 10, 20, 20]],
        scores: [0.5],
        detClasses: [0],
        crowd: [1],
      },
    ],
  },
  empty: {
    numClasses: 3,
    images: [
      {
        gt: [],
        gtClasses: [],
        det: [[0, 0, 10, 10]],
        scores: [0.9],
        detClasses: [0],
      },
      {
        gt: [[0, 0, 10, 10]],
        gtClasses: [0],
        det: [],
        scores: [],
        detClasses: [],
      },
      {
        gt: [],
        gtClasses: [],
        det: [[5, 5, 15, 15]],
        scores: [0.4],
        detClasses: [2],
      },
    ],
  },
  allEmpty: {
    numClasses: 1,
    images: [
      {
        gt: [],
        gtClasses: [],
        det: [[0, 0, 10, 10]],
        scores: [0.9],
        detClasses: [0],
      },
    ],
  },
  duplicates: {
    numClasses: 1,
    images: [
      {
        gt: [[0, 0, 10, 10], [20, 0, 30, 10]],
        gtClasses: [0, 0],
        det: [[0, 0, 10, 10], [0, 0, 10, 10], [20, 0, 30, 10], [0, 0, 10, 9]],
        scores: [0.9, 0.9, 0.9, 0.5],
        detClasses: [0, 0, 0, 0],
      },
    ],
  },
  iouGrid: {
    numClasses: 1,
    images: [
      {
        gt: [[0, 0, 4, 4], [10, 0, 30, 1], [40, 0, 50, 1]],
        gtClasses: [0, 0, 0],
        det: [[0, 0, 4, 3], [10, 0, 27, 1], [40, 0, 49, 1]],
        scores: [0.9, 0.8, 0.7],
        detClasses: [0, 0, 0],
      },
    ],
  },
  recallGrid: {
    numClasses: 1,
    images: [
      {
        gt: [[0, 0, 2, 2], [3, 0, 5, 2], [6, 0, 8, 2], [9, 0, 11, 2], [12, 0, 14, 2], [15, 0, 17, 2], [18, 0, 20, 2], [21, 0, 23, 2], [24, 0, 26, 2], [27, 0, 29, 2], [30, 0, 32, 2], [33, 0, 35, 2], [36, 0, 38, 2], [39, 0, 41, 2], [42, 0, 44, 2], [45, 0, 47, 2], [48, 0, 50, 2], [51, 0, 53, 2], [54, 0, 56, 2], [57, 0, 59, 2]],
        gtClasses: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        det: [[0, 0, 2, 2], [3, 0, 5, 2], [6, 0, 8, 2], [9, 0, 11, 2], [12, 0, 14, 2], [15, 0, 17, 2], [18, 0, 20, 2], [0, 50, 2, 52], [5, 50, 7, 52], [21, 0, 23, 2], [24, 0, 26, 2], [27, 0, 29, 2], [30, 0, 32, 2], [33, 0, 35, 2], [10, 50, 12, 52]],
        scores: [0.95, 0.94, 0.9299999999999999, 0.9199999999999999, 0.9099999999999999, 0.8999999999999999, 0.8899999999999999, 0.85, 0.84, 0.8, 0.79, 0.78, 0.77, 0.76, 0.5],
        detClasses: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
      },
    ],
  },
  maxDets: {
    numClasses: 2,
    maxDets: [1],
    images: [
      {
        gt: [[0, 0, 10, 10], [20, 0, 30, 10], [0, 20, 10, 30]],
        gtClasses: [0, 0, 1],
        det: [[20, 0, 30, 10], [0, 0, 10, 10], [0, 20, 10, 30], [0, 21, 10, 30]],
        scores: [0.6, 0.9, 0.3, 0.8],
        detClasses: [0, 0, 1, 1],
      },
      {
        gt: [[0, 0, 10, 10]],
        gtClasses: [0],
        det: [[0, 0, 10, 10], [1, 1, 10, 10]],
        scores: [0.5, 0.7],
        detClasses: [0, 0],
      },
    ],
  },
};

export const PYCOCOTOOLS: Record<string, { map: number; map50: number; map75: number; mar: number; perClass: number[]; perClass50: number[] }> = {
  basic: { map: 0.6090759075907589, map50: 0.750825082508251, map75: 0.750825082508251, mar: 0.85, perClass: [0.6181518151815181, 0.5999999999999999], perClass50: [0.834983498349835, 0.6666666666666669] },
  crowd: { map: 0.9999999999999998, map50: 0.9999999999999999, map75: 0.9999999999999999, mar: 1.0, perClass: [0.9999999999999998], perClass50: [0.9999999999999999] },
  empty: { map: 0.0, map50: 0.0, map75: 0.0, mar: 0.0, perClass: [0.0, -1.0, -1.0], perClass50: [0.0, -1.0, -1.0] },
  allEmpty: { map: -1.0, map50: -1.0, map75: -1.0, mar: -1.0, perClass: [-1.0], perClass50: [-1.0] },
  duplicates: { map: 0.8349834983498348, map50: 0.834983498349835, map75: 0.834983498349835, mar: 1.0, perClass: [0.8349834983498348], perClass50: [0.834983498349835] },
  iouGrid: { map: 0.6996699669966996, map50: 1.0, map75: 1.0, mar: 0.7666666666666666, perClass: [0.6996699669966996], perClass50: [1.0] },
  recallGrid: { map: 0.5671852899575672, map50: 0.5671852899575671, map75: 0.5671852899575671, mar: 0.5999999999999999, perClass: [0.5671852899575672], perClass50: [0.5671852899575671] },
  maxDets: { map: 0.7326732673267327, map50: 0.8316831683168316, map75: 0.8316831683168316, mar: 0.7333333333333334, perClass: [0.5653465346534653, 0.8999999999999999], perClass50: [0.6633663366336634, 0.9999999999999999] },
};
