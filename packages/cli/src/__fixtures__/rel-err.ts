/**
 * max |a − b| / max(floor, max |b|): the largest difference between `a` and the reference `b`,
 * relative to the largest magnitude in `b` (`floor` keeps an all-zero `b` from dividing by zero).
 */
export function relErr(a: Float32Array, b: Float32Array, floor = 1e-6): number {
  let d = 0;
  let s = floor;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return d / s;
}
