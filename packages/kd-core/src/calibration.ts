import { adaptiveBinning, argmaxRow, binEdges, binIndex, checkBins, flattenMatrix, logSumExpRow, type BinStat, type Matrix } from './calibration-bins';

/** Smallest probability used in `−log p_y` when the input is probabilities (as sklearn's log_loss did). */
export const PROB_EPSILON = 1e-15;

export interface CalibrationOptions {
  /** Equal-width bins for ECE, MCE, class-wise ECE and the reliability diagram. Default 15. */
  bins?: number;
  /** Equal-mass bins for the adaptive ECE. Default: `bins`. */
  adaptiveBins?: number;
  /** What `update` receives: probabilities (rows sum to 1) or logits (softmax applied here). Default 'probs'. */
  input?: 'probs' | 'logits';
  /** Number of classes; needed only for a flat array when it cannot be inferred (length / labels). */
  numClasses?: number;
}


export interface CalibrationResult {
  /** Samples seen (including invalid ones). */
  n: number;
  numClasses: number;
  /** Samples with a NaN probability or logit; when > 0 every metric is NaN. */
  invalid: number;
  accuracy: number;
  /** Σ_b (n_b / n)·|acc_b − conf_b| over equal-width bins of the top-label confidence. */
  ece: number;
  /** max_b |acc_b − conf_b| over non-empty equal-width bins. */
  mce: number;
  /** ECE over equal-mass bins of the confidence (ties never split; see README). */
  adaptiveEce: number;
  /** Mean over classes k of the ECE of p_k against the frequency of y = k. */
  classwiseEce: number;
  /** Mean −log p_y. */
  nll: number;
  /** Mean Σ_k (p_k − 1[y = k])². */
  brier: number;
  /** The equal-width bins (reliability diagram). */
  bins: BinStat[];
  /** The equal-mass bins behind `adaptiveEce` (empty bins dropped). */
  adaptive: BinStat[];
}

/**
 * Streaming calibration metrics: `update` per batch, `result` at the end. Everything is a running
 * sum in sample order (the adaptive ECE keeps the confidences), so any split into batches gives
 * exactly the result of one `computeCalibration` call on the whole data.
 *
 * Probabilities are held as float32 (`Math.fround`), as tfjs holds them: logits go through a float64
 * softmax and are rounded to float32; probabilities given as float64 are rounded too. NLL from logits
 * is the exact float64 log-softmax; from probabilities it is −log max(p_y, 1e-15).
 */
export class CalibrationAccumulator {
  readonly numBins: number;
  readonly numAdaptiveBins: number;
  readonly input: 'probs' | 'logits';
  private readonly edges: Float64Array;
  private k: number | undefined;
  private count!: Float64Array;
  private confSum!: Float64Array;
  private hitSum!: Float64Array;
  private cwCount!: Float64Array;
  private cwSum!: Float64Array;
  private cwHit!: Float64Array;
  private confs: number[] = [];
  private hits: number[] = [];
  private n = 0;
  private invalid = 0;
  private correct = 0;
  private nllSum = 0;
  private brierSum = 0;

  constructor(options: CalibrationOptions = {}) {
    this.numBins = options.bins ?? 15;
    checkBins(this.numBins, 'bins');
    this.numAdaptiveBins = options.adaptiveBins ?? this.numBins;
    checkBins(this.numAdaptiveBins, 'adaptiveBins');
    this.input = options.input ?? 'probs';
    if (this.input !== 'probs' && this.input !== 'logits') throw new RangeError(`input must be 'probs' or 'logits', got '${this.input}'`);
    this.edges = binEdges(this.numBins);
    this.k = options.numClasses;
    this.reset();
  }

  /** Samples seen so far. */
  get size(): number {
    return this.n;
  }

  /** Forget every sample (keeps the options and the number of classes). */
  reset(): void {
    const b = this.numBins;
    const kb = (this.k ?? 0) * b;
    this.count = new Float64Array(b);
    this.confSum = new Float64Array(b);
    this.hitSum = new Float64Array(b);
    this.cwCount = new Float64Array(kb);
    this.cwSum = new Float64Array(kb);
    this.cwHit = new Float64Array(kb);
    this.confs = [];
    this.hits = [];
    this.n = this.invalid = this.correct = this.nllSum = this.brierSum = 0;
  }

  /**
   * Add a batch: `values` are probabilities or logits (per `input`), as rows or a flat row-major
   * array [n·K]; `labels` are integer classes in [0, K).
   */
  update(values: Matrix, labels: ArrayLike<number>): this {
    const { data, rows, cols } = flattenMatrix(values, labels.length, this.k);
    if (rows === 0) return this;
    if (this.k === undefined) {
      this.k = cols;
      this.reset();
    } else if (cols !== this.k) {
      throw new RangeError(`batch has ${cols} classes, earlier batches had ${this.k}`);
    }
    if (cols < 1) throw new RangeError('need at least one class');
    this.check(data, labels, cols);
    const p = new Float64Array(cols);
    const ys = Int32Array.from(labels);
    for (let i = 0; i < rows; i++) this.add(data, i * cols, cols, ys[i], p);
    return this;
  }

  /** Validate the whole batch first, so that a bad batch leaves the sums untouched. */
  private check(data: Float64Array, labels: ArrayLike<number>, k: number): void {
    for (let i = 0; i < labels.length; i++) {
      const y = labels[i];
      if (!Number.isInteger(y) || y < 0 || y >= k) throw new RangeError(`label ${y} at row ${i} is not a class in [0, ${k})`);
    }
    if (this.input === 'logits') return;
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      if (v < 0 || v > 1.000001) {
        throw new RangeError(`probability ${v} at row ${Math.floor(i / k)} is outside [0, 1]; pass { input: 'logits' } for logits`);
      }
    }
  }

  private add(data: Float64Array, s: number, k: number, y: number, p: Float64Array): void {
    this.n++;
    let nll: number;
    if (this.input === 'logits') {
      const lse = logSumExpRow(data, s, k);
      for (let j = 0; j < k; j++) p[j] = Math.fround(Math.exp(data[s + j] - lse));
      nll = lse - data[s + y];
    } else {
      for (let j = 0; j < k; j++) p[j] = Math.fround(data[s + j]);
      nll = -Math.log(Math.max(p[y], PROB_EPSILON));
    }
    const pred = this.input === 'logits' ? argmaxRow(data, s, k) : argmaxRow(p, 0, k);
    if (pred < 0 || Number.isNaN(nll) || hasNaN(p)) {
      this.invalid++;
      return;
    }
    const conf = p[pred];
    const hit = pred === y ? 1 : 0;
    const b = binIndex(conf, this.edges);
    this.count[b]++;
    this.confSum[b] += conf;
    this.hitSum[b] += hit;
    this.confs.push(conf);
    this.hits.push(hit);
    this.correct += hit;
    this.nllSum += nll;
    let brier = 0;
    for (let j = 0; j < k; j++) {
      const t = j === y ? 1 : 0;
      brier += (p[j] - t) * (p[j] - t);
      const cb = j * this.numBins + binIndex(p[j], this.edges);
      this.cwCount[cb]++;
      this.cwSum[cb] += p[j];
      this.cwHit[cb] += t;
    }
    this.brierSum += brier;
  }

  /** The metrics over every sample seen since the last `reset` (NaN metrics when there is none). */
  result(): CalibrationResult {
    const n = this.n;
    const k = this.k ?? 0;
    const bins = binStats(this.edges, this.count, this.confSum, this.hitSum);
    const adaptive = adaptiveBinning(this.confs, this.hits, this.numAdaptiveBins);
    const valid = n > 0 && this.invalid === 0;
    const nan = (v: number) => (valid ? v : NaN);
    let classwise = 0;
    for (let j = 0; j < k; j++) {
      let e = 0;
      for (let b = 0; b < this.numBins; b++) e += Math.abs(this.cwHit[j * this.numBins + b] - this.cwSum[j * this.numBins + b]);
      classwise += e / n;
    }
    return {
      n,
      numClasses: k,
      invalid: this.invalid,
      accuracy: nan(this.correct / n),
      ece: nan(weightedGap(bins, n)),
      mce: nan(Math.max(...bins.filter((b) => b.count > 0).map((b) => b.gap))),
      adaptiveEce: nan(weightedGap(adaptive, n)),
      classwiseEce: nan(classwise / k),
      nll: nan(this.nllSum / n),
      brier: nan(this.brierSum / n),
      bins,
      adaptive,
    };
  }
}

/** One-shot metrics: the same numbers as a `CalibrationAccumulator` fed the data in any batches. */
export function computeCalibration(values: Matrix, labels: ArrayLike<number>, options: CalibrationOptions = {}): CalibrationResult {
  return new CalibrationAccumulator(options).update(values, labels).result();
}

function hasNaN(p: Float64Array): boolean {
  for (let j = 0; j < p.length; j++) if (Number.isNaN(p[j])) return true;
  return false;
}

/** Per-bin statistics from running sums (edges[b] < c ≤ edges[b+1]). */
export function binStats(edges: ArrayLike<number>, count: ArrayLike<number>, confSum: ArrayLike<number>, hitSum: ArrayLike<number>): BinStat[] {
  const out: BinStat[] = [];
  for (let b = 0; b < count.length; b++) {
    const c = count[b];
    const accuracy = c > 0 ? hitSum[b] / c : NaN;
    const confidence = c > 0 ? confSum[b] / c : NaN;
    out.push({ lo: edges[b], hi: edges[b + 1], count: c, accuracy, confidence, gap: Math.abs(accuracy - confidence) });
  }
  return out;
}

/** Σ_b (n_b / n)·|acc_b − conf_b|, skipping empty bins. */
export function weightedGap(bins: readonly BinStat[], n: number): number {
  let s = 0;
  for (const b of bins) if (b.count > 0) s += (b.count / n) * b.gap;
  return s;
}
