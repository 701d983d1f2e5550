import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { KdError } from '@tfkd/kd-core';
import { countFlops } from '@tfkd/models';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { buildDetector, detectorHeads, detectorLayout, detectorStudentDefinition, detectorTeacherDefinition, DETECTOR_TAPS } from './detector';
import { DENSE_MODELS } from './index';
import { locationTable } from './layout';
import { segmenterStudentDefinition, segmenterTeacherDefinition, SEGMENTER_TAPS } from './segmenter';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const OPTS = { inputShape: [64, 64, 1], numClasses: 10, seed: 3 };
const conv = (k: number, cin: number, cout: number, hw: number) => 2 * k * k * cin * cout * hw * hw;

/** Hand count of the detector's conv FLOPs (models' rule: 2·kh·kw·Cin·Cout·Hout·Wout; up-sampling and add free). */
function detectorFlops(w: number, K = 10, n = 8): number {
  const f = 4 * w;
  const backbone = conv(3, 1, w, 64) + conv(3, w, 2 * w, 32) + conv(3, 2 * w, 4 * w, 16) + conv(3, 4 * w, 4 * w, 16) + conv(3, 4 * w, 8 * w, 8) + conv(3, 8 * w, 8 * w, 8);
  const neck = conv(1, 8 * w, f, 8) + conv(1, 4 * w, f, 16);
  const head = (hw: number) => conv(3, f, f, hw) + conv(3, f, K, hw) + conv(3, f, 4 * (n + 1), hw);
  return backbone + neck + head(16) + head(8);
}

function segmenterFlops(w: number, K = 11): number {
  return conv(3, 1, w, 64) + conv(3, w, 2 * w, 32) + conv(3, 2 * w, 2 * w, 32) + conv(3, 2 * w, 4 * w, 16) + conv(3, 4 * w, 4 * w, 16) +
    conv(1, 4 * w, 2 * w, 16) + conv(3, 2 * w, 2 * w, 32) + conv(1, 2 * w, w, 32) + conv(3, w, w, 64) + conv(1, w, K, 64);
}

describe('detector', () => {
  let teacher: LayersModel;
  let student: LayersModel;
  beforeAll(() => {
    teacher = detectorTeacherDefinition.build(OPTS);
    student = detectorStudentDefinition.build(OPTS);
  });
  afterAll(() => {
    teacher.dispose();
    student.dispose();
  });

  it('named outputs cls_p3, box_p3, cls_p4, box_p4 with per-location logits [H′, W′, K] and [H′, W′, 4(n+1)]', () => {
    expect(student.outputs.map((o) => o.name.split('/')[0])).toEqual(['cls_p3', 'box_p3', 'cls_p4', 'box_p4']);
    expect(student.outputs.map((o) => o.shape)).toEqual([[null, 16, 16, 10], [null, 16, 16, 36], [null, 8, 8, 10], [null, 8, 8, 36]]);
    expect(detectorLayout(OPTS).outputs).toEqual(['cls_p3', 'box_p3', 'cls_p4', 'box_p4']);
    for (const tap of DETECTOR_TAPS) expect(student.getLayer(tap).outputShape).toBeDefined();
    expect(teacher.getLayer('p3').outputShape).toEqual([null, 16, 16, 64]);
  });

  it('FLOPs as the models package counts them equal the hand count (teacher width 16, student 8)', () => {
    expect(countFlops(student).perImage).toBe(detectorFlops(8));
    expect(countFlops(teacher).perImage).toBe(detectorFlops(16));
    expect(detectorFlops(16) / detectorFlops(8)).toBeGreaterThan(3);
  });

  it('a blank image scores the focal prior σ(−log 99) = 0.01 everywhere; seeded builds are identical', () => {
    const outs = student.predict(tf.zeros([1, 64, 64, 1])) as tf.Tensor[];
    const heads = detectorHeads(outs, detectorLayout(OPTS));
    const p = tf.tidy(() => tf.sigmoid(heads.cls).dataSync());
    expect(p.every((v) => Math.abs(v - 0.01) < 1e-6)).toBe(true);
    expect(heads.box.shape).toEqual([1, 320, 4, 9]);
    tf.dispose([...outs, heads.cls, heads.box]);
    const again = buildDetector(OPTS, 'detector-student', 8);
    expect(again.getWeights().map((w) => w.dataSync()[0])).toEqual(student.getWeights().map((w) => w.dataSync()[0]));
    again.dispose();
  });

  it('detectorHeads flattens level by level, row-major, as locationTable orders locations', () => {
    const layout = detectorLayout(OPTS);
    const table = locationTable(layout);
    // Each output holds a code of its own position: 1000·level + 10·row + col (+ 0.1·channel).
    const coded = layout.levels.flatMap((lv, li) =>
      [layout.numClasses, 4 * (layout.regMax + 1)].map((c) =>
        tf.tidy(() => {
          const [h, w] = lv.size;
          const v = Array.from({ length: h * w * c }, (_, i) => 1000 * li + 10 * Math.floor(i / c / w) + (Math.floor(i / c) % w) + 0.1 * (i % c));
          return tf.tensor4d(v, [1, h, w, c]);
        }),
      ),
    );
    const heads = detectorHeads(coded, layout);
    const cls = heads.cls.arraySync()[0];
    const box = heads.box.arraySync()[0];
    for (const l of [0, 17, 255, 256, 300, 319]) {
      const s = table.stride[l];
      const code = 1000 * table.level[l] + 10 * ((table.y[l] - s / 2) / s) + (table.x[l] - s / 2) / s;
      expect(cls[l][3]).toBeCloseTo(code + 0.3, 3);
      expect(box[l][2][5]).toBeCloseTo(code + 0.1 * (2 * 9 + 5), 3);
    }
    tf.dispose([...coded, heads.cls, heads.box]);
  });

  it('rejects an input size that the strides do not divide', () => {
    expect(() => detectorStudentDefinition.build({ ...OPTS, inputShape: [60, 60, 1] })).toThrow(KdError);
  });
});

describe('segmenter', () => {
  it('per-pixel logits [H, W, 11], taps, FLOPs equal the hand count', () => {
    const teacher = segmenterTeacherDefinition.build({ ...OPTS, numClasses: 11 });
    const student = segmenterStudentDefinition.build({ ...OPTS, numClasses: 11 });
    expect(student.outputs[0].shape).toEqual([null, 64, 64, 11]);
    for (const tap of SEGMENTER_TAPS) expect(student.getLayer(tap).outputShape).toBeDefined();
    expect(teacher.getLayer('enc3').outputShape).toEqual([null, 16, 16, 64]);
    expect(countFlops(student).perImage).toBe(segmenterFlops(8));
    expect(countFlops(teacher).perImage).toBe(segmenterFlops(16));
    const y = student.predict(tf.zeros([2, 64, 64, 1])) as tf.Tensor;
    expect(y.shape).toEqual([2, 64, 64, 11]);
    tf.dispose([y]);
    teacher.dispose();
    student.dispose();
  });

  it('the dense zoo lists six definitions with unique ids', () => {
    expect(DENSE_MODELS.map((d) => d.id)).toEqual(['detector', 'detector-teacher', 'detector-student', 'segmenter', 'segmenter-teacher', 'segmenter-student']);
  });
});
