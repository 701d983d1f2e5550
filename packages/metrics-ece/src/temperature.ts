import { checkBins, computeCalibration, flattenMatrix, logSumExpRow, type Matrix } from '@tfkd/kd-core';

export interface FitTemperatureOptions {
  /** Bins of the ECE reported before and after. Default 15. */
  bins?: number;
  /** Search range of T. Defaults 0.05 and 100. */
  minTemperature?: number;
  maxTemperature?: number;
  /** Stop when a step changes 1/T by less than this, relatively. Default 1e-12. */
  tolerance?: number;
  /** Default 100 (Newton usually needs fewer than 10). */
  maxIterations?: number;
  /** Needed only for a flat array when it cannot be inferred (length / labels). */
  numClasses?: number;
}

export interface TemperatureFit {
  /** The fitted T: calibrated probabilities are softmax(logits / T). */
  temperature: number;
  nllBefore: number;
  nllAfter: number;
  eceBefore: number;
  eceAfter: number;
  iterations: number;
  /** The optimum lies at (or beyond) a bound of the search range: T is that bound. */
  atBound: boolean;
}

/**
 * Temperature scaling (Guo et al. 2017): the scalar T > 0 minimising the mean NLL of
 * softmax(logits / T) on held-out logits and labels, in float64 JS (no tfjs).
 *
 * With β = 1/T the NLL f(β) = mean_i [log Σ_k exp(β·z_ik) − β·z_iy] is convex, with
 * f'(β) = mean_i (E_p[z_i] − z_iy) and f''(β) = mean_i Var_p[z_i] ≥ 0 (p = softmax(β·z_i)). The fit
 * is a safeguarded Newton search for f'(β) = 0 inside a bracket that always contains the root
 * (bisection in log β whenever a Newton step leaves it), so it cannot diverge. If f' has no sign
 * change in [1/maxT, 1/minT] the optimum is outside the range and T is the nearer bound.
 */
export function fitTemperature(logits: Matrix, labels: ArrayLike<number>, opts: FitTemperatureOptions = {}): TemperatureFit {
  const bins = opts.bins ?? 15;
  checkBins(bins, 'bins');
  const tMin = opts.minTemperature ?? 0.05;
  const tMax = opts.maxTemperature ?? 100;
  if (!(tMin > 0 && tMax > tMin && Number.isFinite(tMax))) {
    throw new RangeError(`need 0 < minTemperature < maxTemperature < ∞, got ${tMin} and ${tMax}`);
  }
  const tol = opts.tolerance ?? 1e-12;
  const maxIter = opts.maxIterations ?? 100;
  const m = flattenMatrix(logits, labels.length, opts.numClasses);
  if (m.rows === 0) throw new RangeError('fitTemperature needs at least one sample');
  for (let i = 0; i < m.rows; i++) {
    const y = labels[i];
    if (!Number.isInteger(y) || y < 0 || y >= m.cols) throw new RangeError(`label ${y} at row ${i} is not a class in [0, ${m.cols})`);
  }
  for (let i = 0; i < m.data.length; i++) {
    if (!Number.isFinite(m.data[i])) throw new RangeError(`logit ${m.data[i]} at row ${Math.floor(i / m.cols)} is not finite`);
  }
  const data = m.data;
  const grad = (beta: number) => derivatives(data, m.cols, labels, beta);

  let lo = 1 / tMax;
  let hi = 1 / tMin;
  let beta: number;
  let iterations = 0;
  let atBound = false;
  if (grad(lo).g >= 0) {
    beta = lo;
    atBound = true;
  } else if (grad(hi).g <= 0) {
    beta = hi;
    atBound = true;
  } else {
    beta = Math.min(hi, Math.max(lo, 1));
    for (; iterations < maxIter; iterations++) {
      const { g, h } = grad(beta);
      if (g === 0) break;
      if (g < 0) lo = beta;
      else hi = beta;
      let next = h > 0 ? beta - g / h : NaN;
      if (!(next > lo && next < hi)) next = Math.sqrt(lo * hi);
      const done = Math.abs(next - beta) <= tol * beta || hi - lo <= tol * beta;
      beta = next;
      if (done) break;
    }
  }
  const temperature = 1 / beta;
  const before = computeCalibration(data, labels, { bins, input: 'logits', numClasses: m.cols });
  const after = computeCalibration(scaleLogits(data, temperature), labels, { bins, input: 'logits', numClasses: m.cols });
  return {
    temperature,
    nllBefore: before.nll,
    nllAfter: after.nll,
    eceBefore: before.ece,
    eceAfter: after.ece,
    iterations,
    atBound,
  };
}

/** logits / T as a flat row-major Float64Array (rows are flattened). */
export function scaleLogits(logits: Matrix, temperature: number, numClasses?: number): Float64Array {
  if (!(temperature > 0)) throw new RangeError(`temperature must be > 0, got ${temperature}`);
  const rows = Array.isArray(logits) && Array.isArray(logits[0]) ? logits.length : undefined;
  const flat = rows === undefined ? { data: logits as ArrayLike<number> } : flattenMatrix(logits, rows, numClasses);
  return Float64Array.from(flat.data, (v) => v / temperature);
}

/** Mean NLL of softmax(β·z) and its first two derivatives in β (z: flat [n·k] logits). */
export function derivatives(z: Float64Array, k: number, labels: ArrayLike<number>, beta: number): { f: number; g: number; h: number } {
  const n = labels.length;
  const ys = Int32Array.from(labels);
  const p = new Float64Array(k);
  let f = 0;
  let g = 0;
  let h = 0;
  for (let i = 0; i < n; i++) {
    const s = i * k;
    const lse = logSumExpRow(z, s, k, beta);
    let mean = 0;
    for (let j = 0; j < k; j++) {
      p[j] = Math.exp(beta * z[s + j] - lse);
      mean += p[j] * z[s + j];
    }
    let variance = 0;
    for (let j = 0; j < k; j++) variance += p[j] * (z[s + j] - mean) * (z[s + j] - mean);
    const zy = z[s + ys[i]];
    f += lse - beta * zy;
    g += mean - zy;
    h += variance;
  }
  return { f: f / n, g: g / n, h: h / n };
}
