import { Rng } from './rng';
import { CalibrationAccumulator, computeCalibration } from './calibration';
import { binEdges, binIndex } from './calibration-bins';

/** Binary samples given as (confidence, correct): probs [1 − c, c], label 1 when correct. */
function binary(samples: [number, boolean][]): { probs: number[][]; labels: number[] } {
  return {
    probs: samples.map(([c]) => [1 - c, c]),
    labels: samples.map(([, ok]) => (ok ? 1 : 0)),
  };
}

// fround(9/15) = fround(0.6) and fround(12/15) = fround(0.8) sit exactly on float32 edges, and both
// are above the float64 values 0.6 and 0.8: float64 edges would put them one bin higher.
const TEN: [number, boolean][] = [
  [0.6, true], // bin 8 (0.533, 0.6]; float64 edges: bin 9
  [0.55, true], // bin 8
  [0.65, false], // bin 9 (0.6, 0.667]
  [0.9, true], // bin 13 (0.867, 0.933]
  [0.9, true], // bin 13
  [0.95, true], // bin 14 (0.933, 1]
  [0.95, false], // bin 14
  [0.7, true], // bin 10 (0.667, 0.733]
  [0.8, true], // bin 11 (0.733, 0.8]; float64 edges: bin 12
  [1.0, true], // bin 14
];

describe('bin edges', () => {
  it('are the float32 values of i/B, and a float32 confidence on an edge belongs to the lower bin', () => {
    const e = binEdges(15);
    expect(e[0]).toBe(0);
    expect(e[15]).toBe(1);
    expect(e[6]).toBe(0.4000000059604645);
    expect(e[6]).toBe(Math.fround(0.4));
    // 0.4 as a float32 is above the float64 0.4 = 6/15: float64 edges would give bin 6
    expect(Math.fround(0.4)).toBeGreaterThan(6 / 15);
    expect(binIndex(Math.fround(0.4), e)).toBe(5);
    expect(binIndex(Math.fround(2 / 15), e)).toBe(1);
    expect(binIndex(Math.fround(0.6), e)).toBe(8);
    expect(binIndex(0.4, e)).toBe(5);
    expect(binIndex(0.4000001, e)).toBe(6);
    expect(binIndex(1, e)).toBe(14);
    expect(binIndex(0, e)).toBe(0);
    expect(binIndex(1e-9, e)).toBe(0);
  });
});

describe('computeCalibration: hand-computed values', () => {
  it('ECE, MCE and accuracy of 10 binary samples, two of them on float32 bin edges', () => {
    const { probs, labels } = binary(TEN);
    const r = computeCalibration(probs, labels);
    expect(r.bins.map((b) => b.count)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 1, 1, 0, 2, 3]);
    // gaps: bin 8 |1 − 0.575| = 0.425 (×0.2), bin 9 0.65 (×0.1), bin 10 0.3 (×0.1), bin 11 0.2 (×0.1),
    // bin 13 0.1 (×0.2), bin 14 |2/3 − 2.9/3| = 0.3 (×0.3) → 0.085 + 0.065 + 0.03 + 0.02 + 0.02 + 0.09
    expect(r.ece).toBeCloseTo(0.31, 6);
    expect(r.mce).toBeCloseTo(0.65, 6);
    // with float64 edges 0.6 and 0.8 move up one bin: ECE 0.23, MCE 0.45
    expect(r.ece).not.toBeCloseTo(0.23, 3);
    expect(r.accuracy).toBe(0.8);
    expect(r.bins[8].confidence).toBeCloseTo(0.575, 6);
    expect(r.bins[14].accuracy).toBeCloseTo(2 / 3, 12);
    expect(r.bins[0].accuracy).toBeNaN();
    expect(r.n).toBe(10);
    expect(r.numClasses).toBe(2);
  });

  it('adaptive ECE: 3 equal-mass bins of sizes 4, 3, 3', () => {
    const { probs, labels } = binary(TEN);
    const r = computeCalibration(probs, labels, { adaptiveBins: 3 });
    expect(r.adaptive.map((b) => b.count)).toEqual([4, 3, 3]);
    // {.55 .6 .65 .7}: acc .75 conf .625; {.8 .9 .9}: acc 1 conf .8667; {.95 .95 1}: acc .6667 conf .9667
    // 0.4·0.125 + 0.3·0.1333 + 0.3·0.3 = 0.05 + 0.04 + 0.09
    expect(r.adaptiveEce).toBeCloseTo(0.18, 6);
  });

  it('adaptive ECE keeps ties together: 4 bins become sizes 3, 2, 4, 1', () => {
    const { probs, labels } = binary(TEN);
    // ranks ceil(10b/4) = 3, 5, 8, 10; rank 8 is 0.95 and so is rank 9: both go to bin 3
    const r = computeCalibration(probs, labels, { adaptiveBins: 4 });
    expect(r.adaptive.map((b) => b.count)).toEqual([3, 2, 4, 1]);
    expect(r.adaptive[2].hi).toBe(Math.fround(0.95));
    // 0.3·|2/3 − 0.6| + 0.2·|1 − 0.75| + 0.4·|0.75 − 0.925| + 0.1·0 = 0.02 + 0.05 + 0.07
    expect(r.adaptiveEce).toBeCloseTo(0.14, 6);
  });

  it('adaptive ECE with fewer samples than bins has one bin per distinct confidence', () => {
    const r = computeCalibration([[0.3, 0.7], [0.3, 0.7], [0.9, 0.1]], [1, 0, 0], { adaptiveBins: 15 });
    expect(r.adaptive.map((b) => b.count)).toEqual([2, 1]);
    // {.7, .7}: acc .5 → gap .2 (×2/3); {.9}: acc 1 → .1 (×1/3)
    expect(r.adaptiveEce).toBeCloseTo(0.2 * (2 / 3) + 0.1 / 3, 6);
  });

  it('NLL and Brier of three 3-class samples', () => {
    const probs = [
      [0.7, 0.2, 0.1],
      [0.1, 0.6, 0.3],
      [0.25, 0.25, 0.5],
    ];
    const labels = [0, 2, 2];
    const r = computeCalibration(probs, labels);
    // −(ln 0.7 + ln 0.3 + ln 0.5)/3
    expect(r.nll).toBeCloseTo((0.35667494393873245 + 1.2039728043259361 + 0.6931471805599453) / 3, 6);
    // (0.09+0.04+0.01) + (0.01+0.36+0.49) + (0.0625+0.0625+0.25) = 0.14 + 0.86 + 0.375
    expect(r.brier).toBeCloseTo(1.375 / 3, 6);
    expect(r.accuracy).toBeCloseTo(2 / 3, 12);
    // the same data as logits (log-probabilities): NLL exact in float64
    const fromLogits = computeCalibration(probs.map((row) => row.map(Math.log)), labels, { input: 'logits' });
    expect(fromLogits.nll).toBeCloseTo(0.751265, 6);
    expect(fromLogits.brier).toBeCloseTo(1.375 / 3, 6);
    expect(fromLogits.ece).toBeCloseTo(r.ece, 6);
  });

  it('class-wise ECE of four binary samples', () => {
    const probs = [
      [0.1, 0.9],
      [0.1, 0.9],
      [0.8, 0.2],
      [0.8, 0.2],
    ];
    const labels = [1, 0, 0, 0];
    const r = computeCalibration(probs, labels);
    // class 1: p=.9 (bin 13) freq 1/2 → .5·.4; p=.2 (bin 2, on the float32 edge 3/15) freq 0 → .5·.2 → 0.3
    // class 0: p=.1 (bin 1) freq 1/2 → .5·.4; p=.8 (bin 11, on the edge 12/15) freq 1 → .5·.2 → 0.3
    expect(r.classwiseEce).toBeCloseTo(0.3, 6);
    // top-label: {.9 ×2, acc .5}, {.8 ×2, acc 1} → .5·.4 + .5·.2
    expect(r.ece).toBeCloseTo(0.3, 6);
  });

  it('flat arrays, Float32Array input and numClasses agree with rows', () => {
    const { probs, labels } = binary(TEN);
    const a = computeCalibration(probs, labels);
    const b = computeCalibration(Float32Array.from(probs.flat()), Int32Array.from(labels));
    const c = computeCalibration(probs.flat(), labels, { numClasses: 2 });
    expect(b).toEqual(a);
    expect(c).toEqual(a);
  });

  it('rejects bad labels and probabilities without changing its sums', () => {
    const acc = new CalibrationAccumulator();
    acc.update([[0.4, 0.6]], [1]);
    expect(() => acc.update([[0.5, 0.5]], [2])).toThrow('label 2 at row 0 is not a class in [0, 2)');
    expect(() => acc.update([[1.5, -0.5]], [0])).toThrow("pass { input: 'logits' } for logits");
    expect(() => acc.update([[0.2, 0.3, 0.5]], [0])).toThrow('rows have 3 columns but numClasses is 2');
    expect(acc.size).toBe(1);
    expect(acc.result().ece).toBeCloseTo(0.4, 6);
  });

  it('NaN logits make every metric NaN and are counted', () => {
    const r = computeCalibration([[1, 2], [NaN, 0]], [1, 0], { input: 'logits' });
    expect(r.invalid).toBe(1);
    expect(r.ece).toBeNaN();
    expect(r.nll).toBeNaN();
    expect(computeCalibration([], []).ece).toBeNaN();
  });
});

describe('CalibrationAccumulator: streaming', () => {
  const rng = new Rng(42);
  const n = 997;
  const k = 7;
  const logits = Float32Array.from({ length: n * k }, () => 3 * rng.normal());
  const labels = Int32Array.from({ length: n }, () => rng.int(k));
  const full = computeCalibration(logits, labels, { input: 'logits', bins: 10, adaptiveBins: 12 });

  it.each([[1], [7], [100], [500], [996]])('batches of %i give exactly the one-shot result', (bs) => {
    const acc = new CalibrationAccumulator({ input: 'logits', bins: 10, adaptiveBins: 12 });
    for (let s = 0; s < n; s += bs) acc.update(logits.subarray(s * k, Math.min(n, s + bs) * k), labels.subarray(s, Math.min(n, s + bs)));
    expect(acc.result()).toEqual(full);
  });

  it('random uneven splits give exactly the one-shot result, and reset starts over', () => {
    const acc = new CalibrationAccumulator({ input: 'logits', bins: 10, adaptiveBins: 12 });
    let s = 0;
    while (s < n) {
      const e = Math.min(n, s + 1 + rng.int(80));
      acc.update(logits.subarray(s * k, e * k), labels.subarray(s, e));
      s = e;
    }
    expect(acc.result()).toEqual(full);
    acc.reset();
    expect(acc.size).toBe(0);
    acc.update(logits, labels);
    expect(acc.result()).toEqual(full);
  });

  it('probabilities and logits give the same binned metrics', () => {
    const probs = Array.from({ length: n }, (_, i) => {
      const row = Array.from(logits.subarray(i * k, (i + 1) * k));
      const m = Math.max(...row);
      const e = row.map((v) => Math.exp(v - m));
      const s = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / s);
    });
    const p = computeCalibration(probs, labels, { bins: 10, adaptiveBins: 12 });
    expect(p.ece).toBeCloseTo(full.ece, 12);
    expect(p.classwiseEce).toBeCloseTo(full.classwiseEce, 12);
    expect(p.brier).toBeCloseTo(full.brier, 12);
    expect(p.nll).toBeCloseTo(full.nll, 6);
  });
});

describe('a perfectly calibrated synthetic set', () => {
  it('has ECE ≈ 0 within sampling error (n = 20000)', () => {
    const rng = new Rng(7);
    const k = 4;
    const n = 20000;
    const probs: number[][] = [];
    const labels: number[] = [];
    for (let i = 0; i < n; i++) {
      const c = 1 / k + (1 - 1 / k) * rng.next();
      const pred = rng.int(k);
      const row = Array.from({ length: k }, (_, j) => (j === pred ? c : (1 - c) / (k - 1)));
      const correct = rng.next() < c;
      labels.push(correct ? pred : (pred + 1 + rng.int(k - 1)) % k);
      probs.push(row);
    }
    const r = computeCalibration(probs, labels);
    expect(r.ece).toBeLessThan(0.02);
    expect(r.adaptiveEce).toBeLessThan(0.02);
    expect(r.classwiseEce).toBeLessThan(0.02);
    // an overconfident copy (confidence pushed towards 1) is clearly miscalibrated
    const over = computeCalibration(
      probs.map((row) => row.map((v) => (v === Math.max(...row) ? 1 - (1 - v) / 3 : v / 3))),
      labels,
    );
    expect(over.ece).toBeGreaterThan(0.1);
  });
});
