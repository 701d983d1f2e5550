import type { ModelBuildOptions, ModelDefinition } from '@tfkd/kd-core';
import { input, layers, model, type LayersModel, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import { checkCommonOptions, glorot, he, intListOption, intOption } from './common';

/** Options of the `resnet` family on top of {@link ModelBuildOptions}. */
export interface ResnetOptions extends ModelBuildOptions {
  /** Channels of each stage (one stage per entry; the stem has widths[0]), default [16, 32, 64]. */
  widths?: number[];
  /** Basic blocks per stage, default 1. */
  blocksPerStage?: number;
}

const BN_MOMENTUM = 0.9;
const BN_EPSILON = 1e-5;

function conv(
  seed: number,
  name: string,
  filters: number,
  kernelSize: number,
  strides: number,
  x: SymbolicTensor,
): SymbolicTensor {
  return layers
    .conv2d({
      filters,
      kernelSize,
      strides,
      padding: 'same',
      useBias: false,
      name,
      kernelInitializer: he(seed, name),
    })
    .apply(x) as SymbolicTensor;
}

function bn(name: string, x: SymbolicTensor): SymbolicTensor {
  return layers
    .batchNormalization({ axis: -1, momentum: BN_MOMENTUM, epsilon: BN_EPSILON, name })
    .apply(x) as SymbolicTensor;
}

function relu(name: string, x: SymbolicTensor): SymbolicTensor {
  return layers.reLU({ name }).apply(x) as SymbolicTensor;
}

/**
 * One basic block (He et al. 2016): conv3x3(stride)-BN-ReLU-conv3x3-BN, plus the shortcut (identity,
 * or conv1x1(stride)-BN when the shape changes), added and passed through a ReLU named `outName`.
 * Layer names: `${prefix}_conv1`, `_bn1`, `_relu1`, `_conv2`, `_bn2`, [`_proj`, `_proj_bn`], `_add`.
 */
export function basicBlock(
  seed: number,
  prefix: string,
  x: SymbolicTensor,
  filters: number,
  strides: number,
  outName: string,
): SymbolicTensor {
  const cin = x.shape[x.shape.length - 1];
  let y = conv(seed, `${prefix}_conv1`, filters, 3, strides, x);
  y = relu(`${prefix}_relu1`, bn(`${prefix}_bn1`, y));
  y = bn(`${prefix}_bn2`, conv(seed, `${prefix}_conv2`, filters, 3, 1, y));
  let shortcut = x;
  if (strides !== 1 || cin !== filters) {
    shortcut = bn(`${prefix}_proj_bn`, conv(seed, `${prefix}_proj`, filters, 1, strides, x));
  }
  const sum = layers.add({ name: `${prefix}_add` }).apply([y, shortcut]) as SymbolicTensor;
  return relu(outName, sum);
}

/**
 * CIFAR-style ResNet: `stem` (conv3x3 widths[0] - BN - ReLU) → stages of basic blocks (the first
 * block of every stage after the first has stride 2) → `embedding` (global average pool) → `logits`.
 * Stage K's output (last block's ReLU) is the layer `blockK`; block J of stage K is prefixed `sK_bJ`.
 * Same padding throughout, so 28x28 inputs go 28→14→7 and 32x32 go 32→16→8.
 */
export function buildResnet(
  id: string,
  opts: ModelBuildOptions,
  defaults: { widths: number[]; blocksPerStage: number },
): LayersModel {
  const c = checkCommonOptions(id, opts);
  const widths = intListOption(id, opts, 'widths', defaults.widths);
  const blocksPerStage = intOption(id, opts, 'blocksPerStage', defaults.blocksPerStage);
  const x0 = input({ shape: c.inputShape, name: 'input' });
  let x = relu('stem', bn('stem_bn', conv(c.seed, 'stem_conv', widths[0], 3, 1, x0)));
  widths.forEach((filters, s) => {
    for (let b = 0; b < blocksPerStage; b++) {
      const strides = s > 0 && b === 0 ? 2 : 1;
      const outName = b === blocksPerStage - 1 ? `block${s + 1}` : `s${s + 1}_b${b + 1}_out`;
      x = basicBlock(c.seed, `s${s + 1}_b${b + 1}`, x, filters, strides, outName);
    }
  });
  x = layers.globalAveragePooling2d({ name: 'embedding' }).apply(x) as SymbolicTensor;
  const logits = layers
    .dense({
      units: c.numClasses,
      name: 'logits',
      kernelInitializer: glorot(c.seed, 'logits'),
      biasInitializer: 'zeros',
    })
    .apply(x) as SymbolicTensor;
  return model({ inputs: x0, outputs: logits, name: id });
}

const TAPS = ['stem', 'block1', 'block2', 'block3', 'embedding'];

export const resnetDefinition: ModelDefinition = {
  id: 'resnet',
  describe:
    'ResNet with basic blocks and BatchNorm for 28x28/32x32 inputs. Options `widths` (channels per stage, ' +
    'default [16, 32, 64]) and `blocksPerStage` (default 1). Taps stem, blockK (stage outputs, NHWC; one per ' +
    'width) and embedding (global-average-pooled vector).',
  taps: TAPS,
  build: (opts) => buildResnet('resnet', opts, { widths: [16, 32, 64], blocksPerStage: 1 }),
};

export const resnetStudentDefinition: ModelDefinition = {
  id: 'resnet-student',
  describe:
    'ResNet student preset: widths 16/32/64, 1 basic block per stage. Taps stem, block1..block3, embedding.',
  taps: TAPS,
  build: (opts) => buildResnet('resnet-student', opts, { widths: [16, 32, 64], blocksPerStage: 1 }),
};

export const resnetTeacherDefinition: ModelDefinition = {
  id: 'resnet-teacher',
  describe:
    'ResNet teacher preset: widths 32/64/128, 2 basic blocks per stage. Taps stem, block1..block3, embedding.',
  taps: TAPS,
  build: (opts) => buildResnet('resnet-teacher', opts, { widths: [32, 64, 128], blocksPerStage: 2 }),
};
