import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { runLossOnce } from './__fixtures__/harness';
import { expectClose, kl, mean, softmax } from './__fixtures__/reference';
import { hintonKd } from './hinton-kd';
import { ttm, ttmLoss, ttmParts, wttm, wttmLoss } from './ttm';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// Two samples, three classes (as the hinton-kd spec).
const ZS = [
  [1, 2, 0.5],
  [0.2, -1, 1.5],
];
const ZT = [
  [2, 1, 0],
  [0, 0.5, 2],
];

/** The reference's transform in doubles: p_t^γ renormalised, the power sum, KL against the untempered student. */
function reference(gamma: number): { kl: number[]; powerSum: number[] } {
  const rows = ZT.map((r) => softmax(r).map((p) => p ** gamma));
  const powerSum = rows.map((r) => r.reduce((a, b) => a + b, 0));
  return { kl: rows.map((r, b) => kl(r.map((v) => v / powerSum[b]), softmax(ZS[b]))), powerSum };
}

function values(gamma: number, zs = ZS, zt = ZT): { ttm: number; wttm: number; kl: number[]; powerSum: number[] } {
  return tf.tidy(() => {
    const s = tf.tensor2d(zs);
    const t = tf.tensor2d(zt);
    const parts = ttmParts(s, t, { gamma });
    return {
      ttm: ttm(s, t, { gamma }).dataSync()[0],
      wttm: wttm(s, t, { gamma }).dataSync()[0],
      kl: Array.from(parts.kl.dataSync()),
      powerSum: Array.from(parts.powerSum.dataSync()),
    };
  });
}

describe('ttm / wttm', () => {
  it('γ = 0.1: TTM = mean_b KL(p̃_t ‖ p_s), WTTM = mean_b (Σ p_t^γ)·KL (hand-computed)', () => {
    // torch float64 re-run of zkxufo/TTM distiller_zoo/ttm.py and wttm.py with l = 0.1:
    //   KL rows [0.18716132, 0.40891123], power sums [2.61478598, 2.59859723]
    //   TTM = 0.29803628, WTTM = (2.61478598·0.18716132 + 2.59859723·0.40891123)/2 = 0.77599120
    const ref = reference(0.1);
    expectClose(ref.kl[0], 0.18716132, 1e-7);
    expectClose(ref.powerSum[1], 2.59859723, 1e-7);
    const v = values(0.1);
    [0.18716132, 0.40891123].forEach((x, b) => expectClose(v.kl[b], x));
    [2.61478598, 2.59859723].forEach((x, b) => expectClose(v.powerSum[b], x));
    expectClose(v.ttm, 0.29803628);
    expectClose(v.wttm, 0.7759912);
  });

  it('γ = 0.5: TTM 0.21646836, WTTM 0.34540258 (torch float64)', () => {
    const ref = reference(0.5);
    expectClose(mean(ref.kl), 0.21646836, 1e-7);
    const v = values(0.5);
    expectClose(v.ttm, 0.21646836);
    expectClose(v.wttm, 0.34540258);
  });

  it('p̃_t = softmax(z_t / T) with T = 1/γ, and the student is not tempered', () => {
    const v = values(0.25);
    ZS.forEach((r, b) => expectClose(v.kl[b], kl(softmax(ZT[b], 4), softmax(r))));
    expectClose(v.ttm, 0.254226, 1e-5);
    // not Hinton KD at T = 4 (that tempers the student too and multiplies by T²): 0.299963
    const hinton = tf.tidy(() => hintonKd(tf.tensor2d(ZS), tf.tensor2d(ZT), { temperature: 4 }).dataSync()[0]);
    expectClose(hinton, 0.299963, 1e-5);
  });

  it('γ = 1: both are plain KL at T = 1 (power sums 1): 0.26196899', () => {
    const v = values(1);
    expectClose(v.ttm, 0.26196899);
    expectClose(v.wttm, 0.26196899);
    v.powerSum.forEach((w) => expectClose(w, 1));
  });

  it('a confident teacher (the other classes’ p_t below float32’s range): finite, KL = log 3 against a uniform student', () => {
    // p_t = [1, e^−120, e^−120]: p̃_t at γ = 0.5 is [1, e^−60, e^−60]/(1 + 2e^−60); KL(p̃_t ‖ 1/3) = log 3 − O(e^−60)
    const v = values(0.5, [[0, 0, 0]], [[0, -120, -120]]);
    expectClose(v.powerSum[0], 1);
    expect(Number.isFinite(v.kl[0])).toBe(true);
    expectClose(v.kl[0], Math.log(3), 1e-5);
  });

  it('passes a finite-difference gradient check (γ = 0.1 and 0.5)', () => {
    for (const gamma of [0.1, 0.5]) {
      const zt = tf.tensor2d(ZT);
      for (const f of [ttm, wttm]) {
        const { maxRelError } = finiteDifferenceCheck((z) => f(z, zt, { gamma }), ZS.flat(), [2, 3]);
        expect(maxRelError).toBeLessThan(1e-2);
      }
      zt.dispose();
    }
  });

  it('gradient of TTM w.r.t. z_s is (p_s − p̃_t)/B', () => {
    const zt = tf.tensor2d(ZT);
    const g = tf.tidy(() => tf.grad((z: tf.Tensor) => ttm(z, zt, { gamma: 0.1 }))(tf.tensor2d(ZS)).arraySync() as number[][]);
    zt.dispose();
    ZS.forEach((r, b) => {
      const ps = softmax(r);
      const pt = softmax(ZT[b], 10);
      r.forEach((_, k) => expectClose(g[b][k], (ps[k] - pt[k]) / 2));
    });
  });

  it('rejects logits of different shapes', () => {
    expect(() => values(0.1, ZS, [[1, 2, 3, 4], [1, 2, 3, 4]])).toThrow(/shapes \[2,3\] and \[2,4\] differ/);
  });
});

describe('loss/ttm and loss/wttm plugins', () => {
  it('defaults: γ = 0.1 (the reference README’s run)', () => {
    for (const def of [ttmLoss, wttmLoss]) {
      const o = def.options.parse({});
      expect(o).toEqual({ gamma: 0.1, student: 'student', teacher: 'teacher' });
      expect(def.requires?.(o)).toEqual({ roles: ['student', 'teacher'] });
      expect(def.options.safeParse({ gamma: 0 }).success).toBe(false);
    }
    expect(ttmLoss.describe).toContain('weight: 45');
  });

  it('compute the functions on the roles’ logits', () => {
    const logits = { student: tf.tensor2d(ZS), teacher: tf.tensor2d(ZT) };
    expectClose(runLossOnce(ttmLoss, {}, { logits })['loss/ttm'], 0.29803628);
    expectClose(runLossOnce(wttmLoss, {}, { logits })['loss/wttm'], 0.7759912);
    expectClose(runLossOnce(wttmLoss, { gamma: 0.5 }, { logits })['loss/wttm'], 0.34540258);
    tf.dispose(Object.values(logits));
  });
});
