// @tfkd/dense: dense-task distillation (issue 24) — models, targets, decoding, metrics, pure losses,
// and their plugins (loss/detection, loss/det-…, loss/seg-…, metric/map, metric/miou) in denseModule.
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
export * from './losses/seg-cwd';
export * from './losses/seg-adversarial';
export * from './discriminator';
export * from './losses/task';

export * from './plugins/det-plugins';
export * from './plugins/seg-plugins';
export * from './plugins/metrics';
export { batchTargets, detectorLayoutOf, headsOf } from './plugins/heads';
export { DENSE_MODELS, DENSE_PLUGINS, denseModule, kdModule } from './module';
