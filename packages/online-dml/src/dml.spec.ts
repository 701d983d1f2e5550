import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { Y, Z0, Z1, Z2, expectClose, lossTerms, softmax, studentRoles, total, values } from './__fixtures__/harness';
import { dmlDivergence, dmlEnsembleLossDefinition, dmlLoss, dmlLossDefinition, type PeerTarget } from './dml';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const num = (f: () => tf.Tensor): number => tf.tidy(() => f().dataSync()[0]);
const t2 = (m: number[][]) => tf.tensor2d(m);
const y = () => tf.tensor1d(Y, 'int32');

// CE(z0, y) = mean(−ln 0.628532, −ln 0.738216) = (0.464369 + 0.303519) / 2 = 0.383944
const CE0 = 0.383944;

describe('dmlDivergence / dmlLoss: hand values (2 samples, 3 classes, T = 1)', () => {
  it('K = 2: D_0 = KL(p1 ‖ p0) = (0.432260 + 0.091678) / 2 = 0.261969; L_0 = 0.383944 + 0.5 · D_0', () => {
    const d = num(() => dmlDivergence([t2(Z0), t2(Z1)], 0, { temperature: 1, target: 'pairwise' }));
    expectClose(d, 0.261969);
    expectClose(num(() => dmlLoss([t2(Z0), t2(Z1)], 0, y(), { temperature: 1, target: 'pairwise', alpha: 0.5 })), 0.514928);
  });

  it('K = 3: D_0 = (KL(p1 ‖ p0) + KL(p2 ‖ p0)) / 2 = (0.261969 + 0.456524) / 2 = 0.359246', () => {
    // KL(p2 ‖ p0) rows: 0.347786, 0.565262 → 0.456524
    const logits = () => [t2(Z0), t2(Z1), t2(Z2)];
    expectClose(num(() => dmlDivergence(logits(), 0, { temperature: 1, target: 'pairwise' })), 0.359246);
    expectClose(num(() => dmlLoss(logits(), 0, y(), { temperature: 1, target: 'pairwise', alpha: 0.5 })), CE0 + 0.5 * 0.359246);
    // ceWeight 1 − α: distillistic's convex combination
    expectClose(num(() => dmlLoss(logits(), 0, y(), { temperature: 1, target: 'pairwise', alpha: 0.5, ceWeight: 0.5 })), 0.5 * CE0 + 0.5 * 0.359246);
  });

  it('DML_e, K = 3: D_0 = KL((p1 + p2)/2 ‖ p0) = 0.216678', () => {
    const d = num(() => dmlDivergence([t2(Z0), t2(Z1), t2(Z2)], 0, { temperature: 1, target: 'ensemble' }));
    expectClose(d, 0.216678);
  });

  it('DML_e with logit averaging, K = 3: D_0 = KL(softmax((z1 + z2)/2) ‖ p0) = (0.238092 + 0.148491)/2', () => {
    const d = num(() => dmlDivergence([t2(Z0), t2(Z1), t2(Z2)], 0, { temperature: 1, target: 'ensemble', average: 'logits' }));
    expectClose(d, 0.193292);
  });

  it('DML and DML_e (probability mean) differ in value but have the same gradient: (p0 − mean_j p_j)/B', () => {
    const z1 = t2(Z1);
    const z2 = t2(Z2);
    const grad = (target: PeerTarget) =>
      tf.tidy(() => Array.from(tf.grad((z: tf.Tensor) => dmlDivergence([z, z1, z2], 0, { temperature: 1, target }))(t2(Z0)).dataSync()));
    const [a, b] = [grad('pairwise'), grad('ensemble')];
    a.forEach((g, i) => expectClose(b[i], g, 1e-6));
    const logitMean = tf.tidy(() => Array.from(tf.grad((z: tf.Tensor) => dmlDivergence([z, z1, z2], 0, { temperature: 1, target: 'ensemble', average: 'logits' }))(t2(Z0)).dataSync()));
    // softmax((z1 + z2)/2) row 0 = [0.481024, 0.291756, 0.227220]: (p0 − that)/2 for sample 0
    [0.231224 - 0.481024, 0.628532 - 0.291756, 0.140244 - 0.22722].forEach((v, k) => expectClose(logitMean[k], v / 2, 1e-5));
    tf.dispose([z1, z2]);
  });

  it('DML_e equals DML when K = 2, for every member and temperature', () => {
    for (const temperature of [1, 2]) {
      for (const i of [0, 1]) {
        const a = num(() => dmlDivergence([t2(Z0), t2(Z1)], i, { temperature, target: 'pairwise' }));
        const b = num(() => dmlDivergence([t2(Z0), t2(Z1)], i, { temperature, target: 'ensemble' }));
        const c = num(() => dmlDivergence([t2(Z0), t2(Z1)], i, { temperature, target: 'ensemble', average: 'logits' }));
        expectClose(b, a, 1e-6);
        expectClose(c, a, 1e-6);
      }
    }
    // T = 2: KL(p1^2 ‖ p0^2) = 0.072816 (no T² factor)
    expectClose(num(() => dmlDivergence([t2(Z0), t2(Z1)], 0, { temperature: 2, target: 'ensemble' })), 0.072816);
  });

  it('the gradient w.r.t. z_0 is (p0 − onehot(y))/B + α·(p0 − mean_j p_j)/B (peers stopped)', () => {
    const z1 = t2(Z1);
    const z2 = t2(Z2);
    const g = tf.tidy(() => tf.grad((z: tf.Tensor) => dmlLoss([z, z1, z2], 0, y(), { temperature: 1, target: 'pairwise', alpha: 0.5 }))(t2(Z0)).arraySync() as number[][]);
    tf.dispose([z1, z2]);
    Z0.forEach((row, b) => {
      const p0 = softmax(row);
      const pm = softmax(Z1[b]).map((v, k) => (v + softmax(Z2[b])[k]) / 2);
      row.forEach((_, k) => expectClose(g[b][k], (p0[k] - (k === Y[b] ? 1 : 0)) / 2 + (0.5 * (p0[k] - pm[k])) / 2, 1e-5));
    });
  });

  it('passes finite-difference checks (both targets, T = 1 and 2)', () => {
    const z1 = t2(Z1);
    const z2 = t2(Z2);
    const labels = y();
    for (const [target, average] of [['pairwise', 'probs'], ['ensemble', 'probs'], ['ensemble', 'logits']] as const) {
      for (const temperature of [1, 2]) {
        const { maxRelError } = finiteDifferenceCheck((z) => dmlLoss([z, z1, z2], 0, labels, { temperature, target, average, alpha: 0.5 }), Z0.flat(), [2, 3]);
        expect(maxRelError).toBeLessThan(1e-2);
        const mid = finiteDifferenceCheck((z) => dmlDivergence([z1, z, z2], 1, { temperature, target, average }), Z0.flat(), [2, 3]);
        expect(mid.maxRelError).toBeLessThan(1e-2);
      }
    }
    tf.dispose([z1, z2, labels]);
  });
});

describe('online/dml plugin: stop-gradient on the peers', () => {
  // Three linear students z_i = X · W_i, X [2, 4].
  const X = [
    [0.5, -1, 0.25, 2],
    [1, 0.5, -0.5, 0],
  ];
  const W = [0, 1, 2].map((i) => tf.tidy(() => tf.variable(tf.randomNormal([4, 3], 0, 1, 'float32', 11 + i), true, `dml_w${i}`)));
  afterAll(() => tf.dispose(W));

  function pluginTotal(def = dmlLossDefinition, options: Record<string, unknown> = {}): tf.Scalar {
    const x = tf.tensor2d(X);
    const terms = lossTerms(def, options, { roles: studentRoles(3), y: Y, outputs: (role) => ({ logits: tf.matMul(x, W[Number(role.slice(-1))]), taps: {} }) });
    return total(terms);
  }

  it('∂(Σ_i L_i)/∂W_0 equals ∂L_0/∂W_0 with the peers as constants', () => {
    for (const [def, target] of [
      [dmlLossDefinition, 'pairwise'],
      [dmlEnsembleLossDefinition, 'ensemble'],
    ] as const) {
      const summed = tf.tidy(() => tf.variableGrads(() => pluginTotal(def), [W[0]]).grads[W[0].name].arraySync() as number[][]);
      const alone = tf.tidy(() => {
        const x = tf.tensor2d(X);
        const peers = [W[1], W[2]].map((w) => tf.tensor(tf.matMul(x, w).arraySync() as number[][])); // plain constants
        return tf.variableGrads(() => dmlLoss([tf.matMul(x, W[0]), ...peers], 0, y(), { temperature: 1, target, alpha: 0.5 }), [W[0]]).grads[W[0].name].arraySync() as number[][];
      });
      summed.flat().forEach((g, i) => expectClose(g, alone.flat()[i], 1e-5));
    }
  });

  it('without the stop-gradient the summed gradient would differ (the check above is not vacuous)', () => {
    const leaky = tf.tidy(() =>
      tf.variableGrads(() => {
        const x = tf.tensor2d(X);
        const z = W.map((w) => tf.matMul(x, w));
        const terms = z.map((zi, i) => {
          const logQ = tf.logSoftmax(zi);
          const kls = z.filter((_, j) => j !== i).map((zj) => tf.mean(tf.sum(tf.mul(tf.softmax(zj), tf.sub(tf.logSoftmax(zj), logQ)), 1)));
          return tf.mul(tf.addN(kls), 0.5 / 2);
        });
        return tf.addN(terms) as tf.Scalar;
      }, [W[0]]).grads[W[0].name].arraySync() as number[][],
    );
    const stopped = tf.tidy(() => tf.variableGrads(() => pluginTotal(dmlLossDefinition, { ceWeight: 0 }), [W[0]]).grads[W[0].name].arraySync() as number[][]);
    const diff = Math.max(...leaky.flat().map((g, i) => Math.abs(g - stopped.flat()[i])));
    expect(diff).toBeGreaterThan(1e-3);
  });

  it('adds a ce and a kl term per student, weighted 1 and α, named <name>:<role>:ce|kl', () => {
    tf.tidy(() => {
      const logits: Record<string, tf.Tensor> = { 'student.0': t2(Z0), 'student.1': t2(Z1), 'student.2': t2(Z2) };
      const terms = lossTerms(dmlLossDefinition, { alpha: 0.25 }, { roles: studentRoles(3), y: Y, outputs: (r) => ({ logits: logits[r], taps: {} }) });
      expect(terms.map((t) => [t.name, t.weight])).toEqual([
        ['online/dml:student.0:ce', 1],
        ['online/dml:student.0:kl', 0.25],
        ['online/dml:student.1:ce', 1],
        ['online/dml:student.1:kl', 0.25],
        ['online/dml:student.2:ce', 1],
        ['online/dml:student.2:kl', 0.25],
      ]);
      const v = values(terms);
      expectClose(v['online/dml:student.0:ce'], CE0);
      expectClose(v['online/dml:student.0:kl'], 0.359246);
    });
  });

  it('a cohort of two named roles out of three', () => {
    tf.tidy(() => {
      const logits: Record<string, tf.Tensor> = { 'student.0': t2(Z0), 'student.2': t2(Z1) };
      const terms = lossTerms(dmlEnsembleLossDefinition, { students: ['student.0', 'student.2'] }, { roles: studentRoles(3), y: Y, outputs: (r) => ({ logits: logits[r], taps: {} }) });
      expect(terms.map((t) => t.name)).toEqual(['online/dml-ensemble:student.0:ce', 'online/dml-ensemble:student.0:kl', 'online/dml-ensemble:student.2:ce', 'online/dml-ensemble:student.2:kl']);
      expectClose(values(terms)['online/dml-ensemble:student.0:kl'], 0.261969);
    });
  });

  it('online/dml-ensemble passes `average` through (K = 3): 0.216678 (probs), 0.193292 (logits)', () => {
    tf.tidy(() => {
      const logits: Record<string, tf.Tensor> = { 'student.0': t2(Z0), 'student.1': t2(Z1), 'student.2': t2(Z2) };
      const kl0 = (options: Record<string, unknown>) =>
        values(lossTerms(dmlEnsembleLossDefinition, options, { roles: studentRoles(3), y: Y, outputs: (r) => ({ logits: logits[r], taps: {} }) }))['online/dml-ensemble:student.0:kl'];
      expectClose(kl0({}), 0.216678);
      expectClose(kl0({ average: 'logits' }), 0.193292);
    });
  });

  it('fails at creation with fewer than two students or a role that is not a student', () => {
    const run = (roles: ReturnType<typeof studentRoles>, options: Record<string, unknown> = {}) => () =>
      lossTerms(dmlLossDefinition, options, { roles, y: Y, outputs: () => ({ logits: t2(Z0), taps: {} }) });
    expect(run(studentRoles(1))).toThrow("'online/dml' trains a cohort of at least 2 students; this run has 1 (student.0)");
    expect(run(studentRoles(2), { students: ['student.0', 'teacher'] })).toThrow("'teacher' is not a student role of this run");
    expect(dmlLossDefinition.requires?.(dmlLossDefinition.options.parse({ students: ['student.0', 'student.1'] }))).toEqual({ roles: ['student.0', 'student.1'] });
  });
});
