import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { isKdError } from '@tfkd/kd-core';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { expectClose, kl, runLossOnce, softmax } from './__fixtures__/harness';
import { klDivergence, virtualTeacher } from './common';
import {
  VIRTUAL_VARIANTS,
  calibratedTerms,
  resolveVirtual,
  tfKdCalibratedLoss,
  tfKdSelfLoss,
  tfKdSelfTerms,
  tfKdVirtualLoss,
  tfKdVirtualSchema,
  virtualTargetLog,
  virtualTeacherLoss,
  virtualTeacherTerms,
} from './tf-kd';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// Two samples, three classes, labels 1 and 2.
const Z = [
  [1, 2, 0.5],
  [0.2, -1, 1.5],
];
const Y = [1, 2];
const ZT = [
  [2, 1, 0],
  [0, 0.5, 2],
];

const rows = (t: tf.Tensor) => t.arraySync() as number[][];
const target = (variant: keyof typeof VIRTUAL_VARIANTS) =>
  tf.tidy(() => rows(tf.exp(virtualTargetLog(tf.tensor1d(Y, 'int32'), 3, VIRTUAL_VARIANTS[variant]))));
const terms = (p: Parameters<typeof virtualTeacherTerms>[2]) =>
  tf.tidy(() => {
    const t = virtualTeacherTerms(tf.tensor2d(Z), tf.tensor1d(Y, 'int32'), p);
    return { ce: t.ce.dataSync()[0], kd: t.kd.dataSync()[0] };
  });
// CE of Z against Y: (−log softmax(Z0)[1] − log softmax(Z1)[2]) / 2 = (0.464019 + 0.303868) / 2
const CE = 0.383944;

describe('virtual teacher v', () => {
  it('a on the true class, (1 − a)/(K − 1) elsewhere', () => {
    expect(tf.tidy(() => rows(virtualTeacher(tf.tensor1d(Y, 'int32'), 3, 0.9)))).toEqual([
      [expect.closeTo(0.05, 7), expect.closeTo(0.9, 7), expect.closeTo(0.05, 7)],
      [expect.closeTo(0.05, 7), expect.closeTo(0.05, 7), expect.closeTo(0.9, 7)],
    ]);
    const e = (() => {
      try {
        virtualTeacher(tf.tensor1d(Y, 'int32'), 3, 1);
      } catch (x) {
        return x;
      }
    })();
    expect(isKdError(e) && e.code).toBe('KD_PLUGIN_OPTIONS');
  });

  it('official target: softmax(v/20), v = (0.005, 0.99, 0.005) — the probability vector softened as logits', () => {
    // e^{0.005/20} = 1.000250, e^{0.99/20} = 1.050745; sum 3.051245 → 0.327817, 0.344366
    const t = target('official');
    [0.327817, 0.344366, 0.327817].forEach((p, k) => expectClose(t[0][k], p, 2e-6));
    [0.327817, 0.327817, 0.344366].forEach((p, k) => expectClose(t[1][k], p, 2e-6));
  });

  it('kd-lib and distillistic target: softmax(v/10), v = (0.05, 0.9, 0.05)', () => {
    // e^{0.005} = 1.005013, e^{0.09} = 1.094174; sum 3.104199 → 0.323759, 0.352482
    for (const variant of ['kd-lib', 'distillistic'] as const) {
      const t = target(variant);
      [0.323759, 0.352482, 0.323759].forEach((p, k) => expectClose(t[0][k], p, 2e-6));
      [0.323759, 0.323759, 0.352482].forEach((p, k) => expectClose(t[1][k], p, 2e-6));
    }
  });
});

describe('virtualTeacherTerms (hand-computed)', () => {
  it('official: kd = 100 · Σ_b KL(t_b ‖ softmax(z_b)) / (B·K), student not softened, no T²', () => {
    // KL0 = 0.185571, KL1 = 0.450883 (t from the official target, softmax(z) at T = 1)
    // kd = 100 · (0.185571 + 0.450883) / (2·3) = 10.607573; loss = 0.9·0.383944 + 0.1·10.607573 = 1.406307
    const { ce, kd } = terms(VIRTUAL_VARIANTS.official);
    expectClose(ce, CE, 2e-6);
    expectClose(kd, 10.607573, 2e-6);
    const loss = tf.tidy(() => virtualTeacherLoss(tf.tensor2d(Z), tf.tensor1d(Y, 'int32'), VIRTUAL_VARIANTS.official).dataSync()[0]);
    expectClose(loss, 1.406307, 2e-6);
  });

  it('kd-lib: the official formula with a 0.9, T 10, no multiplier', () => {
    // KL0 = 0.175971, KL1 = 0.436008; kd = (0.175971 + 0.436008)/6 = 0.101997; loss 0.5·CE + 0.5·kd = 0.242970
    expectClose(terms(VIRTUAL_VARIANTS['kd-lib']).kd, 0.101997, 2e-6);
    const loss = tf.tidy(() => virtualTeacherLoss(tf.tensor2d(Z), tf.tensor1d(Y, 'int32'), VIRTUAL_VARIANTS['kd-lib']).dataSync()[0]);
    expectClose(loss, 0.24297, 2e-6);
  });

  it('distillistic: T²·KL batchmean with the student softened too', () => {
    // softmax(z/10): KL0 = 0.000383, KL1 = 0.002392; kd = 100·(0.000383 + 0.002392)/2 = 0.138748
    expectClose(terms(VIRTUAL_VARIANTS.distillistic).kd, 0.138748, 1e-5);
    const ps = Z.map((z) => softmax(z, 10));
    const t = [softmax([0.05, 0.9, 0.05], 10), softmax([0.05, 0.05, 0.9], 10)];
    expectClose(terms(VIRTUAL_VARIANTS.distillistic).kd, (100 * (kl(t[0], ps[0]) + kl(t[1], ps[1]))) / 2, 1e-5);
  });

  it('calibrated: 0.5·CE + 0.5·KL(v ‖ softmax(z)), v = (0.05, 0.9, 0.05) unsoftened', () => {
    // KL0 = 0.05·ln(0.05/0.231224) + 0.9·ln(0.9/0.628532) + 0.05·ln(0.05/0.140244) = 0.194971
    // KL1 = 0.099121; kd = 0.147046; loss = 0.5·0.383944 + 0.5·0.147046 = 0.265495
    const kd = tf.tidy(() => calibratedTerms(tf.tensor2d(Z), tf.tensor1d(Y, 'int32'), 0.9).kd.dataSync()[0]);
    expectClose(kd, 0.147046, 2e-6);
    const t = runLossOnce(tfKdCalibratedLoss, {}, { logits: { student: tf.tensor2d(Z) }, y: Y });
    expect(Object.keys(t)).toEqual(['self/tf-kd-calibrated:ce', 'self/tf-kd-calibrated:kd']);
    expectClose(t['self/tf-kd-calibrated:ce'].value, CE, 2e-6);
    expectClose(t['self/tf-kd-calibrated:kd'].value, 0.147046, 2e-6);
    const total = Object.values(t).reduce((s, x) => s + x.value * x.weight, 0);
    expectClose(total, 0.265495, 2e-6);
  });

  it('finite-difference gradient checks, every variant and the calibrated loss', () => {
    const y = tf.tensor1d(Y, 'int32');
    for (const p of [...Object.values(VIRTUAL_VARIANTS), { ...VIRTUAL_VARIANTS.official, correctProb: 0.9, temperature: 1, softenTeacher: false, reduction: 'batchmean' as const, multiplier: 1, alpha: 0.5 }]) {
      const { maxRelError } = finiteDifferenceCheck((z) => virtualTeacherLoss(z, y, p), Z.flat(), [2, 3]);
      expect(maxRelError).toBeLessThan(1e-2);
    }
    const { maxRelError } = finiteDifferenceCheck((z) => calibratedTerms(z, y, 0.9).kd, Z.flat(), [2, 3]);
    expect(maxRelError).toBeLessThan(1e-2);
    y.dispose();
  });
});

describe('self/tf-kd-virtual options', () => {
  it('variant defaults, overridable one by one', () => {
    const o = tfKdVirtualSchema.parse({});
    expect(o).toEqual({ variant: 'official', student: 'student' });
    expect(resolveVirtual(o)).toMatchObject({ correctProb: 0.99, temperature: 20, alpha: 0.1, multiplier: 100, softenStudent: false, t2: false, reduction: 'mean' });
    expect(resolveVirtual(tfKdVirtualSchema.parse({ variant: 'distillistic' }))).toMatchObject({ correctProb: 0.9, temperature: 10, alpha: 0.5, softenStudent: true, t2: true, reduction: 'batchmean' });
    expect(resolveVirtual(tfKdVirtualSchema.parse({ variant: 'distillistic', temperature: 4, alpha: 0.3 }))).toMatchObject({ temperature: 4, alpha: 0.3, correctProb: 0.9 });
  });

  it('the plugin adds :ce (weight 1 − α) and :kd (weight α)', () => {
    const t = runLossOnce(tfKdVirtualLoss, { variant: 'distillistic' }, { logits: { student: tf.tensor2d(Z) }, y: Y });
    expect(t['self/tf-kd-virtual:ce'].weight).toBe(0.5);
    expect(t['self/tf-kd-virtual:kd'].weight).toBe(0.5);
    expectClose(t['self/tf-kd-virtual:kd'].value, 0.138748, 1e-5);
    const off = runLossOnce(tfKdVirtualLoss, {}, { logits: { student: tf.tensor2d(Z) }, y: Y });
    expect([off['self/tf-kd-virtual:ce'].weight, off['self/tf-kd-virtual:kd'].weight]).toEqual([0.9, 0.1]);
    expectClose(off['self/tf-kd-virtual:kd'].value, 10.607573, 2e-6);
  });
});

describe('self/tf-kd-self (loss_kd_self)', () => {
  it('kd = multiplier · T² · Σ KL(p_t^T ‖ p_s^T) / (B·K) with the ResNet18 self-teacher defaults (α 0.95, T 6, ×50)', () => {
    // softmax at T = 6: KL0 = 0.010691, KL1 = 0.006059 → 50 · 36 · (0.010691 + 0.006059) / 6 = 5.024878
    const t = runLossOnce(tfKdSelfLoss, {}, { logits: { student: tf.tensor2d(Z), teacher: tf.tensor2d(ZT) }, y: Y });
    expectClose(t['self/tf-kd-self:kd'].value, 5.024878, 2e-6);
    expectClose(t['self/tf-kd-self:ce'].value, CE, 2e-6);
    expect([t['self/tf-kd-self:ce'].weight, t['self/tf-kd-self:kd'].weight]).toEqual([expect.closeTo(0.05, 12), 0.95]);
  });

  it('batchmean, multiplier 1, T 4 is Hinton KD (0.299963, as losses-logit)', () => {
    const kd = tf.tidy(() => tfKdSelfTerms(tf.tensor2d(Z), tf.tensor2d(ZT), tf.tensor1d(Y, 'int32'), { temperature: 4, multiplier: 1, reduction: 'batchmean' }).kd.dataSync()[0]);
    expectClose(kd, 0.299963, 2e-6);
  });

  it('passes a finite-difference gradient check; klDivergence mean = batchmean / K', () => {
    const zt = tf.tensor2d(ZT);
    const y = tf.tensor1d(Y, 'int32');
    const { maxRelError } = finiteDifferenceCheck((z) => tfKdSelfTerms(z, zt, y, { temperature: 6, multiplier: 50, reduction: 'mean' }).kd, Z.flat(), [2, 3]);
    expect(maxRelError).toBeLessThan(1e-2);
    const [bm, mean] = tf.tidy(() => [klDivergence(tf.logSoftmax(zt), tf.logSoftmax(tf.tensor2d(Z)), 'batchmean'), klDivergence(tf.logSoftmax(zt), tf.logSoftmax(tf.tensor2d(Z)), 'mean')].map((t) => t.dataSync()[0]));
    expectClose(mean, bm / 3, 1e-6);
    tf.dispose([zt, y]);
  });

  it('needs a teacher role', () => {
    expect(() => runLossOnce(tfKdSelfLoss, {}, { logits: { student: tf.tensor2d(Z) }, y: Y, roles: [{ name: 'student', kind: 'student', trainable: true }] })).toThrow(
      "reads the logits of role 'teacher'",
    );
  });
});

describe('Tf-KD with soft targets (mixup/CutMix)', () => {
  // Sample 0 mixes labels 1 (λ = 0.7) and 0; sample 1 mixes 2 (λ = 0.4) and 1.
  const lam = [0.7, 0.4];
  const A = [1, 2];
  const B = [0, 1];
  const soft = () => tf.tensor2d(A.map((a, i) => [0, 1, 2].map((c) => (c === a ? lam[i] : 0) + (c === B[i] ? 1 - lam[i] : 0))));

  for (const [name, params] of [
    ['calibrated (no softening, T = 1, batchmean)', { correctProb: 0.9, temperature: 1, softenTeacher: false, softenStudent: false, t2: false, reduction: 'batchmean' as const, multiplier: 1 }],
    ['official (teacher softened at T = 20, mean × 100)', { ...VIRTUAL_VARIANTS.official }],
    ['distillistic (both softened, T², batchmean)', { ...VIRTUAL_VARIANTS.distillistic }],
  ] as const) {
    it(`${name}: the gradient is λ·∇L(a) + (1 − λ)·∇L(b), the value differs by a constant`, () => {
      const kdOf = (z: tf.Tensor, y: tf.Tensor) => virtualTeacherTerms(z, y, params).kd;
      const grad = (y: () => tf.Tensor) => tf.grad((z: tf.Tensor) => kdOf(z, y()))(tf.tensor2d(Z)).arraySync() as number[][];
      const gSoft = grad(soft);
      const gA = grad(() => tf.tensor1d(A, 'int32'));
      const gB = grad(() => tf.tensor1d(B, 'int32'));
      // Every reduction divides all rows by one constant, so row i's gradient mixes with its own λ_i.
      for (let i = 0; i < 2; i++) for (let k = 0; k < 3; k++) expect(gSoft[i][k]).toBeCloseTo(lam[i] * gA[i][k] + (1 - lam[i]) * gB[i][k], 6);
      // The value: the reference form Σ_i [λ_i·l_i(a) + (1 − λ_i)·l_i(b)] (rows through one-row batches,
      // halved: every reduction here is a mean over the 2 rows) plus a constant independent of z.
      const mixed = (z: number[][]) => tf.tidy(() => kdOf(tf.tensor2d(z), soft()).dataSync()[0]);
      const reference = (z: number[][]) =>
        tf.tidy(() =>
          [0, 1].reduce((acc, i) => {
            const zi = tf.tensor2d([z[i]]);
            const la = kdOf(zi, tf.tensor1d([A[i]], 'int32')).dataSync()[0];
            const lb = kdOf(zi, tf.tensor1d([B[i]], 'int32')).dataSync()[0];
            return acc + (lam[i] * la + (1 - lam[i]) * lb) / 2;
          }, 0),
        );
      const z2 = Z.map((r) => r.map((v, k) => v * 1.7 - k));
      expect(mixed(Z) - reference(Z)).toBeCloseTo(mixed(z2) - reference(z2), 4);
      expect(Math.abs(mixed(Z) - reference(Z))).toBeGreaterThan(1e-4); // a real offset: the mixture's entropy
    });
  }

  it('one-hot soft targets give exactly the integer-label loss', () => {
    for (const p of Object.values(VIRTUAL_VARIANTS)) {
      const a = virtualTeacherLoss(tf.tensor2d(Z), tf.oneHot(tf.tensor1d(Y, 'int32'), 3).cast('float32'), p).dataSync()[0];
      const b = virtualTeacherLoss(tf.tensor2d(Z), tf.tensor1d(Y, 'int32'), p).dataSync()[0];
      expect(a).toBeCloseTo(b, 5);
    }
  });
});
