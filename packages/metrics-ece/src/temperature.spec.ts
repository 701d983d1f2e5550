import { Rng } from '@tfkd/kd-core';
import { computeCalibration } from '@tfkd/kd-core';
import { derivatives, fitTemperature, scaleLogits } from './temperature';

/** Labels drawn from softmax(z / t0): the maximum-likelihood temperature is t0 (as n grows). */
function synthetic(n: number, k: number, t0: number, seed: number): { logits: Float32Array; labels: Int32Array } {
  const rng = new Rng(seed);
  const logits = Float32Array.from({ length: n * k }, () => 4 * rng.normal());
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const row = Array.from(logits.subarray(i * k, (i + 1) * k), (v) => v / t0);
    const m = Math.max(...row);
    const e = row.map((v) => Math.exp(v - m));
    const s = e.reduce((a, b) => a + b, 0);
    let u = rng.next() * s;
    let y = 0;
    while (y < k - 1 && u >= e[y]) u -= e[y++];
    labels[i] = y;
  }
  return { logits, labels };
}

describe('fitTemperature', () => {
  it('recovers a known temperature T0 = 2.5 from synthetic logits', () => {
    const { logits, labels } = synthetic(20000, 5, 2.5, 11);
    const fit = fitTemperature(logits, labels);
    expect(Math.abs(fit.temperature - 2.5)).toBeLessThan(0.1);
    expect(fit.atBound).toBe(false);
    expect(fit.iterations).toBeLessThan(20);
    expect(fit.nllAfter).toBeLessThan(fit.nllBefore);
    expect(fit.eceAfter).toBeLessThan(0.02);
    expect(fit.eceBefore).toBeGreaterThan(0.1);
    // the fitted T is a stationary point of the NLL: f'(1/T) ≈ 0, and f is larger on both sides
    const z = Float64Array.from(logits);
    expect(Math.abs(derivatives(z, 5, labels, 1 / fit.temperature).g)).toBeLessThan(1e-10);
    const nll = (t: number) => computeCalibration(scaleLogits(logits, t), labels, { input: 'logits', numClasses: 5 }).nll;
    expect(nll(fit.temperature)).toBeCloseTo(fit.nllAfter, 12);
    expect(nll(fit.temperature * 1.01)).toBeGreaterThan(fit.nllAfter);
    expect(nll(fit.temperature / 1.01)).toBeGreaterThan(fit.nllAfter);
  });

  it('recovers a temperature below 1 (sharpening) too', () => {
    const { logits, labels } = synthetic(20000, 3, 0.5, 5);
    const fit = fitTemperature(logits, labels);
    expect(Math.abs(fit.temperature - 0.5)).toBeLessThan(0.03);
  });

  it('hand case: two classes, logits (0, 1) with label 1 on 3 of 4 samples → T = 1/ln 3', () => {
    // p(label 1) = σ(β) must equal 3/4, so β = ln 3
    const logits = [
      [0, 1],
      [0, 1],
      [0, 1],
      [0, 1],
    ];
    const fit = fitTemperature(logits, [1, 1, 1, 0]);
    expect(fit.temperature).toBeCloseTo(1 / Math.log(3), 10);
    // NLL after = −(3/4) ln(3/4) − (1/4) ln(1/4)
    expect(fit.nllAfter).toBeCloseTo(-0.75 * Math.log(0.75) - 0.25 * Math.log(0.25), 10);
  });

  it('stops at a bound when the optimum is outside the range', () => {
    // every sample right with a margin: NLL keeps falling as T → 0
    expect(fitTemperature([[0, 1], [2, 0]], [1, 0]).temperature).toBeCloseTo(0.05, 12);
    expect(fitTemperature([[0, 1], [2, 0]], [1, 0], { minTemperature: 0.2 })).toMatchObject({ temperature: 0.2, atBound: true });
    // always wrong: the flattest softmax (largest T) is best
    expect(fitTemperature([[0, 1], [2, 0]], [0, 1])).toMatchObject({ temperature: 100, atBound: true });
  });

  it('validates its input', () => {
    expect(() => fitTemperature([[0, Infinity]], [0])).toThrow('logit Infinity at row 0 is not finite');
    expect(() => fitTemperature([[0, 1]], [3])).toThrow('label 3 at row 0');
    expect(() => fitTemperature([], [])).toThrow('at least one sample');
    expect(() => fitTemperature([[0, 1]], [0], { minTemperature: 2, maxTemperature: 1 })).toThrow('minTemperature');
  });
});
