import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { SegmentationEvaluator, segmentationPredictions } from './seg-metrics';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('segmentation metrics', () => {
  // 3 classes, 10 pixels. gt:   0 0 0 0 1 1 1 2 2 2
  //                       pred: 0 0 1 0 1 1 2 2 2 0
  // class 0: TP 3, FP 1 (last pixel), FN 1 → 3/5; class 1: TP 2, FP 1, FN 1 → 2/4;
  // class 2: TP 2, FP 1, FN 1 → 2/4. mIoU = (0.6 + 0.5 + 0.5)/3; pixel accuracy 7/10.
  const gt = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2];
  const pred = [0, 0, 1, 0, 1, 1, 2, 2, 2, 0];

  it('mIoU and pixel accuracy against hand counts', () => {
    const ev = new SegmentationEvaluator(3);
    ev.add(pred, gt);
    const r = ev.result();
    expect(r.iou).toEqual([0.6, 0.5, 0.5]);
    expect(r.miou).toBeCloseTo(1.6 / 3, 12);
    expect(r.pixelAccuracy).toBe(0.7);
    expect(r.confusion).toEqual([[3, 1, 0], [0, 2, 1], [1, 0, 2]]);
  });

  it('accumulates over batches; a class absent from both is NaN and left out; ignoreIndex skips pixels', () => {
    const ev = new SegmentationEvaluator(4, 255);
    ev.add(pred.slice(0, 5), gt.slice(0, 5));
    ev.add([...pred.slice(5), 3], [...gt.slice(5), 255]);
    const r = ev.result();
    expect(r.iou.slice(0, 3)).toEqual([0.6, 0.5, 0.5]);
    expect(Number.isNaN(r.iou[3])).toBe(true);
    expect([r.miou, r.pixelAccuracy, r.pixels]).toEqual([1.6 / 3, 0.7, 10]);
    expect(() => ev.add([5], [0])).toThrow(/out of range/);
  });

  it('predictions are the per-pixel argmax of logits [N, H, W, K]', () => {
    const logits = tf.tensor4d([1, 3, 2, 5, 0, 1, 0, 0, 9, 2, 2, 1], [1, 2, 2, 3]);
    expect(Array.from(segmentationPredictions(logits))).toEqual([1, 0, 2, 0]);
    logits.dispose();
  });
});
