export {
  augmentedForward,
  augmentedWidth,
  chainFlops,
  composeBias,
  composeKernel,
  createExtras,
  extents,
  extrasVariables,
  sampleWidths,
  tinyWidths,
  type Extent,
  type ForwardOptions,
  type LayerExtras,
} from './augment';
export { readChain, SUPPORTED_LAYERS, widenedLayers, type Chain, type ChainOp, type InitScheme, type MatrixOp } from './chain';
export { kdModule, netaugModule } from './module';
export { NETAUG_WIDTHS, netaugLoss, netaugSchema, type NetaugOptions } from './netaug';
