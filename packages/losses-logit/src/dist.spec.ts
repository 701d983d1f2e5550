import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { runLossOnce } from './__fixtures__/harness';
import { expectClose, mean, pearson, softmax, transpose } from './__fixtures__/reference';
import { dist, distInter, distIntra, distLoss, pearsonRows } from './dist';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// Three samples, three classes.
const ZS = [
  [1, 2, 0.5],
  [0.2, -1, 1.5],
  [0, 0.3, -0.6],
];
const ZT = [
  [2, 1, 0],
  [0, 0.5, 2],
  [1, 1.5, -1],
];

function reference(temperature: number): { inter: number; intra: number } {
  const ps = ZS.map((r) => softmax(r, temperature));
  const pt = ZT.map((r) => softmax(r, temperature));
  const inter = 1 - mean(ps.map((r, b) => pearson(r, pt[b])));
  const ptT = transpose(pt);
  const intra = 1 - mean(transpose(ps).map((c, k) => pearson(c, ptT[k])));
  return { inter, intra };
}

function distValue(opts: { beta: number; gamma: number; temperature: number }, zs = ZS, zt = ZT): number {
  return tf.tidy(() => dist(tf.tensor2d(zs), tf.tensor2d(zt), opts).dataSync()[0]);
}

describe('dist', () => {
  it('T = 1, β = γ = 1: inter + intra (hand-computed)', () => {
    // p_s = [[0.231224, 0.628532, 0.140244], [0.201187, 0.060596, 0.738216], [0.344986, 0.465682, 0.189332]]
    // p_t = [[0.665241, 0.244728, 0.090031], [0.099624, 0.164252, 0.736125], [0.359188, 0.592201, 0.048611]]
    // Row 0: centred p_s = p_s − 1/3 = [−0.102109, 0.295199, −0.193089], centred p_t = [0.331908, −0.088605, −0.243302]
    //   pearson = Σ a'b' / (‖a'‖‖b'‖ + 1e-8) = −0.013068 / (0.367222 · 0.420963) = −0.084534
    // rows: [−0.084534, 0.958179, 0.999957] → inter = 1 − 0.624534 = 0.375466
    // columns: [0.151308, 0.407129, 0.991852] → intra = 1 − 0.516763 = 0.483237
    // loss = 1² · (0.375466 + 0.483237) = 0.858703
    const ref = reference(1);
    expectClose(ref.inter, 0.375466, 1e-6);
    expectClose(ref.intra, 0.483237, 1e-6);
    expectClose(distValue({ beta: 1, gamma: 1, temperature: 1 }), ref.inter + ref.intra);
    expectClose(ref.inter + ref.intra, 0.858703, 1e-6);
  });

  it('T = 4 (CIFAR recipe): T²·(β·inter + γ·intra) = 16 · (0.323493 + 0.503040) = 13.224519', () => {
    const ref = reference(4);
    expectClose(16 * (ref.inter + ref.intra), 13.224519, 1e-6);
    expectClose(distValue({ beta: 1, gamma: 1, temperature: 4 }), 16 * (ref.inter + ref.intra));
    expectClose(distValue({ beta: 2, gamma: 0.5, temperature: 4 }), 16 * (2 * ref.inter + 0.5 * ref.intra));
  });

  it('pearsonRows matches the reference formula row by row', () => {
    const a = [[1, 2, 4, 3], [0.5, 0.5, 0.6, 0.1]];
    const b = [[2, 1, 0, 5], [0.1, 0.2, 0.3, 0.4]];
    const r = tf.tidy(() => pearsonRows(tf.tensor2d(a), tf.tensor2d(b)).arraySync());
    expectClose(r[0], pearson(a[0], b[0]));
    expectClose(r[1], pearson(a[1], b[1]));
  });

  it('is ≈ 0 when the student matches the teacher', () => {
    expectClose(distValue({ beta: 1, gamma: 1, temperature: 1 }, ZT, ZT), 0);
  });

  it('the inter-class term is unchanged by a positive affine map of one sample’s teacher probabilities', () => {
    const ps = ZS.map((r) => softmax(r));
    const pt = ZT.map((r) => softmax(r));
    const mapped = pt.map((r, b) => (b === 1 ? r.map((v) => 3 * v + 0.2) : r));
    const [before, after, intraBefore, intraAfter] = tf.tidy(() => [
      distInter(tf.tensor2d(ps), tf.tensor2d(pt)).dataSync()[0],
      distInter(tf.tensor2d(ps), tf.tensor2d(mapped)).dataSync()[0],
      distIntra(tf.tensor2d(ps), tf.tensor2d(pt)).dataSync()[0],
      distIntra(tf.tensor2d(ps), tf.tensor2d(mapped)).dataSync()[0],
    ]);
    expectClose(after, before);
    expectClose(before, reference(1).inter);
    // the intra-class term does change (the map mixes one row into every column)
    expect(Math.abs(intraAfter - intraBefore)).toBeGreaterThan(1e-3);
  });

  it('passes a finite-difference gradient check (T = 1 and T = 4)', () => {
    for (const temperature of [1, 4]) {
      const zt = tf.tensor2d(ZT);
      const { maxRelError } = finiteDifferenceCheck((z) => dist(z, zt, { beta: 1, gamma: 1, temperature }), ZS.flat(), [3, 3]);
      zt.dispose();
      expect(maxRelError).toBeLessThan(1e-2);
    }
  });

  it('a batch of one sample: intra = 1 (zero-centred columns) and a finite, inter-only gradient', () => {
    const zt = tf.tensor2d([ZT[0]]);
    const f = (z: tf.Tensor) => dist(z, zt, { beta: 1, gamma: 1, temperature: 1 });
    const [v, g, gInter] = tf.tidy(() => [
      f(tf.tensor2d([ZS[0]])).dataSync()[0],
      Array.from(tf.grad(f)(tf.tensor2d([ZS[0]])).dataSync()),
      Array.from(tf.grad((z: tf.Tensor) => dist(z, zt, { beta: 1, gamma: 0, temperature: 1 }))(tf.tensor2d([ZS[0]])).dataSync()),
    ]);
    zt.dispose();
    // inter = 1 − (−0.084534) = 1.084534; intra = 1 − 0/(0 + 1e-8) = 1
    expectClose(v, 1 - pearson(softmax(ZS[0]), softmax(ZT[0])) + 1);
    g.forEach((x, i) => {
      expect(Number.isFinite(x)).toBe(true);
      expectClose(x, gInter[i]);
    });
  });
});

describe('loss/dist plugin', () => {
  it('defaults: β = 1, γ = 1, T = 1 (reference class default); the describe names the recipes’ weight 2', () => {
    const o = distLoss.options.parse({});
    expect(o).toEqual({ beta: 1, gamma: 1, temperature: 1, student: 'student', teacher: 'teacher' });
    expect(distLoss.describe).toContain('weight: 2');
    expect(distLoss.requires?.(o)).toEqual({ roles: ['student', 'teacher'] });
  });

  it('computes the function on the roles’ logits', () => {
    const logits = { student: tf.tensor2d(ZS), teacher: tf.tensor2d(ZT) };
    const ref = reference(4);
    expectClose(runLossOnce(distLoss, { temperature: 4 }, { logits, y: [0, 1, 2] })['loss/dist'], 16 * (ref.inter + ref.intra));
    tf.dispose(Object.values(logits));
  });
});
