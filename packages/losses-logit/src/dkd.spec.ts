import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { runLossOnce } from './__fixtures__/harness';
import { expectClose, kl, mean, softmax } from './__fixtures__/reference';
import { dkd, dkdLoss, dkdParts, dkdWarmup } from './dkd';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// Three samples, four classes.
const ZS = [
  [1, 2, 0.5, -0.5],
  [0.2, -1, 1.5, 0.3],
  [-0.4, 0.8, 0.1, 1.2],
];
const ZT = [
  [2, 1, 0, -1],
  [0, 0.5, 2, 1],
  [0.5, -0.5, 0.3, 2.5],
];
const Y = [0, 2, 3];

/**
 * DKD in doubles, straight from the paper's definitions (no 1000 mask): binary masses
 * b = (p_y, 1 − p_y) and the renormalised distribution over the classes k ≠ y.
 */
function reference(temperature: number) {
  const per = ZS.map((row, b) => {
    const ps = softmax(row, temperature);
    const pt = softmax(ZT[b], temperature);
    const y = Y[b];
    const tckd = kl([pt[y], 1 - pt[y]], [ps[y], 1 - ps[y]]);
    const ns = ps.filter((_, k) => k !== y).map((v) => v / (1 - ps[y]));
    const nt = pt.filter((_, k) => k !== y).map((v) => v / (1 - pt[y]));
    return { tckd, nckd: kl(nt, ns), kd: kl(pt, ps), pTarget: pt[y] };
  });
  return { per, tckd: mean(per.map((p) => p.tckd)), nckd: mean(per.map((p) => p.nckd)) };
}

function run<T>(f: (zs: tf.Tensor, zt: tf.Tensor, y: tf.Tensor) => T): T {
  const zs = tf.tensor2d(ZS);
  const zt = tf.tensor2d(ZT);
  const y = tf.tensor1d(Y, 'int32');
  try {
    return f(zs, zt, y);
  } finally {
    tf.dispose([zs, zt, y]);
  }
}

describe('dkd', () => {
  it('T = 2, α = 1, β = 8: T²·(α·mean TCKD + β·mean NCKD) (hand-computed)', () => {
    // Sample 0 (y = 0): p_s^2 = [0.256418, 0.422761, 0.199698, 0.121123], p_t^2 = [0.455054, 0.276004, 0.167405, 0.101536]
    //   TCKD = KL([0.455054, 0.544946] ‖ [0.256418, 0.743582]) = 0.091658
    //   NCKD = KL([0.506480, 0.307196, 0.186324] ‖ [0.568546, 0.268562, 0.162891]) = 0.007783
    // Sample 1 (y = 2): TCKD = KL([0.408701, 0.591299] ‖ [0.424203, 0.575797]) = 0.000494, NCKD = 0.052380
    // Sample 2 (y = 3): TCKD = KL([0.519783, 0.480217] ‖ [0.351493, 0.648507]) = 0.059077, NCKD = 0.099888
    // mean TCKD = 0.050409, mean NCKD = 0.053350; loss = 4 · (0.050409 + 8 · 0.053350) = 1.908835
    const ref = reference(2);
    expectClose(ref.tckd, 0.050409, 1e-6);
    expectClose(ref.nckd, 0.05335, 1e-6);
    expectClose(4 * (ref.tckd + 8 * ref.nckd), 1.908835, 1e-6);
    const v = run((zs, zt, y) => tf.tidy(() => dkd(zs, zt, y, { alpha: 1, beta: 8, temperature: 2 }).dataSync()[0]));
    expectClose(v, 4 * (ref.tckd + 8 * ref.nckd));
  });

  it('per-sample parts match the definitions (the 1000 mask removes the target class)', () => {
    const ref = reference(4);
    const { tckd, nckd, p } = run((zs, zt, y) =>
      tf.tidy(() => {
        const parts = dkdParts(zs, zt, y, { temperature: 4 });
        return { tckd: parts.tckd.arraySync(), nckd: parts.nckd.arraySync(), p: parts.pTargetTeacher.arraySync() };
      }),
    );
    ref.per.forEach((r, b) => {
      expectClose(tckd[b], r.tckd);
      expectClose(nckd[b], r.nckd);
      expectClose(p[b], r.pTarget);
    });
  });

  it('decomposition per sample: KL(p_t^T ‖ p_s^T) = TCKD + (1 − p_t,target^T)·NCKD', () => {
    // Sample 0 at T = 2: 0.095899 = 0.091658 + 0.544946 · 0.007783
    for (const temperature of [1, 2, 4]) {
      const ref = reference(temperature);
      const { tckd, nckd, p } = run((zs, zt, y) =>
        tf.tidy(() => {
          const parts = dkdParts(zs, zt, y, { temperature });
          return { tckd: parts.tckd.arraySync(), nckd: parts.nckd.arraySync(), p: parts.pTargetTeacher.arraySync() };
        }),
      );
      ref.per.forEach((r, b) => expectClose(tckd[b] + (1 - p[b]) * nckd[b], r.kd));
    }
  });

  it('α and β weigh the two parts', () => {
    const ref = reference(4);
    const v = run((zs, zt, y) => tf.tidy(() => dkd(zs, zt, y, { alpha: 0.5, beta: 2, temperature: 4 }).dataSync()[0]));
    expectClose(v, 16 * (0.5 * ref.tckd + 2 * ref.nckd));
  });

  it('stays finite where mdistiller’s log(sum of softmax) would give −inf (student target probability underflows)', () => {
    const zs = tf.tensor2d([[-200, 0, 1, 2]]);
    const zt = tf.tensor2d([[3, 0, 1, 2]]);
    const y = tf.tensor1d([0], 'int32');
    // TCKD ≈ p_t,y · (log p_t,y − log p_s,y) with log p_s,y = −200 − lse([−200, 0, 1, 2]) = −202.407606
    const pt = softmax([3, 0, 1, 2]);
    const lseS = Math.log(Math.exp(0) + Math.exp(1) + Math.exp(2));
    const expected = pt[0] * (Math.log(pt[0]) - (-200 - lseS)) + (1 - pt[0]) * Math.log((1 - pt[0]) / 1);
    const [tckd] = tf.tidy(() => dkdParts(zs, zt, y, { temperature: 1 }).tckd.arraySync());
    expect(Number.isFinite(tckd)).toBe(true);
    expectClose(tckd, expected, 1e-4);
    tf.dispose([zs, zt, y]);
  });

  it('passes a finite-difference gradient check (defaults α = 1, β = 8, T = 4)', () => {
    const zt = tf.tensor2d(ZT);
    const y = tf.tensor1d(Y, 'int32');
    const { maxRelError } = finiteDifferenceCheck((z) => dkd(z, zt, y, { alpha: 1, beta: 8, temperature: 4 }), ZS.flat(), [3, 4]);
    tf.dispose([zt, y]);
    expect(maxRelError).toBeLessThan(1e-2);
  });
});

describe('dkdWarmup', () => {
  it('min(epoch / warmup, 1) with epochs from 1: 0.05, 0.5, 1, 1 at epochs 1, 10, 20, 30 (warmup 20)', () => {
    expect([1, 10, 20, 30].map((e) => dkdWarmup(e, 20))).toEqual([0.05, 0.5, 1, 1]);
    expect(dkdWarmup(1, 1)).toBe(1);
    expect(dkdWarmup(1, 0)).toBe(1);
  });
});

describe('loss/dkd plugin', () => {
  it('defaults: α = 1, β = 8, T = 4, warmup 20 (mdistiller CIFAR-100)', () => {
    const o = dkdLoss.options.parse({});
    expect(o).toEqual({ alpha: 1, beta: 8, temperature: 4, warmup: 20, student: 'student', teacher: 'teacher' });
    expect(dkdLoss.requires?.(o)).toEqual({ roles: ['student', 'teacher'] });
  });

  it('applies the warm-up factor of ctx.epoch: epochs 1, 10, 20, 30', () => {
    const ref = reference(4);
    const full = 16 * (ref.tckd + 8 * ref.nckd);
    const logits = { student: tf.tensor2d(ZS), teacher: tf.tensor2d(ZT) };
    const at = (epoch: number) => runLossOnce(dkdLoss, {}, { logits, y: Y, epoch })['loss/dkd'];
    expectClose(at(1), full / 20);
    expectClose(at(10), full / 2);
    expectClose(at(20), full);
    expectClose(at(30), full);
    // ImageNet recipe: T = 1, warmup 1, β = 0.5 → no warm-up from epoch 1
    const ref1 = reference(1);
    expectClose(runLossOnce(dkdLoss, { temperature: 1, warmup: 1, beta: 0.5 }, { logits, y: Y, epoch: 1 })['loss/dkd'], ref1.tckd + 0.5 * ref1.nckd);
    tf.dispose(Object.values(logits));
  });
});
