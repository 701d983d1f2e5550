import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { expectClose, leaked, value } from '../__fixtures__/helpers';
import { REF } from '../__fixtures__/loss-reference';
import { detBoundedRegression } from './det-bounded-regression';
import { createImitationAdapter, detFeatureImitation } from './det-feature-imitation';
import { detLocalization } from './det-localization';
import { detLogitKd } from './det-logit-kd';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('detFeatureImitation (Wang et al. 2019)', () => {
  const F = REF.fi;
  const adapter = () => ({ kernel: tf.tensor4d(F.K, [1, 1, 2, 3]), bias: tf.tensor1d(F.b) });
  const masks = [[1, 0, 1, 1], [1]];

  it('two levels with a 1×1 adapter: Σ I·Σ_c (f_t − a(f_s))² / (2·Σ I) (numpy)', () => {
    const a = adapter();
    const v = value(() =>
      detFeatureImitation([tf.tensor4d(F.fs1, [1, 2, 2, 2]), tf.tensor4d(F.fs2, [1, 1, 1, 2])], [tf.tensor4d(F.ft1, [1, 2, 2, 3]), tf.tensor4d(F.ft2, [1, 1, 1, 3])], masks, { adapters: [a, a] }),
    );
    expectClose(v, F.value);
    // ReLU adapter on one level (the reference's adapter shape), mask as a tensor.
    const vr = value(() => detFeatureImitation(tf.tensor4d(F.fs1, [1, 2, 2, 2]), tf.tensor4d(F.ft1, [1, 2, 2, 3]), tf.tensor3d(masks[0], [1, 2, 2]), { adapters: [{ ...a, relu: true }] }));
    expectClose(vr, F.relu_level1);
    tf.dispose([a.kernel, a.bias]);
  });

  it('without an adapter (equal channels); an empty mask gives 0; a channel mismatch names the fix', () => {
    expectClose(value(() => detFeatureImitation(tf.tensor4d(F.fs1, [1, 2, 2, 2]), tf.tensor4d(F.ft1b, [1, 2, 2, 2]), masks[0])), F.plain);
    expect(value(() => detFeatureImitation(tf.tensor4d(F.fs1, [1, 2, 2, 2]), tf.tensor4d(F.ft1b, [1, 2, 2, 2]), [0, 0, 0, 0]))).toBe(0);
    expect(() => detFeatureImitation(tf.tensor4d(F.fs1, [1, 2, 2, 2]), tf.tensor4d(F.ft1, [1, 2, 2, 3]), masks[0])).toThrow(/level 0: student \[1,2,2,2\] vs teacher \[1,2,2,3\]/);
  });

  it('gradient w.r.t. the student features and the adapter kernel (finite differences), no leak', () => {
    const ft = tf.tensor4d(F.ft1, [1, 2, 2, 3]);
    const a = adapter();
    const viaFeatures = (fs: tf.Tensor) => detFeatureImitation(fs, ft, masks[0], { adapters: [a] });
    expect(finiteDifferenceCheck(viaFeatures, F.fs1, [1, 2, 2, 2], 1e-3).maxRelError).toBeLessThan(1e-2);
    const fs = tf.tensor4d(F.fs1, [1, 2, 2, 2]);
    const viaKernel = (k: tf.Tensor) => detFeatureImitation(fs, ft, masks[0], { adapters: [{ kernel: k as tf.Tensor4D, bias: a.bias }] });
    expect(finiteDifferenceCheck(viaKernel, F.K, [1, 1, 2, 3], 1e-3).maxRelError).toBeLessThan(1e-2);
    expect(leaked(viaFeatures, fs)).toBe(0);
    tf.dispose([ft, fs, a.kernel, a.bias]);
  });

  it('createImitationAdapter: trainable [k, k, C_s, C_t] kernel and zero bias, seeded', () => {
    const a = createImitationAdapter(2, 3, { seed: 4, name: 'p3_adapter' });
    const b = createImitationAdapter(2, 3, { seed: 4, name: 'p3_adapter' });
    expect([a.kernel.shape, a.kernel.trainable, Array.from(a.bias.dataSync())]).toEqual([[1, 1, 2, 3], true, [0, 0, 0]]);
    expect(Array.from(a.kernel.dataSync())).toEqual(Array.from(b.kernel.dataSync()));
    tf.dispose([a.kernel, a.bias, b.kernel, b.bias]);
  });
});

describe('detBoundedRegression (Chen et al. 2017)', () => {
  const B = REF.br;
  const targets = (pos = [1, 1, 1]) => ({ distances: B.y, positive: pos });

  it('counts the student L2 error only where e_s + m > e_t (numpy)', () => {
    // e_s = [0.02, 1, 0.64], e_t = [0.16, 1, 0.06]: location 0 is better than the teacher by more than m.
    const run = (m: number, pos?: number[]) => value(() => detBoundedRegression(tf.tensor3d(B.rs, [1, 3, 4]), tf.tensor3d(B.rt, [1, 3, 4]), targets(pos), { margin: m }));
    expectClose(run(0.01), B.value);
    expectClose(run(1), B.value_m1);
    expectClose(run(0.01, [1, 0, 1]), B.value_pos2);
    expect(run(0.01, [0, 0, 0])).toBe(0);
  });

  it('from GFL box logits: the integral in strides (numpy)', () => {
    expectClose(value(() => detBoundedRegression(tf.tensor4d(B.zs, [1, 3, 4, 3]), tf.tensor4d(B.zt, [1, 3, 4, 3]), targets(), { margin: 0.01 })), B.value_logits);
  });

  it('gradient is 2(R_s − y)/N_pos on active positives, 0 elsewhere; finite differences; no leak', () => {
    const rt = tf.tensor3d(B.rt, [1, 3, 4]);
    const f = (rs: tf.Tensor) => detBoundedRegression(rs, rt, targets(), { margin: 0.01 });
    const g = tf.tidy(() => Array.from(tf.grad(f)(tf.tensor3d(B.rs, [1, 3, 4])).dataSync()));
    B.rs.forEach((r, i) => expectClose(g[i], i < 4 ? 0 : (2 * (r - B.y[i])) / 3));
    expect(finiteDifferenceCheck(f, B.rs, [1, 3, 4], 1e-3).maxRelError).toBeLessThan(1e-2);
    const fl = (zs: tf.Tensor) => detBoundedRegression(zs, tf.tensor4d(B.zt, [1, 3, 4, 3]), targets(), { margin: 0.01 });
    expect(finiteDifferenceCheck(fl, B.zs, [1, 3, 4, 3], 1e-3).maxRelError).toBeLessThan(1e-2);
    const x = tf.tensor3d(B.rs, [1, 3, 4]);
    expect(leaked(f, x)).toBe(0);
    tf.dispose([rt, x]);
  });
});

describe('detLocalization (LD, Zheng et al. 2022)', () => {
  const D = REF.ld;
  const s = () => tf.tensor4d(D.ls, [1, 2, 4, 3]);
  const t = () => tf.tensor4d(D.lt, [1, 2, 4, 3]);

  it('τ²·mean-over-bins KL per side, averaged over sides, weighted mean over the main region (numpy)', () => {
    expectClose(value(() => detLocalization(s(), t(), [1, 1], { temperature: 10 })), D.t10);
    expectClose(value(() => detLocalization(s(), t(), [1, 0], { temperature: 2 })), D.t2_first);
    expectClose(value(() => detLocalization(s(), t(), [1, 1], { temperature: 2, weights: [0.2, 0.7] })), D.t2_weighted);
    expect(value(() => detLocalization(s(), t(), [0, 0], { temperature: 10 }))).toBe(0);
    expect(value(() => detLocalization(t(), t(), [1, 1], { temperature: 10 }))).toBeCloseTo(0, 6);
  });

  it('finite-difference gradient w.r.t. the student logits; no leak', () => {
    const tt = t();
    for (const temperature of [2, 10]) {
      const f = (z: tf.Tensor) => detLocalization(z, tt, [1, 1], { temperature });
      expect(finiteDifferenceCheck(f, D.ls, [1, 2, 4, 3], 1e-3).maxRelError).toBeLessThan(1e-2);
    }
    const x = s();
    expect(leaked((z) => detLocalization(z, tt, [1, 1], { temperature: 10 }), x)).toBe(0);
    tf.dispose([tt, x]);
  });
});

describe('detLogitKd (class head, background weighting)', () => {
  const K = REF.lk;

  it('sigmoid: per-class Bernoulli KL·T², foreground weight 1, background 1.5 (numpy)', () => {
    const run = (temperature: number, backgroundWeight: number) =>
      value(() => detLogitKd(tf.tensor3d(K.zs, [1, 3, 2]), tf.tensor3d(K.zt, [1, 3, 2]), [1, 0, 0], { temperature, backgroundWeight }));
    expectClose(run(2, 1.5), K.sig_t2);
    expectClose(run(1, 1), K.sig_t1_bw1);
  });

  it('softmax: Chen et al.\'s class-weighted soft cross-entropy (numpy)', () => {
    const run = (temperature: number, backgroundWeight: number, backgroundIndex?: number) =>
      value(() => detLogitKd(tf.tensor3d(K.zs3, [1, 2, 3]), tf.tensor3d(K.zt3, [1, 2, 3]), undefined, { temperature, backgroundWeight, activation: 'softmax', backgroundIndex }));
    expectClose(run(2, 1.5), K.soft_t2);
    expectClose(run(1, 3, 0), K.soft_t1_bg0);
    expect(() => run(1, 1, 5)).toThrow(/backgroundIndex 5/);
  });

  it('finite-difference gradients (both activations); no leak', () => {
    const zt = tf.tensor3d(K.zt, [1, 3, 2]);
    const f = (z: tf.Tensor) => detLogitKd(z, zt, [1, 0, 0], { temperature: 2, backgroundWeight: 1.5 });
    expect(finiteDifferenceCheck(f, K.zs, [1, 3, 2], 1e-3).maxRelError).toBeLessThan(1e-2);
    const zt3 = tf.tensor3d(K.zt3, [1, 2, 3]);
    const g = (z: tf.Tensor) => detLogitKd(z, zt3, undefined, { temperature: 2, backgroundWeight: 1.5, activation: 'softmax' });
    expect(finiteDifferenceCheck(g, K.zs3, [1, 2, 3], 1e-3).maxRelError).toBeLessThan(1e-2);
    const x = tf.tensor3d(K.zs, [1, 3, 2]);
    expect(leaked(f, x)).toBe(0);
    tf.dispose([zt, zt3, x]);
  });
});
