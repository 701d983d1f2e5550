// @tfkd/dense: the self-contained pieces of dense-task distillation (issue 24) — models, targets,
// decoding, metrics and pure losses. The plugin wrappers and the engine's task integration come later.
export * from './layout';
export * from './detector';
export * from './segmenter';
export * from './targets';
export * from './box-ops';
export * from './decode';
export * from './map';
export * from './seg-metrics';
export { layerSeed } from './common';
export * from './losses/common';
export * from './losses/det-feature-imitation';
export * from './losses/det-bounded-regression';
export * from './losses/det-localization';
export * from './losses/det-logit-kd';
export * from './losses/seg-pixel-kd';
export * from './losses/seg-pairwise';
export * from './losses/task';

import type { ModelDefinition } from '@tfkd/kd-core';
import { detectorDefinition, detectorStudentDefinition, detectorTeacherDefinition } from './detector';
import { segmenterDefinition, segmenterStudentDefinition, segmenterTeacherDefinition } from './segmenter';

/** The dense zoo models (not yet bound to MODEL_DEFINITION: the engine has no dense task yet). */
export const DENSE_MODELS: readonly ModelDefinition[] = Object.freeze([
  detectorDefinition,
  detectorTeacherDefinition,
  detectorStudentDefinition,
  segmenterDefinition,
  segmenterTeacherDefinition,
  segmenterStudentDefinition,
]);
