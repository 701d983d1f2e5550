export { cohortRequirements, cohortRoles, studentsOption } from './common';
export {
  dmlDivergence,
  dmlEnsembleLossDefinition,
  dmlLoss,
  dmlLossDefinition,
  dmlEnsembleSchema,
  dmlSchema,
  dmlTerms,
  type DmlDivergenceOptions,
  type DmlEnsembleOptions,
  type DmlOptions,
  type DmlTermOptions,
  type PeerTarget,
} from './dml';
export { GATE_TAP, branchTap, gatedEnsemble, oneLoss, oneLossDefinition, oneSchema, oneTerms, sigmoidRampup, type OneOptions, type OneTerms } from './one';
export { ONE_MODELS, buildOneCnn, buildOneMlp, layerSeed, oneCnnDefinition, oneMlpDefinition } from './one-models';
export { ONLINE_PLUGINS, kdModule, onlineDmlModule } from './module';
export { PeerEnsembleAccumulator, peerEnsembleMetric, peerEnsembleSchema, type EnsembleAverage, type PeerEnsembleResult } from './peer-ensemble';
