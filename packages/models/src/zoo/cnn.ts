import type { ModelBuildOptions, ModelDefinition } from '@tfkd/kd-core';
import { input, layers, model, type LayersModel, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import { checkCommonOptions, glorot, he, intOption, layerSeed, rateOption } from './common';
import { scaleByWidth, zooWidth } from './mlp';

function conv(seed: number, name: string, filters: number, x: SymbolicTensor): SymbolicTensor {
  return layers
    .conv2d({
      filters,
      kernelSize: 3,
      padding: 'same',
      activation: 'relu',
      name,
      kernelInitializer: he(seed, name),
      biasInitializer: 'zeros',
    })
    .apply(x) as SymbolicTensor;
}

function pool(name: string, x: SymbolicTensor): SymbolicTensor {
  return layers.maxPooling2d({ poolSize: 2, strides: 2, padding: 'valid', name }).apply(x) as SymbolicTensor;
}

function logitsLayer(seed: number, numClasses: number, x: SymbolicTensor): SymbolicTensor {
  return layers
    .dense({
      units: numClasses,
      name: 'logits',
      kernelInitializer: glorot(seed, 'logits'),
      biasInitializer: 'zeros',
    })
    .apply(x) as SymbolicTensor;
}

/**
 * cnn-small: `conv1` (3x3x16, same, ReLU) → `block1` (maxpool 2) → `conv2` (3x3x32, same, ReLU) →
 * `block2` (maxpool 2) → `embedding` (flatten) → `logits`. Block taps are post-ReLU, post-pool.
 */
export function buildCnnSmall(opts: ModelBuildOptions): LayersModel {
  const c = checkCommonOptions('cnn-small', opts);
  const width = zooWidth('cnn-small', opts);
  const x0 = input({ shape: c.inputShape, name: 'input' });
  let x = pool('block1', conv(c.seed, 'conv1', scaleByWidth(16, width), x0));
  x = pool('block2', conv(c.seed, 'conv2', scaleByWidth(32, width), x));
  x = layers.flatten({ name: 'embedding' }).apply(x) as SymbolicTensor;
  return model({ inputs: x0, outputs: logitsLayer(c.seed, c.numClasses, x), name: 'cnn-small' });
}

/** Options of cnn-small on top of {@link ModelBuildOptions}. */
export interface CnnSmallOptions extends ModelBuildOptions {
  /** Multiplier of both convolutions' channels (16 and 32, rounded), default 1. */
  width?: number;
}

/** Options of cnn-large on top of {@link ModelBuildOptions}. */
export interface CnnLargeOptions extends ModelBuildOptions {
  /** Width of the dense `embedding` layer, default 256. */
  embeddingSize?: number;
  /** Dropout rate between `embedding` and `logits` (training only), default 0. */
  dropout?: number;
  /** Multiplier of every convolution's channels (rounded), default 1; `embeddingSize` is not scaled. */
  width?: number;
}

/**
 * cnn-large: three VGG-style blocks of two 3x3 same-padded ReLU convs (32, 64, 128 channels) each
 * followed by a 2x2 max-pool named `blockK`, then `flatten` → `embedding` (Dense+ReLU, 256) →
 * [`dropout`] → `logits`.
 */
export function buildCnnLarge(opts: ModelBuildOptions): LayersModel {
  const c = checkCommonOptions('cnn-large', opts);
  const embeddingSize = intOption('cnn-large', opts, 'embeddingSize', 256);
  const dropout = rateOption('cnn-large', opts, 'dropout', 0);
  const width = zooWidth('cnn-large', opts);
  const x0 = input({ shape: c.inputShape, name: 'input' });
  let x: SymbolicTensor = x0;
  [32, 64, 128].map((f) => scaleByWidth(f, width)).forEach((filters, i) => {
    const b = i + 1;
    x = conv(c.seed, `conv${b}a`, filters, x);
    x = conv(c.seed, `conv${b}b`, filters, x);
    x = pool(`block${b}`, x);
  });
  x = layers.flatten({ name: 'flatten' }).apply(x) as SymbolicTensor;
  x = layers
    .dense({
      units: embeddingSize,
      activation: 'relu',
      name: 'embedding',
      kernelInitializer: he(c.seed, 'embedding'),
      biasInitializer: 'zeros',
    })
    .apply(x) as SymbolicTensor;
  if (dropout > 0)
    x = layers
      .dropout({ rate: dropout, name: 'dropout', seed: layerSeed(c.seed, 'dropout') })
      .apply(x) as SymbolicTensor;
  return model({ inputs: x0, outputs: logitsLayer(c.seed, c.numClasses, x), name: 'cnn-large' });
}

export const cnnSmallDefinition: ModelDefinition = {
  id: 'cnn-small',
  describe:
    'Small CNN: conv 3x3x16 + ReLU → maxpool 2 → conv 3x3x32 + ReLU → maxpool 2 → flatten → dense logits ' +
    '(same padding); option `width` (default 1) multiplies the channels (0.25: 4 and 8). Taps block1, block2 ' +
    '(post-ReLU, post-pool block outputs; the pre-pool activations are the layers conv1, conv2) and embedding ' +
    '(the flattened block2).',
  taps: ['block1', 'block2', 'embedding'],
  build: buildCnnSmall,
};

export const cnnLargeDefinition: ModelDefinition = {
  id: 'cnn-large',
  describe:
    'Larger VGG-style CNN: 3 blocks of two 3x3 ReLU convs (32, 64, 128 channels) + maxpool 2, then a 256-unit ' +
    'ReLU dense `embedding` and dense logits (options `embeddingSize`, `dropout`; `width`, default 1, multiplies ' +
    'the convolutions\' channels). Taps block1..block3 ' +
    '(post-pool) and embedding.',
  taps: ['block1', 'block2', 'block3', 'embedding'],
  build: buildCnnLarge,
};
