// The calibration math lives in kd-core (DML's peer ensemble and BYOT's exits use it too); this
// package's public entry keeps offering it next to the metric plugins.
export {
  CalibrationAccumulator,
  adaptiveBinning,
  binEdges,
  binIndex,
  computeCalibration,
  PROB_EPSILON,
  type BinStat,
  type CalibrationOptions,
  type CalibrationResult,
  type Matrix,
} from '@tfkd/kd-core';
export { reliabilityDiagramSpec, reliabilityDiagramSvg, type DiagramOptions, type VegaLiteSpec } from './diagram';
export {
  accuracyMetric,
  adaptiveEceMetric,
  brierMetric,
  calibrationMetric,
  classwiseEceMetric,
  diagramFileName,
  eceMetric,
  kdModule,
  mceMetric,
  metricDefinitions,
  metricsModule,
  nllMetric,
} from './plugins';
export { fitTemperature, scaleLogits, type FitTemperatureOptions, type TemperatureFit } from './temperature';
