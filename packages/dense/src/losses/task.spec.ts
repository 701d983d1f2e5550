import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { expectClose, leaked } from '../__fixtures__/helpers';
import { REF } from '../__fixtures__/loss-reference';
import { giouLoss } from '../box-ops';
import { makeLayout } from '../layout';
import { encodeDetectionTargets, targetTensors } from '../targets';
import { detectionLoss, detectionLossTerms, distributionFocalLoss, segmentationLoss, sigmoidFocalLoss } from './task';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('task losses', () => {
  const T = REF.task;

  it('sigmoid focal loss, DFL and 1 − GIoU match numpy', () => {
    expectClose(tf.tidy(() => sigmoidFocalLoss(tf.tensor2d(T.zl, [2, 3]), tf.tensor2d([[1, 0, 0], [0, 0, 0]])).dataSync()[0]), T.focal);
    const dfl = tf.tidy(() => Array.from(distributionFocalLoss(tf.tensor2d(T.zd, [3, 5]), tf.tensor1d(T.yd)).dataSync()));
    dfl.forEach((v, i) => expectClose(v, T.dfl[i])); // y = 4.5 is clamped to n − 0.1 = 3.9
    const boxes = (rows: number[][]) => tf.tensor2d(rows);
    const giou = tf.tidy(() => Array.from(giouLoss(boxes([[0, 0, 4, 4], [1, 1, 3, 5], [0, 0, 2, 2]]), boxes([[2, 2, 6, 6], [1, 1, 3, 5], [3, 3, 4, 4]])).dataSync()));
    giou.forEach((v, i) => expectClose(v, T.giou[i], 1e-5));
  });

  it('per-pixel cross-entropy', () => {
    const v = tf.tidy(() => segmentationLoss(tf.tensor4d([2, 0, 0, 1], [1, 1, 2, 2]), tf.tensor3d([0, 1], [1, 1, 2], 'int32')).dataSync()[0]);
    expectClose(v, (Math.log(1 + Math.exp(-2)) + Math.log(1 + Math.exp(-1))) / 2);
  });

  describe('detectionLoss on a 16×16 layout (levels 4×4 and 2×2, 2 classes, n = 2)', () => {
    const layout = makeLayout([16, 16, 1], 2, 2, [
      { name: 'p3', stride: 4, range: [-1, 8] },
      { name: 'p4', stride: 8, range: [8, Infinity] },
    ]);
    const L = layout.locations;
    const values = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.sin(seed * 7.1 + i * 1.37) * 1.5);

    it('an image without objects is trained on background only (no NaN, GIoU and DFL 0)', () => {
      const t = targetTensors(encodeDetectionTargets(layout, [{ boxes: [], classes: [] }]), layout);
      const heads = { cls: tf.tensor3d(values(L * 2, 1), [1, L, 2]), box: tf.tensor4d(values(L * 12, 2), [1, L, 4, 3]) };
      const r = detectionLossTerms(heads, t, layout);
      expect([r.giou.dataSync()[0], r.dfl.dataSync()[0]]).toEqual([0, 0]);
      expectClose(r.total.dataSync()[0], tf.tidy(() => sigmoidFocalLoss(heads.cls, tf.zerosLike(heads.cls)).dataSync()[0]));
      tf.dispose([r.total, r.cls, r.giou, r.dfl, heads.cls, heads.box, ...Object.values(t)]);
    });

    it('finite-difference gradient w.r.t. both heads, and no leak', () => {
      const targets = encodeDetectionTargets(layout, [{ boxes: [2, 3, 9, 11, 8, 1, 15, 14], classes: [1, 0] }]);
      expect(targets.numPositive).toBeGreaterThan(0);
      const t = targetTensors(targets, layout);
      const box = tf.tensor4d(values(L * 12, 2), [1, L, 4, 3]);
      const viaCls = (c: tf.Tensor) => detectionLoss({ cls: c as tf.Tensor3D, box }, t, layout);
      expect(finiteDifferenceCheck(viaCls, values(L * 2, 1), [1, L, 2], 1e-3).maxRelError).toBeLessThan(1e-2);
      const cls = tf.tensor3d(values(L * 2, 1), [1, L, 2]);
      const viaBox = (b: tf.Tensor) => detectionLoss({ cls, box: b as tf.Tensor4D }, t, layout);
      expect(finiteDifferenceCheck(viaBox, values(L * 12, 2), [1, L, 4, 3], 1e-3).maxRelError).toBeLessThan(1e-2);
      expect(leaked(viaBox, box)).toBe(0);
      tf.dispose([box, cls, ...Object.values(t)]);
    });
  });
});
