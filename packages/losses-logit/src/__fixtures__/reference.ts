/**
 * Plain-double (float64) arithmetic for the tests, independent of tfjs: every expected value in
 * the specs is computed with these and Math.exp/Math.log only.
 */
export type Matrix = number[][];

export function softmax(row: number[], temperature = 1): number[] {
  const z = row.map((v) => v / temperature);
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** KL(p ‖ q) = Σ p (log p − log q), terms with p = 0 dropped. */
export function kl(p: number[], q: number[]): number {
  return p.reduce((s, pk, k) => (pk > 0 ? s + pk * (Math.log(pk) - Math.log(q[k])) : s), 0);
}

export function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Pearson correlation as the DIST reference: cosine of centred vectors, eps added to ‖a‖·‖b‖. */
export function pearson(a: number[], b: number[], eps = 1e-8): number {
  const ma = mean(a);
  const mb = mean(b);
  const ac = a.map((v) => v - ma);
  const bc = b.map((v) => v - mb);
  const dot = ac.reduce((s, v, i) => s + v * bc[i], 0);
  const na = Math.sqrt(ac.reduce((s, v) => s + v * v, 0));
  const nb = Math.sqrt(bc.reduce((s, v) => s + v * v, 0));
  return dot / (na * nb + eps);
}

export function transpose(m: Matrix): Matrix {
  return m[0].map((_, j) => m.map((row) => row[j]));
}

/** Relative-or-absolute closeness: |a − e| ≤ tol · max(1, |e|). */
export function expectClose(actual: number, expected: number, tol = 1e-5): void {
  const err = Math.abs(actual - expected);
  const bound = tol * Math.max(1, Math.abs(expected));
  if (!(err <= bound)) {
    throw new Error(`expected ${actual} to be within ${bound} of ${expected} (error ${err})`);
  }
}
