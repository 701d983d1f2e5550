export { assertLogitPair } from './common';
export { crossEntropy, crossEntropyLoss, labelSmoothingLoss, type CrossEntropyOptions } from './cross-entropy';
export {
  CTKD_THETA_INIT,
  ctkd,
  ctkdLambda,
  ctkdLoss,
  ctkdSchema,
  ctkdTemperature,
  gradientReversal,
  kdAtTemperature,
  type CtkdScheduleOptions,
  type CtkdTemperatureOptions,
} from './ctkd';
export { DIST_EPS, dist, distInter, distIntra, distLoss, distSchema, pearsonRows, type DistOptions } from './dist';
export { DKD_MASK, dkd, dkdLoss, dkdParts, dkdSchema, dkdWarmup, type DkdOptions } from './dkd';
export { hintonKd, hintonKdLoss, hintonKdSchema, type TemperatureOptions } from './hinton-kd';
export { logitMse, logitMseLoss, logitMseSchema } from './logit-mse';
export { LOGIT_STD_EPS, logitStdKd, logitStdKdLoss, logitStdKdSchema, zScoreLogits } from './logit-std-kd';
export {
  batchCorrelationLoss,
  classCorrelationLoss,
  fractionAtOrBelowPercentile,
  mlkd,
  mlkdLogits,
  mlkdLoss,
  mlkdMaskFractions,
  mlkdParts,
  mlkdSchema,
  type MlkdLogits,
  type MlkdOptions,
  type MlkdParts,
  type MlkdTerms,
} from './mlkd';
export { LOGIT_LOSSES, kdModule, logitLossesModule } from './module';
export { nkd, nkdLabels, nkdLoss, nkdParts, nkdSchema, nonTargetLogits, type NkdOptions } from './nkd';
export { softTargetCe, softTargetCeLoss, softTargetCeSchema } from './soft-target-ce';
export { ttm, ttmLoss, ttmParts, ttmSchema, wttm, wttmLoss, wttmSchema, type TtmOptions } from './ttm';
