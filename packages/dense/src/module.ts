import { MODEL_DEFINITION, PLUGIN_DEFINITION, type ModelDefinition, type PluginDefinition } from '@tfkd/kd-core';
import { ContainerModule } from 'inversify';
import { detectorDefinition, detectorStudentDefinition, detectorTeacherDefinition } from './detector';
import { DETECTION_LOSSES } from './plugins/det-plugins';
import { DENSE_METRICS } from './plugins/metrics';
import { SEGMENTATION_LOSSES } from './plugins/seg-plugins';
import { segmenterDefinition, segmenterStudentDefinition, segmenterTeacherDefinition } from './segmenter';

/** The dense zoo models (`tasks: detection` or `segmentation`), bound to MODEL_DEFINITION by {@link denseModule}. */
export const DENSE_MODELS: readonly ModelDefinition[] = Object.freeze([
  detectorDefinition,
  detectorTeacherDefinition,
  detectorStudentDefinition,
  segmenterDefinition,
  segmenterTeacherDefinition,
  segmenterStudentDefinition,
]);

/** Every plugin of this package, in `kd list` order: detection losses, segmentation losses, metrics. */
export const DENSE_PLUGINS: readonly PluginDefinition[] = [...DETECTION_LOSSES, ...SEGMENTATION_LOSSES, ...DENSE_METRICS] as PluginDefinition[];

/** Binds the dense plugins to PLUGIN_DEFINITION and the dense models to MODEL_DEFINITION. */
export const denseModule = new ContainerModule((o) => {
  for (const d of DENSE_PLUGINS) o.bind<PluginDefinition>(PLUGIN_DEFINITION).toConstantValue(d);
  for (const m of DENSE_MODELS) o.bind<ModelDefinition>(MODEL_DEFINITION).toConstantValue(m);
});

/** The same module under the name a spec's `packages:` loader looks for. */
export const kdModule = denseModule;
