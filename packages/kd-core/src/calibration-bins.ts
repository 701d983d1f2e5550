/**
 * Bin edges, equal-mass bins and the small numeric helpers of the calibration metrics, in plain JS
 * (no tfjs): `CalibrationAccumulator` (calibration.ts) and metrics-ece's temperature scaling.
 *
 * Edge rule: with B equal-width bins, edge i is `Math.fround(i / B)` (the float32 nearest to i/B),
 * and a value c lies in bin b (0-based) when `edge[b] < c ≤ edge[b + 1]`. Confidences are float32
 * (tfjs and torch hold them so), and comparing them with float64 edges would put a float32 0.4
 * (0.4000000059604645 = fround(6/15)) one bin too high. Values ≤ 0 go to bin 0 (the reference code
 * drops an exact 0 from every bin; it only occurs for class-wise probabilities).
 */

/** The B + 1 float32 edges of B equal-width bins on [0, 1]: `Math.fround(i / B)`. */
export function binEdges(bins: number): Float64Array {
  checkBins(bins, 'bins');
  const edges = new Float64Array(bins + 1);
  for (let i = 0; i <= bins; i++) edges[i] = Math.fround(i / bins);
  return edges;
}

/** Bin index of a value in [0, 1] for the given edges (`edge[b] < c ≤ edge[b+1]`; c ≤ 0 → 0). */
export function binIndex(c: number, edges: Float64Array): number {
  const bins = edges.length - 1;
  let b = Math.min(bins - 1, Math.max(0, Math.ceil(c * bins) - 1));
  while (b > 0 && c <= edges[b]) b--;
  while (b < bins - 1 && c > edges[b + 1]) b++;
  return b;
}

export function checkBins(bins: number, name: string): void {
  if (!Number.isInteger(bins) || bins < 1) throw new RangeError(`${name} must be a positive integer, got ${bins}`);
}

/** Index of the largest value; the first one on ties (as tf.argMax and numpy.argmax). NaN → -1. */
export function argmaxRow(row: Float64Array, start: number, k: number): number {
  let best = -1;
  let v = -Infinity;
  for (let j = 0; j < k; j++) {
    const x = row[start + j];
    if (Number.isNaN(x)) return -1;
    if (best < 0 || x > v) {
      best = j;
      v = x;
    }
  }
  return best;
}

/** log Σ exp(scale·x_j) over one row, computed stably in float64. */
export function logSumExpRow(row: Float64Array, start: number, k: number, scale = 1): number {
  let m = -Infinity;
  for (let j = 0; j < k; j++) m = Math.max(m, scale * row[start + j]);
  if (!Number.isFinite(m)) return m;
  let s = 0;
  for (let j = 0; j < k; j++) s += Math.exp(scale * row[start + j] - m);
  return m + Math.log(s);
}

/** Rows (`number[][]`) or a flat row-major array, as a flat array plus its row length. */
export type Matrix = readonly (readonly number[])[] | ArrayLike<number>;

export interface FlatMatrix {
  /** Row-major values as float64 (typed, so that the inner loops stay monomorphic and fast). */
  data: Float64Array;
  rows: number;
  cols: number;
}

/** Flatten a matrix; `cols` is taken from the rows, from `numClasses`, or from `length / rows`. */
export function flattenMatrix(values: Matrix, rows: number, numClasses?: number): FlatMatrix {
  if (isRows(values)) {
    if (values.length !== rows) throw new RangeError(`got ${values.length} rows but ${rows} labels`);
    const cols = values.length > 0 ? values[0].length : (numClasses ?? 0);
    if (numClasses !== undefined && values.length > 0 && cols !== numClasses) {
      throw new RangeError(`rows have ${cols} columns but numClasses is ${numClasses}`);
    }
    const data = new Float64Array(rows * cols);
    values.forEach((r, i) => {
      if (r.length !== cols) throw new RangeError(`row ${i} has ${r.length} columns, row 0 has ${cols}`);
      data.set(r, i * cols);
    });
    return { data, rows, cols };
  }
  const cols = numClasses ?? (rows > 0 ? values.length / rows : 0);
  if (!Number.isInteger(cols) || values.length !== rows * cols) {
    throw new RangeError(`a flat array of ${values.length} values does not hold ${rows} rows of ${numClasses ?? '?'} classes`);
  }
  return { data: values instanceof Float64Array ? values : Float64Array.from(values), rows, cols };
}

function isRows(values: Matrix): values is readonly (readonly number[])[] {
  return Array.isArray(values) && (values.length === 0 || Array.isArray(values[0]));
}

/** One bin: its edges, how many samples it holds, their accuracy and mean confidence (NaN when empty). */
export interface BinStat {
  lo: number;
  hi: number;
  count: number;
  accuracy: number;
  confidence: number;
  /** |accuracy − confidence| (NaN when empty). */
  gap: number;
}

/**
 * Equal-mass (adaptive) bins of the confidences.
 *
 * Sort the n confidences ascending, c(1) ≤ … ≤ c(n). Bin b (1-based, b ≤ B) ends at rank
 * r_b = ceil(b·n / B) and its upper edge is hi_b = c(r_b); it holds the samples with
 * hi_(b−1) < c ≤ hi_b (hi_0 = −∞, shown as lo = 0). So bins hold ⌈n/B⌉ or ⌊n/B⌋ samples, the larger
 * ones first (as numpy.array_split), and ties are never split: every sample equal to an edge joins
 * that edge's bin, the next bin starts after the tie, and a bin left with no sample is dropped.
 * The result depends on the data only (not on their order).
 */
export function adaptiveBinning(confs: readonly number[], hits: readonly number[], bins: number): BinStat[] {
  const n = confs.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => confs[a] - confs[b] || a - b);
  const out: BinStat[] = [];
  let start = 0;
  let lo = 0;
  for (let b = 1; b <= bins && start < n; b++) {
    const rank = Math.floor((b * n + bins - 1) / bins);
    if (rank <= start) continue;
    const hi = confs[order[rank - 1]];
    let end = rank;
    while (end < n && confs[order[end]] === hi) end++;
    let confSum = 0;
    let hitSum = 0;
    for (let i = start; i < end; i++) {
      confSum += confs[order[i]];
      hitSum += hits[order[i]];
    }
    const count = end - start;
    const accuracy = hitSum / count;
    const confidence = confSum / count;
    out.push({ lo, hi, count, accuracy, confidence, gap: Math.abs(accuracy - confidence) });
    lo = hi;
    start = end;
  }
  return out;
}
