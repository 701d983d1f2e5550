/**
 * COCO box mAP with the rules of pycocotools `COCOeval` (cocodataset/cocoapi
 * PythonAPI/pycocotools/cocoeval.py, common/maskApi.c `bbIou`), area range "all":
 * - per image and class, detections sorted by score (stable: input order on ties), at most
 *   `maxDets` kept; ground truth sorted non-crowd first;
 * - greedy matching per IoU threshold t: each detection takes the unmatched ground truth of highest
 *   IoU ≥ min(t, 1 − 1e−10) (the later one on equal IoU), preferring regular over crowd ground truth;
 *   a crowd region can absorb any number of detections, and a detection matched to it is ignored;
 *   crowd IoU is intersection / detection area;
 * - per class, detections of all images sorted by score (stable), precision made monotone, then read
 *   at the 101 recall points by `searchsorted(recall, r, 'left')` (0 past the last recall);
 * - AP of a class without (non-crowd) ground truth is −1 and left out of the means; with no class
 *   left the mAP is −1.
 * IoU thresholds and recall points are numpy's `linspace` grids (i·step + start, last = stop), not
 * the decimal values: the 8th threshold is 0.85 where 0.5 + 0.05·7 = 0.8500000000000001, the 9th is
 * 0.8999999999999999 (not 0.9), and the recall point 0.35 is 0.35000000000000003. An IoU or a recall
 * exactly on such a value is compared as pycocotools compares it; see {@link linspace}.
 */

/** Ground truth of one image: boxes x1, y1, x2, y2 (4 per object), classes, optional crowd flags. */
export interface GroundTruth {
  boxes: ArrayLike<number>;
  classes: ArrayLike<number>;
  crowd?: ArrayLike<number | boolean>;
}

/** Detections of one image. */
export interface ScoredBoxes {
  boxes: ArrayLike<number>;
  scores: ArrayLike<number>;
  classes: ArrayLike<number>;
}

/** numpy.linspace(start, stop, num) with endpoint: y_i = i·((stop − start)/(num − 1)) + start, y_last = stop. */
export function linspace(start: number, stop: number, num: number): number[] {
  const step = (stop - start) / (num - 1);
  return Array.from({ length: num }, (_, i) => (i === num - 1 ? stop : i * step + start));
}

/** pycocotools `iouThrs`: linspace(0.5, 0.95, 10). */
export const COCO_IOU_THRESHOLDS: readonly number[] = Object.freeze(linspace(0.5, 0.95, Math.round((0.95 - 0.5) / 0.05) + 1));
/** pycocotools `recThrs`: linspace(0, 1, 101). */
export const COCO_RECALL_THRESHOLDS: readonly number[] = Object.freeze(linspace(0, 1, Math.round(1 / 0.01) + 1));
const EPS = 2.220446049250313e-16; // np.spacing(1)

export interface MapOptions {
  numClasses: number;
  /** Detections per image and class. Default 100. */
  maxDets?: number;
  iouThresholds?: readonly number[];
}

export interface MapResult {
  /** AP@[.5:.95] (COCOeval stats[0]); −1 when no class has ground truth. */
  map: number;
  /** AP at IoU 0.5 (stats[1]). */
  map50: number;
  /** AP at IoU 0.75 (stats[2]). */
  map75: number;
  /** AR@maxDets (stats[8]): mean over thresholds and classes of the final recall. */
  mar: number;
  /** Per class AP@[.5:.95] and AP50 (−1: no ground truth). */
  perClass: number[];
  perClass50: number[];
}

interface ImageClassEval {
  scores: number[];
  /** [T][D]: matched to a regular ground truth. */
  matched: Uint8Array[];
  /** [T][D]: matched to a crowd region (ignored). */
  ignored: Uint8Array[];
  /** Non-crowd ground truth count. */
  numGt: number;
}

/** Streaming COCO evaluator: `add` one image at a time, `result` at the end. */
export class DetectionEvaluator {
  private readonly perClass: ImageClassEval[][];
  private readonly thresholds: readonly number[];
  private readonly maxDets: number;

  constructor(readonly opts: MapOptions) {
    this.thresholds = opts.iouThresholds ?? COCO_IOU_THRESHOLDS;
    this.maxDets = opts.maxDets ?? 100;
    this.perClass = Array.from({ length: opts.numClasses }, () => []);
  }

  add(gt: GroundTruth, det: ScoredBoxes): void {
    const box = (b: ArrayLike<number>, i: number) => [b[4 * i], b[4 * i + 1], b[4 * i + 2] - b[4 * i], b[4 * i + 3] - b[4 * i + 1]];
    for (let k = 0; k < this.opts.numClasses; k++) {
      const g: Array<{ b: number[]; crowd: boolean }> = [];
      for (let i = 0; i < gt.classes.length; i++) if (gt.classes[i] === k) g.push({ b: box(gt.boxes, i), crowd: Boolean(gt.crowd?.[i]) });
      const d: Array<{ b: number[]; s: number }> = [];
      for (let i = 0; i < det.classes.length; i++) if (det.classes[i] === k) d.push({ b: box(det.boxes, i), s: det.scores[i] });
      if (g.length === 0 && d.length === 0) continue;
      d.sort((a, b) => b.s - a.s); // stable, as numpy's mergesort on −score
      d.length = Math.min(d.length, this.maxDets);
      g.sort((a, b) => Number(a.crowd) - Number(b.crowd));
      this.perClass[k].push(this.match(g, d));
    }
  }

  private match(g: Array<{ b: number[]; crowd: boolean }>, d: Array<{ b: number[]; s: number }>): ImageClassEval {
    const ious = d.map((x) => g.map((y) => bbIou(x.b, y.b, y.crowd)));
    const T = this.thresholds.length;
    const matched = Array.from({ length: T }, () => new Uint8Array(d.length));
    const ignored = Array.from({ length: T }, () => new Uint8Array(d.length));
    this.thresholds.forEach((t, ti) => {
      const gtTaken = new Uint8Array(g.length);
      d.forEach((_, di) => {
        let best = Math.min(t, 1 - 1e-10);
        let m = -1;
        for (let gi = 0; gi < g.length; gi++) {
          if (gtTaken[gi] && !g[gi].crowd) continue;
          if (m > -1 && !g[m].crowd && g[gi].crowd) break;
          if (ious[di][gi] < best) continue;
          best = ious[di][gi];
          m = gi;
        }
        if (m === -1) return;
        gtTaken[m] = 1;
        if (g[m].crowd) ignored[ti][di] = 1;
        else matched[ti][di] = 1;
      });
    });
    return { scores: d.map((x) => x.s), matched, ignored, numGt: g.filter((x) => !x.crowd).length };
  }

  result(): MapResult {
    const T = this.thresholds.length;
    const R = COCO_RECALL_THRESHOLDS;
    const ap: number[][] = []; // [K][T], −1 when the class has no ground truth
    const recall: number[][] = [];
    for (const evals of this.perClass) {
      const npig = evals.reduce((s, e) => s + e.numGt, 0);
      if (npig === 0) {
        ap.push(new Array(T).fill(-1));
        recall.push(new Array(T).fill(-1));
        continue;
      }
      const all: Array<{ s: number; e: ImageClassEval; i: number }> = [];
      for (const e of evals) e.scores.forEach((s, i) => all.push({ s, e, i }));
      all.sort((a, b) => b.s - a.s);
      const apT: number[] = [];
      const recT: number[] = [];
      for (let t = 0; t < T; t++) {
        let tp = 0;
        let fp = 0;
        const rc: number[] = [];
        const pr: number[] = [];
        for (const { e, i } of all) {
          if (e.ignored[t][i]) {
            // an ignored detection still occupies its place in the cumulative sums
          } else if (e.matched[t][i]) tp++;
          else fp++;
          rc.push(tp / npig);
          pr.push(tp / (fp + tp + EPS));
        }
        recT.push(rc.length ? rc[rc.length - 1] : 0);
        for (let i = pr.length - 1; i > 0; i--) if (pr[i] > pr[i - 1]) pr[i - 1] = pr[i];
        let sum = 0;
        let j = 0;
        for (const r of R) {
          while (j < rc.length && rc[j] < r) j++;
          if (j < rc.length) sum += pr[j];
          else break;
        }
        apT.push(sum / R.length);
      }
      ap.push(apT);
      recall.push(recT);
    }
    const mean = (xs: number[]) => {
      const v = xs.filter((x) => x > -1);
      return v.length ? v.reduce((a, b) => a + b, 0) / v.length : -1;
    };
    const at = (thr: number) => this.thresholds.findIndex((t) => t === thr);
    const i50 = at(0.5);
    const i75 = at(0.75);
    return {
      map: mean(ap.flat()),
      map50: i50 < 0 ? -1 : mean(ap.map((a) => a[i50])),
      map75: i75 < 0 ? -1 : mean(ap.map((a) => a[i75])),
      mar: mean(recall.flat()),
      perClass: ap.map((a) => (a[0] === -1 ? -1 : a.reduce((s, v) => s + v, 0) / T)),
      perClass50: ap.map((a) => (i50 < 0 ? -1 : a[i50])),
    };
  }
}

/** maskApi.c `bbIou` on [x, y, w, h] boxes; a crowd ground truth divides by the detection area only. */
function bbIou(d: number[], g: number[], crowd: boolean): number {
  const w = Math.min(d[2] + d[0], g[2] + g[0]) - Math.max(d[0], g[0]);
  if (w <= 0) return 0;
  const h = Math.min(d[3] + d[1], g[3] + g[1]) - Math.max(d[1], g[1]);
  if (h <= 0) return 0;
  const i = w * h;
  const da = d[2] * d[3];
  return i / (crowd ? da : da + g[2] * g[3] - i);
}

/** One-shot mAP over images (gt[i] with det[i]). */
export function meanAveragePrecision(gt: GroundTruth[], det: ScoredBoxes[], opts: MapOptions): MapResult {
  const ev = new DetectionEvaluator(opts);
  gt.forEach((g, i) => ev.add(g, det[i] ?? { boxes: [], scores: [], classes: [] }));
  return ev.result();
}
