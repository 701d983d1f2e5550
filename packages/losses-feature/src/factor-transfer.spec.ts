import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { Rng } from '@tfkd/kd-core';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { channels, expectClose, mean, normalize, num, values } from './__fixtures__/reference';
import { factorTransferLoss, ftFactor } from './factor-transfer';
import { Paraphraser, asMap, factorChannels, pretrainParaphraser, reconstructionLoss, translator } from './paraphraser';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Plain-double FT loss: 2×2 average pooling of the student map when it is twice the teacher's. */
function referenceFt(fs: number[], sShape: [number, number, number, number], ft: number[], tShape: [number, number, number, number], p: 1 | 2, mode: 'attention' | 'flat'): number {
  const pool = (x: number[], [b, h, w, c]: [number, number, number, number]): number[] => {
    const out: number[] = [];
    for (let n = 0; n < b; n++)
      for (let i = 0; i < h / 2; i++)
        for (let j = 0; j < w / 2; j++)
          for (let k = 0; k < c; k++) {
            const at = (ii: number, jj: number) => x[((n * h + ii) * w + jj) * c + k];
            out.push((at(2 * i, 2 * j) + at(2 * i + 1, 2 * j) + at(2 * i, 2 * j + 1) + at(2 * i + 1, 2 * j + 1)) / 4);
          }
    return out;
  };
  const s = sShape[1] === tShape[1] ? fs : pool(fs, sShape);
  const shape: [number, number, number, number] = [tShape[0], tShape[1], tShape[2], sShape[3]];
  const factor = (x: number[], sh: [number, number, number, number]): number[][] =>
    channels(x, sh).map((perChannel) =>
      normalize(mode === 'attention' ? perChannel[0].map((_, q) => mean(perChannel.map((ch) => ch[q] * ch[q]))) : x.length ? flatSample(perChannel) : []),
    );
  // flat: the sample's NHWC values in memory order (position-major, channel-minor)
  const flatSample = (perChannel: number[][]): number[] => perChannel[0].flatMap((_, q) => perChannel.map((ch) => ch[q]));
  const a = factor(s, shape);
  const b = factor(ft, tShape);
  const d = a.flatMap((row, n) => row.map((v, q) => v - b[n][q]));
  return mean(d.map((v) => (p === 1 ? Math.abs(v) : v * v)));
}

describe('loss/factor-transfer: the loss on factors', () => {
  // B = 1, H = 1, W = 2, C = 2. F_s positions (1, 1), (2, 0); F_t positions (0, 2), (1, 1).
  const fs = () => tf.tensor4d([1, 1, 2, 0], [1, 1, 2, 2]);
  const ft = () => tf.tensor4d([0, 2, 1, 1], [1, 1, 2, 2]);

  it('hand-computed value, attention factor (RepDistiller), p = 1 and p = 2', () => {
    // mean_c F²: F_s → (1, 2), F_t → (2, 1); normalised by √5; difference (−1, 1)/√5
    expectClose(num(factorTransferLoss(fs(), ft())), 1 / Math.sqrt(5), 1e-6);
    expectClose(num(factorTransferLoss(fs(), ft(), { p: 2 })), 1 / 5, 1e-6);
  });

  it('hand-computed value, flat factor (the paper): mean |F_s/‖F_s‖ − F_t/‖F_t‖|', () => {
    // F_s = (1, 1, 2, 0)/√6, F_t = (0, 2, 1, 1)/√6; difference (1, −1, 1, −1)/√6
    expectClose(num(factorTransferLoss(fs(), ft(), { factor: 'flat' })), 1 / Math.sqrt(6), 1e-6);
  });

  it('matches a plain-double reference, with the student map pooled 4×4 → 2×2', () => {
    const s = values(2 * 4 * 4 * 3, 101);
    const t = values(2 * 2 * 2 * 3, 102);
    for (const p of [1, 2] as const) {
      for (const mode of ['attention', 'flat'] as const) {
        const got = num(factorTransferLoss(tf.tensor4d(s, [2, 4, 4, 3]), tf.tensor4d(t, [2, 2, 2, 3]), { p, factor: mode }));
        expectClose(got, referenceFt(s, [2, 4, 4, 3], t, [2, 2, 2, 3], p, mode), 1e-5);
      }
    }
  });

  it('is unchanged when either factor is scaled by a positive constant (L2 normalisation)', () => {
    const s = values(2 * 3 * 3 * 2, 103);
    const t = values(2 * 3 * 3 * 2, 104);
    for (const mode of ['attention', 'flat'] as const) {
      const at = (a: number[], b: number[]) => num(factorTransferLoss(tf.tensor4d(a, [2, 3, 3, 2]), tf.tensor4d(b, [2, 3, 3, 2]), { factor: mode }));
      const base = at(s, t);
      expect(base).toBeGreaterThan(0.01);
      for (const c of [0.05, 3, 40]) {
        expectClose(at(s.map((v) => c * v), t), base, 1e-5);
        expectClose(at(s, t.map((v) => c * v)), base, 1e-5);
      }
      // and is zero when the student factor is a positive multiple of the teacher's
      expect(at(t.map((v) => 2.5 * v), t)).toBeLessThan(1e-6);
    }
  });

  it('a vector tap [B, C] is a 1×1 map: attention factor is 1 per sample, so the loss is 0; flat compares directions', () => {
    expect(num(factorTransferLoss(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor2d([4, 3, 2, 1], [2, 2])))).toBeLessThan(1e-7);
    // flat: sample 0 (1,2)/√5 vs (4,3)/5; sample 1 (3,4)/5 vs (2,1)/√5
    const r5 = Math.sqrt(5);
    const d = [1 / r5 - 0.8, 2 / r5 - 0.6, 0.6 - 2 / r5, 0.8 - 1 / r5];
    expectClose(num(factorTransferLoss(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor2d([4, 3, 2, 1], [2, 2]), { factor: 'flat' })), mean(d.map(Math.abs)), 1e-6);
  });

  it('finite-difference gradient check (both factors, both norms)', () => {
    const t = tf.tensor4d(values(2 * 2 * 2 * 3, 105), [2, 2, 2, 3]);
    for (const p of [1, 2] as const) {
      for (const mode of ['attention', 'flat'] as const) {
        const r = finiteDifferenceCheck((x) => tf.mul(factorTransferLoss(x, t, { p, factor: mode }), 10) as tf.Scalar, values(2 * 4 * 4 * 3, 106), [2, 4, 4, 3], 1e-3);
        expect(r.maxRelError).toBeLessThan(2e-2);
      }
    }
  });

  it('ftFactor rows are unit vectors', () => {
    const rows = ftFactor(tf.tensor4d(values(3 * 2 * 2 * 4, 107), [3, 2, 2, 4])).arraySync();
    expect(rows).toHaveLength(3);
    for (const r of rows) expectClose(Math.hypot(...r), 1, 1e-6);
  });

  it('ftFactor by hand: attention = mean_c F² per position, L2-normalised; flat = the NHWC values, L2-normalised', () => {
    // pixels (c0, c1) = (1, 1), (2, 0): mean_c F² = (1, 2) → (1, 2)/√5; flat (1, 1, 2, 0)/√6
    const f = tf.tensor4d([1, 1, 2, 0], [1, 1, 2, 2]);
    const r5 = Math.sqrt(5);
    const r6 = Math.sqrt(6);
    (ftFactor(f).arraySync()[0] as number[]).forEach((v, i) => expectClose(v, [1 / r5, 2 / r5][i], 1e-6));
    (ftFactor(f, 'flat').arraySync()[0] as number[]).forEach((v, i) => expectClose(v, [1 / r6, 1 / r6, 2 / r6, 0][i], 1e-6));
    expect(ftFactor(f, 'flat').shape).toEqual([1, 4]);
  });
});

describe('paraphraser and translator (RepDistiller models/util.py geometry)', () => {
  it('channels: encoder C → C → int(C·k) → int(C·k), decoder back to C; translator C_s → C_s → int(C_t·k) → int(C_t·k)', () => {
    const p = new Paraphraser(6, 0.5, new Rng(1), 'test_para');
    expect(p.encoder.layers.map((l) => l.kernel.shape)).toEqual([[3, 3, 6, 6], [3, 3, 6, 3], [3, 3, 3, 3]]);
    expect(p.decoder.layers.map((l) => l.kernel.shape)).toEqual([[3, 3, 3, 3], [3, 3, 3, 6], [3, 3, 6, 6]]);
    const tr = translator(4, 6, 0.5, new Rng(2), 'test_trans');
    expect(tr.layers.map((l) => l.kernel.shape)).toEqual([[3, 3, 4, 4], [3, 3, 4, 3], [3, 3, 3, 3]]);
    expect(factorChannels(7, 0.5)).toBe(3); // int(3.5)
    const x = tf.tensor4d(values(2 * 5 * 5 * 6, 108), [2, 5, 5, 6]);
    expect(p.factor(x).shape).toEqual([2, 5, 5, 3]);
    expect(p.reconstruct(x).shape).toEqual([2, 5, 5, 6]);
    // one 3×3 'same' conv + bias + LeakyReLU(0.1), by hand at the centre pixel of a 3×3 one-channel map
    const one = new Paraphraser(2, 0.5, new Rng(3), 'test_one');
    const layer = one.encoder.layers[2]; // 1 → 1 channel
    const k = Array.from(layer.kernel.dataSync());
    const b = layer.bias.dataSync()[0];
    const img = values(9, 109);
    const pre = k.reduce((s, w, i) => s + w * img[i], b);
    const got = tf.leakyRelu(layer.apply(tf.tensor4d(img, [1, 3, 3, 1])), 0.1).dataSync()[4];
    expectClose(got, pre > 0 ? pre : 0.1 * pre, 1e-6);
    [...p.variables, ...tr.variables, ...one.variables].forEach((v) => v.dispose());
  });

  it('a vector tap is treated as a 1×1 map (the same values, sample-major), a map is left as it is', () => {
    const v = values(3 * 8, 111);
    const m = asMap(tf.tensor2d(v, [3, 8]));
    expect(m.shape).toEqual([3, 1, 1, 8]);
    expect(Array.from(m.dataSync())).toEqual(Array.from(Float32Array.from(v)));
    const map = tf.tensor4d(values(2 * 2 * 2 * 3, 112), [2, 2, 2, 3]);
    expect(asMap(map)).toBe(map);
  });

  it('pre-training lowers the reconstruction loss (SGD + momentum, one loss value per epoch)', async () => {
    const n = 32;
    const data = tf.tensor4d(values(n * 3 * 3 * 4, 110, 0, 1), [n, 3, 3, 4]);
    const p = new Paraphraser(4, 0.5, new Rng(4), 'test_pretrain');
    const before = num(reconstructionLoss(p, data));
    const tensorsBefore = tf.memory().numTensors;
    const batches = (epoch: number) => Array.from({ length: 2 }, (_, i) => Int32Array.from({ length: 16 }, (_, j) => (i * 16 + j + epoch) % n));
    const history = await pretrainParaphraser(p, {
      epochs: 20,
      lr: 0.05,
      momentum: 0.9,
      weightDecay: 5e-4,
      batches,
      features: (idx) => tf.gather(data, tf.tensor1d(idx, 'int32')),
    });
    // the optimizer (momentum slots and its learning-rate scalar) is freed afterwards: nothing left over
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    const after = num(reconstructionLoss(p, data));
    expect(history).toHaveLength(20);
    expect(history.every(Number.isFinite)).toBe(true);
    expect(after).toBeLessThan(0.5 * before);
    expect(history[19]).toBeLessThan(0.5 * history[0]);
    p.variables.forEach((v) => v.dispose());
    data.dispose();
  }, 60_000);
});
