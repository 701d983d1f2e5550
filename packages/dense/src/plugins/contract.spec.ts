import '@tensorflow/tfjs-backend-cpu';
import { describePluginContract } from '@tfkd/engine/testing';
import { TINY, tinyScenesModule } from '../__fixtures__/tiny-scenes';
import { buildDetector } from '../detector';
import { kdModule } from '../module';
import { buildSegmenter } from '../segmenter';

// The plugin contract (module binding, option errors, 30 steps without a tensor leak, stacking with a
// sampler that halves the batch — objects and masks with it) for every dense plugin, on hand-made
// 16×16 scenes with width-2 detectors and segmenters.
jest.setTimeout(120_000);

const shape: [number, number, number] = [TINY, TINY, 1];
const det = {
  module: kdModule,
  modules: [tinyScenesModule],
  task: 'detection' as const,
  data: (s: { train: number; test: number }) => ({ name: 'tiny-scenes', ...s }),
  student: { model: 'detector-student', options: { width: 2 } },
  teacher: () => buildDetector({ inputShape: shape, numClasses: 2, seed: 9, width: 2 }, 'detector-teacher', 2),
  stack: [{ use: 'loss/detection' }],
};
const seg = {
  ...det,
  task: 'segmentation' as const,
  student: { model: 'segmenter-student', options: { width: 2 } },
  teacher: () => buildSegmenter({ inputShape: shape, numClasses: 3, seed: 9, width: 2 }, 'segmenter-teacher', 2),
  stack: [{ use: 'loss/seg-cross-entropy' }],
};

describePluginContract({ ...det, id: 'loss/detection', stack: [], needsTeacher: false, invalidOptions: { centerSampling: -1 } });
describePluginContract({ ...det, id: 'loss/det-feature-imitation', invalidOptions: { psi: 0 } });
describePluginContract({ ...det, id: 'loss/det-bounded-regression', invalidOptions: { margin: -1 } });
describePluginContract({ ...det, id: 'loss/det-localization', invalidOptions: { weighting: 'max' } });
describePluginContract({ ...det, id: 'loss/det-logit-kd', invalidOptions: { temperature: 0 } });
describePluginContract({ ...det, id: 'metric/map', needsTeacher: false, invalidOptions: { iouThreshold: 0 } });
describePluginContract({ ...seg, id: 'loss/seg-cross-entropy', stack: [], needsTeacher: false });
describePluginContract({ ...seg, id: 'loss/seg-pixel-kd', invalidOptions: { temperature: -2 } });
describePluginContract({ ...seg, id: 'loss/seg-pairwise', invalidOptions: { scale: 2 } });
describePluginContract({ ...seg, id: 'metric/miou', needsTeacher: false });
describePluginContract({ ...seg, id: 'loss/seg-cwd', invalidOptions: { temperature: 0 } });
// on features of a half-width student (enc2: 2 vs 4 channels): a 1×1 adapter trained with it
describePluginContract({ ...seg, id: 'loss/seg-cwd', student: { model: 'segmenter-student', options: { width: 1 } }, options: { pairs: [['student.enc2', 'teacher.enc2']] }, invalidOptions: { pairs: [] } });
// the critic is a player: the spec declares it (a narrow critic on the 16×16 maps), with its own optimizer
describePluginContract({
  ...seg,
  id: 'loss/seg-adversarial',
  spec: { players: { critic: { options: { width: 2 }, train: { optimizer: { name: 'sgd', lr: 4e-4, momentum: 0.9, weightDecay: 1e-4 } } } } },
  invalidOptions: { gpWeight: -1 },
});
