export { ledgerCostRatio, predictedTeacherCostRatio } from './cost';
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
export { drawLambda, unixSampler, unixSchema, unixStep, type SamplerPlugin, type Selection, type UnixOptions } from './unix';
