import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { Y, Z0, Z1, Z2, expectClose, lossTerms, softmax, values } from './__fixtures__/harness';
import { gatedEnsemble, oneLoss, oneLossDefinition, oneTerms, sigmoidRampup } from './one';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const G = [
  [0.2, 0.3, 0.5],
  [0.6, 0.1, 0.3],
];
// z_e = Σ_i g_i z_i = [[1.05, 0.95, 0.6], [0.42, −0.7, 1.1]]
const ZE = [
  [1.05, 0.95, 0.6],
  [0.42, -0.7, 1.1],
];
const t2 = (m: number[][]) => tf.tensor2d(m);
const branches = () => [t2(Z0), t2(Z1), t2(Z2)];
const y = () => tf.tensor1d(Y, 'int32');

describe('ONE loss: hand values (3 branches, 2 samples, 3 classes, T = 3)', () => {
  it('z_e = Σ_i g_i z_i', () => {
    const ze = tf.tidy(() => gatedEnsemble(branches(), t2(G)).arraySync() as number[][]);
    ze.flat().forEach((v, i) => expectClose(v, ZE.flat()[i], 1e-6));
  });

  it('Σ CE(z_i) = 0.383944 + 0.856981 + 1.379373; CE(z_e) = 0.773552; T²·Σ KL = 9·(0.011111 + 0.023549 + 0.020915)', () => {
    const p = tf.tidy(() => {
      const t = oneTerms(branches(), t2(G), y(), { temperature: 3 });
      return { ce: t.ce.dataSync()[0], ceEnsemble: t.ceEnsemble.dataSync()[0], kl: t.kl.dataSync()[0] };
    });
    expectClose(p.ce, 2.620297);
    expectClose(p.ceEnsemble, 0.773552);
    expectClose(p.kl, 0.500173);
    expectClose(tf.tidy(() => oneLoss(branches(), t2(G), y(), { temperature: 3 }).dataSync()[0]), 3.894023);
    // with the ramp-up weight at epoch 10 of 80: exp(−5·(1 − 10/80)²) = 0.021750
    expectClose(sigmoidRampup(10, 80), 0.02175036, 1e-6);
    expectClose(tf.tidy(() => oneLoss(branches(), t2(G), y(), { temperature: 3, klWeight: 0.02175036 }).dataSync()[0]), 2.620297 + 0.773552 + 0.02175036 * 0.500173);
  });

  it('the KL target is stopped: ∂(T²·Σ KL)/∂z_0 = T·(p_0^T − p_e^T)/B, nothing flows into the gate', () => {
    const T = 3;
    const gate = t2(G);
    const z1 = t2(Z1);
    const z2 = t2(Z2);
    const labels = y();
    const [gz, gg] = tf.tidy(() => {
      const f = (z0: tf.Tensor, g: tf.Tensor) => oneTerms([z0, z1, z2], g, labels, { temperature: T }).kl;
      return tf.grads(f)([t2(Z0), gate]).map((t) => t.arraySync() as number[][]);
    });
    Z0.forEach((row, b) => {
      const p0 = softmax(row, T);
      const pe = softmax(ZE[b], T);
      row.forEach((_, k) => expectClose(gz[b][k], (T * (p0[k] - pe[k])) / 2, 1e-5));
    });
    expect(gg.flat().every((v) => v === 0)).toBe(true);
    tf.dispose([gate, z1, z2, labels]);
  });

  it('the CE parts pass a finite-difference check w.r.t. every branch logit and the gate', () => {
    const labels = y();
    const x0 = [...Z0.flat(), ...Z1.flat(), ...Z2.flat(), ...G.flat()];
    const f = (x: tf.Tensor) => {
      const parts = tf.split(tf.reshape(x, [4, 2, 3]), 4, 0).map((t) => tf.reshape(t, [2, 3]));
      const t = oneTerms(parts.slice(0, 3), parts[3], labels, { temperature: 3 });
      return tf.add(t.ce, t.ceEnsemble) as tf.Scalar;
    };
    expect(finiteDifferenceCheck(f, x0, [24]).maxRelError).toBeLessThan(1e-2);
    // the KL w.r.t. one branch with z_e fixed (the stop-gradient makes it a constant target)
    const z1 = t2(Z1);
    const z2 = t2(Z2);
    const ze = t2(ZE);
    const kl = (z: tf.Tensor) => {
      const logP = tf.logSoftmax(tf.div(ze, 3));
      const logQ = tf.logSoftmax(tf.div(z, 3));
      return tf.mul(tf.mean(tf.sum(tf.mul(tf.exp(logP), tf.sub(logP, logQ)), 1)), 9) as tf.Scalar;
    };
    const fd = finiteDifferenceCheck(kl, Z0.flat(), [2, 3]);
    const analytic = tf.tidy(() => tf.grad((z: tf.Tensor) => oneTerms([z, z1, z2], t2(G), labels, { temperature: 3 }).kl)(t2(Z0)).dataSync());
    analytic.forEach((g, i) => expect(Math.abs(g - fd.numeric[i])).toBeLessThan(1e-3));
    tf.dispose([labels, z1, z2, ze]);
  });

  it('rejects a gate whose width is not the number of branches', () => {
    expect(() => tf.tidy(() => gatedEnsemble([t2(Z0), t2(Z1)], t2(G)))).toThrow('expected [batch, 2]');
  });
});

describe('online/one plugin', () => {
  const tapShapes = { 'student.branch0': [3], 'student.branch1': [3], 'student.branch2': [3], 'student.gate': [3] };
  const roles = [{ name: 'student', kind: 'student' as const, trainable: true }];

  it('defaults T = 3, m = 3; requires the taps branch0..2 and gate of the student', () => {
    const o = oneLossDefinition.options.parse({});
    expect(o).toEqual({ temperature: 3, branches: 3, student: 'student', rampup: 0 });
    expect(oneLossDefinition.requires?.(o)).toEqual({
      roles: ['student'],
      taps: ['student.branch0', 'student.branch1', 'student.branch2', 'student.gate'],
    });
  });

  it('reads the taps and adds :ce, :ce-ensemble and :kl (ramp-up weight on the kl)', () => {
    tf.tidy(() => {
      const taps = { branch0: t2(Z0), branch1: t2(Z1), branch2: t2(Z2), gate: t2(G) };
      const terms = lossTerms(oneLossDefinition, { rampup: 80 }, { roles, y: Y, epoch: 11, tapShapes, outputs: () => ({ logits: t2(ZE), taps }) });
      expect(terms.map((t) => t.name)).toEqual(['online/one:ce', 'online/one:ce-ensemble', 'online/one:kl']);
      expectClose(terms[2].weight, 0.02175036, 1e-6);
      const v = values(terms);
      expectClose(v['online/one:ce'], 2.620297);
      expectClose(v['online/one:ce-ensemble'], 0.773552);
      expectClose(v['online/one:kl'], 0.500173);
    });
  });

  it('fails at creation when the gate tap does not have `branches` entries', () => {
    const shapes = { ...tapShapes, 'student.gate': [4] };
    expect(() => lossTerms(oneLossDefinition, {}, { roles, y: Y, tapShapes: shapes, outputs: () => ({ logits: t2(ZE), taps: {} }) })).toThrow(
      "the tap 'student.gate' has shape [4], expected [3] (branches: 3)",
    );
  });
});
