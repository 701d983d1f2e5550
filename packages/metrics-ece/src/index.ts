export {
  CalibrationAccumulator,
  computeCalibration,
  PROB_EPSILON,
  type BinStat,
  type CalibrationOptions,
  type CalibrationResult,
} from './accumulator';
export { adaptiveBinning } from './adaptive';
export { binEdges, binIndex, type Matrix } from './bins';
export { reliabilityDiagramSvg, type DiagramOptions } from './diagram';
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
