import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { channels, expectClose, mean, normalize, num, values } from './__fixtures__/reference';
import { attentionLoss } from './attention';
import { adaptiveAvgPool2d } from './ops';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Plain-double AT on same-size maps: mean over b, p of (a_s − a_t)², a = normalize(mean_c f²). */
function referenceAt(fs: number[], ft: number[], shapeS: [number, number, number, number], shapeT: [number, number, number, number]): number {
  const att = (flat: number[], shape: [number, number, number, number]) =>
    channels(flat, shape).map((cs) => normalize(cs[0].map((_, p) => mean(cs.map((ch) => ch[p] * ch[p])))));
  const as = att(fs, shapeS);
  const at = att(ft, shapeT);
  return mean(as.flatMap((row, b) => row.map((v, p) => (v - at[b][p]) ** 2)));
}

describe('loss/attention', () => {
  it('hand-computed value on a 1×1×2×2 pair', () => {
    // student pixels (c0, c1): (1, 1), (2, 0) → mean_c f² = (1, 2) → a_s = (1, 2)/√5
    // teacher pixels: (0, 2), (1, 1) → mean_c f² = (2, 1) → a_t = (2, 1)/√5
    // a_s − a_t = (−1, 1)/√5 → squares 1/5, 1/5 → mean 0.2
    const fs = tf.tensor4d([1, 1, 2, 0], [1, 1, 2, 2]);
    const ft = tf.tensor4d([0, 2, 1, 1], [1, 1, 2, 2]);
    expectClose(num(attentionLoss(fs, ft)), 0.2, 1e-6);
  });

  it('matches the plain-double reference with different channel counts', () => {
    const s = values(2 * 3 * 3 * 2, 1);
    const t = values(2 * 3 * 3 * 5, 2);
    const got = num(attentionLoss(tf.tensor4d(s, [2, 3, 3, 2]), tf.tensor4d(t, [2, 3, 3, 5])));
    expectClose(got, referenceAt(s, t, [2, 3, 3, 2], [2, 3, 3, 5]), 1e-5);
  });

  it('pools the larger map (RepDistiller adaptive_avg_pool2d): 4×4 → 2×2 is 2×2 block means', () => {
    const s = values(1 * 4 * 4 * 1, 3, 0, 1);
    const pooled = adaptiveAvgPool2d(tf.tensor4d(s, [1, 4, 4, 1]), [2, 2]).dataSync();
    // top-left cell: mean of s[0], s[1], s[4], s[5]
    expectClose(pooled[0], (s[0] + s[1] + s[4] + s[5]) / 4, 1e-6);
    expectClose(pooled[3], (s[10] + s[11] + s[14] + s[15]) / 4, 1e-6);
    const t = values(1 * 2 * 2 * 3, 4);
    const got = num(attentionLoss(tf.tensor4d(s, [1, 4, 4, 1]), tf.tensor4d(t, [1, 2, 2, 3])));
    expectClose(got, referenceAt(Array.from(pooled), t, [1, 2, 2, 1], [1, 2, 2, 3]), 1e-5);
  });

  it('bilinear: resizes the student attention map to the teacher size (a constant map stays constant)', () => {
    // student: every pixel (1, 1) → attention map all 1, resized still all 1 → a_s = (1,1,1,1)/2
    // teacher 2×2 with f² means (1, 1, 1, 1) → same → loss 0
    const fs = tf.ones([1, 3, 3, 2]) as tf.Tensor4D;
    const ft = tf.ones([1, 2, 2, 4]) as tf.Tensor4D;
    expectClose(num(attentionLoss(fs, ft, { p: 2, spatial: 'bilinear' })), 0, 1e-7);
    const ft2 = tf.tensor4d([2, 0, 0, 0], [1, 2, 2, 1]); // a_t = (1, 0, 0, 0)
    // a_s − a_t = (−0.5, 0.5, 0.5, 0.5) → mean of squares 0.25
    expectClose(num(attentionLoss(fs, ft2, { p: 2, spatial: 'bilinear' })), 0.25, 1e-6);
  });

  it('is unchanged by scaling a feature map by c > 0', () => {
    const s = values(2 * 3 * 3 * 2, 5);
    const t = values(2 * 3 * 3 * 4, 6);
    const base = num(attentionLoss(tf.tensor4d(s, [2, 3, 3, 2]), tf.tensor4d(t, [2, 3, 3, 4])));
    for (const c of [0.01, 3, 250]) {
      expectClose(num(attentionLoss(tf.tensor4d(s.map((v) => c * v), [2, 3, 3, 2]), tf.tensor4d(t, [2, 3, 3, 4]))), base, 1e-5);
      expectClose(num(attentionLoss(tf.tensor4d(s, [2, 3, 3, 2]), tf.tensor4d(t.map((v) => c * v), [2, 3, 3, 4]))), base, 1e-5);
    }
    expect(base).toBeGreaterThan(0);
  });

  it('gradient matches finite differences (pool and bilinear)', () => {
    const t = tf.tensor4d(values(2 * 2 * 2 * 3, 8), [2, 2, 2, 3]);
    for (const spatial of ['pool', 'bilinear'] as const) {
      const r = finiteDifferenceCheck((x) => tf.mul(attentionLoss(x as tf.Tensor4D, t, { p: 2, spatial }), 100) as tf.Scalar, values(2 * 3 * 3 * 2, 9), [2, 3, 3, 2], 1e-3);
      expect(r.maxRelError).toBeLessThan(2e-2);
    }
  });
});
