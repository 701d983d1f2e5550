export { assertLogitPair } from './common';
export { crossEntropy, crossEntropyLoss, labelSmoothingLoss, type CrossEntropyOptions } from './cross-entropy';
export { DIST_EPS, dist, distInter, distIntra, distLoss, distSchema, pearsonRows, type DistOptions } from './dist';
export { DKD_MASK, dkd, dkdLoss, dkdParts, dkdSchema, dkdWarmup, type DkdOptions } from './dkd';
export { hintonKd, hintonKdLoss, hintonKdSchema, type TemperatureOptions } from './hinton-kd';
export { logitMse, logitMseLoss, logitMseSchema } from './logit-mse';
export { LOGIT_LOSSES, kdModule, logitLossesModule } from './module';
export { softTargetCe, softTargetCeLoss, softTargetCeSchema } from './soft-target-ce';
