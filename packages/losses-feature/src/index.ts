export { Adapter, planAdapter, type AdapterPlan } from './adapters';
export { activationBoundary, activationBoundaryLoss, activationBoundarySchema } from './activation-boundary';
export { attentionLoss, attentionLossDef, attentionMap, attentionSchema, attentionVector, type AttentionOptions } from './attention';
export { pairTaps, pairsOption, readTap, type TapPair } from './common';
export { crdInBatch, crdLoss, crdSchema } from './crd';
export {
  NCE_EPS,
  contrastIndices,
  contrastLoss,
  crdMemoryLoss,
  estimateZ,
  initialMemory,
  maxNegatives,
  memoryScores,
  memoryUpdate,
  negativePools,
} from './crd-memory';
export { FT_FEATURE_CACHE_BYTES, factorTransferLoss, factorTransferLossDef, factorTransferSchema, ftFactor, type FactorMode } from './factor-transfer';
export { fitnetsLoss, fitnetsSchema, hintLoss } from './fitnets';
export { fspLoss, fspLossDef, fspMatrix, fspSchema } from './fsp';
export {
  gradientAttention,
  gradientAttentionLoss,
  gradientAttentionSchema,
  inputGradient,
  tapedInputGradient,
  type GradientAttentionOptions,
} from './gradient-attention';
export { FEATURE_LOSSES, featureLossesModule, kdModule } from './module';
export { channelSamples, nstLoss, nstLossDef, nstSchema, polyKernel } from './nst';
export { adaptiveAvgPool2d, adaptivePoolMatrix, flatten2d, l2Normalize, poolToSmaller, safeNorm, smoothL1 } from './ops';
export {
  ConvStack,
  FT_LEAKY_SLOPE,
  Paraphraser,
  asMap,
  factorChannels,
  pretrainParaphraser,
  reconstructionLoss,
  translator,
  type PretrainOptions,
} from './paraphraser';
export {
  SECOND_ORDER_KERNELS,
  crossEntropySum,
  maxPoolSelect,
  registerSecondOrderGradients,
  secondOrderBlockers,
  type SecondOrderBlocker,
} from './second-order';
export { PKT_EPS, pktLoss, pktLossDef, pktProbabilities, pktSchema } from './pkt';
export { PDIST_EPS, normalisedDistances, pairwiseDistances, rkdAngle, rkdDistance, rkdLoss, rkdLossDef, rkdSchema, tripletAngles, type RkdOptions } from './rkd';
export { similarityLoss, similarityLossDef, similarityMatrix, similaritySchema } from './similarity';
