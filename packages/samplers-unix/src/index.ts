export { ledgerCostRatio, predictedTeacherCostRatio } from './cost';
export { classHeads, denseUncertainty, detectionUncertainty, keptTargets, segmentationUncertainty } from './dense';
export { UNIX_SAMPLERS, kdModule, unixSamplersModule } from './module';
export { randomSampler, randomSchema, randomStep, type RandomOptions } from './random';
export {
  ENTROPY_FLOOR,
  entropyRows,
  mixAndKeep,
  mixRatios,
  rankDescending,
  unixSelect,
  type MixPlan,
  type MixRatioOptions,
  type MixResult,
  type UnixSelectOptions,
} from './select';
export { drawLambda, keepUntouched, SAMPLER_TASKS, unixSampler, unixSchema, unixStep, type SamplerPlugin, type Selection, type UnixOptions } from './unix';
