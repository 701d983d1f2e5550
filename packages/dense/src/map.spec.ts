import { CASES, PYCOCOTOOLS, type CocoCase } from './__fixtures__/coco-cases';
import { COCO_IOU_THRESHOLDS, COCO_RECALL_THRESHOLDS, DetectionEvaluator, linspace, meanAveragePrecision } from './map';

function evaluate(c: CocoCase) {
  const gt = c.images.map((im) => ({ boxes: im.gt.flat(), classes: im.gtClasses, crowd: im.crowd }));
  const det = c.images.map((im) => ({ boxes: im.det.flat(), scores: im.scores, classes: im.detClasses }));
  return meanAveragePrecision(gt, det, { numClasses: c.numClasses, maxDets: c.maxDets?.[c.maxDets.length - 1] });
}

describe('COCO mAP (pycocotools rules)', () => {
  // recallGrid: 7 of 20 found, then two false positives. Recall 7/20 = 0.35 is below the grid's
  // 0.35000000000000003, so the precision there is read after the false positives (0.8), not before (1).
  it.each(Object.keys(CASES))('%s: equals pycocotools to 1e-12', (name) => {
    const got = evaluate(CASES[name]);
    const want = PYCOCOTOOLS[name];
    for (const key of ['map', 'map50', 'map75', 'mar'] as const) expect(Math.abs(got[key] - want[key])).toBeLessThan(1e-12);
    got.perClass.forEach((v, k) => expect(Math.abs(v - want.perClass[k])).toBeLessThan(1e-12));
    got.perClass50.forEach((v, k) => expect(Math.abs(v - want.perClass50[k])).toBeLessThan(1e-12));
  });

  it('the grids are numpy linspace values, not decimals (pycocotools iouThrs / recThrs)', () => {
    // repr() of numpy.linspace(.5, .95, 10) and of linspace(0, 1, 101)[35] under numpy 1.24.
    expect(COCO_IOU_THRESHOLDS).toEqual([0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.8999999999999999, 0.95]);
    expect(COCO_IOU_THRESHOLDS[7]).not.toBe(0.5 + 0.05 * 7);
    expect([COCO_RECALL_THRESHOLDS.length, COCO_RECALL_THRESHOLDS[35], COCO_RECALL_THRESHOLDS[100]]).toEqual([101, 0.35000000000000003, 1]);
    expect(linspace(0, 1, 3)).toEqual([0, 0.5, 1]);
  });

  it('streams: images added one by one equal the one-shot result; no image at all is −1', () => {
    const c = CASES.basic;
    const ev = new DetectionEvaluator({ numClasses: 2 });
    c.images.forEach((im) => ev.add({ boxes: im.gt.flat(), classes: im.gtClasses }, { boxes: im.det.flat(), scores: im.scores, classes: im.detClasses }));
    expect(ev.result()).toEqual(evaluate(c));
    expect(new DetectionEvaluator({ numClasses: 3 }).result().map).toBe(-1);
  });

  it('a perfect detector scores 1; degenerate and border boxes do not break it', () => {
    const gt = [{ boxes: [0, 0, 64, 10, 60, 60, 64, 64, 5, 5, 5, 9], classes: [0, 1, 1] }];
    const det = [{ boxes: [0, 0, 64, 10, 60, 60, 64, 64], scores: [0.9, 0.8], classes: [0, 1] }];
    const r = meanAveragePrecision(gt, det, { numClasses: 2 });
    // Class 1 has a zero-area box that nothing can match: its recall stops at 1/2.
    expect(r.perClass[0]).toBeCloseTo(1, 12);
    expect(r.perClass50[1]).toBeCloseTo(51 / 101, 12);
  });
});
