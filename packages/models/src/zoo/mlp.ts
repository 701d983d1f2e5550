import { KdError, type ModelBuildOptions, type ModelDefinition } from '@tfkd/kd-core';
import { input, layers, model, type LayersModel, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import { checkCommonOptions, glorot, intListOption, layerSeed, rateOption } from './common';

/**
 * Reads the optional `width` multiplier of a zoo model (a positive number; absent = 1, the model as
 * it always was — the option is never filled in, so specs without it keep their hashes).
 */
export function zooWidth(modelId: string, opts: ModelBuildOptions): number {
  const v = opts.width;
  if (v === undefined) return 1;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new KdError('KD_SPEC_INVALID', `model '${modelId}': width must be a positive number, got ${JSON.stringify(v)}`, {
      path: 'options.width',
      fix: 'pass e.g. width: 0.25 (a quarter of the units or channels), or omit it (1)',
    });
  }
  return v;
}

/**
 * A layer width scaled by a multiplier, rounded as NetAug's reference rounds its widths
 * (mit-han-lab/tinyml `make_divisible(v, 1)`: half up, at least 1, never more than 10 % below v).
 * `scaleByWidth(n, 1)` is n.
 */
export function scaleByWidth(n: number, width: number): number {
  const v = n * width;
  let out = Math.max(1, Math.floor(v + 0.5));
  if (out < 0.9 * v) out += 1;
  return out;
}

/** Options of the `mlp` family on top of {@link ModelBuildOptions}. */
export interface MlpOptions extends ModelBuildOptions {
  /** Widths of the hidden layers, default [128, 128]. */
  hidden?: number[];
  /** Dropout rate after every hidden layer (training only), default 0 = no dropout layers. */
  dropout?: number;
  /** Multiplier of every hidden width (`hidden` × width, rounded), default 1. */
  width?: number;
}

/**
 * Builds `input → flatten → fc1 → [dropout1] → fc2 → … → fcN → embedding → [dropoutN] → logits`.
 * `fcK` are Dense+ReLU (so the tap `fcK` is the post-ReLU activation); `embedding` is an identity
 * layer on the last hidden activation (same values as `fcN`, named so every zoo model has it).
 */
export function buildMlp(
  id: string,
  opts: ModelBuildOptions,
  defaults: { hidden: number[]; dropout: number },
): LayersModel {
  const c = checkCommonOptions(id, opts);
  const width = zooWidth(id, opts);
  const hidden = intListOption(id, opts, 'hidden', defaults.hidden).map((u) => scaleByWidth(u, width));
  const dropout = rateOption(id, opts, 'dropout', defaults.dropout);
  const x0 = input({ shape: c.inputShape, name: 'input' });
  let x = layers.flatten({ name: 'flatten' }).apply(x0) as SymbolicTensor;
  hidden.forEach((units, i) => {
    const name = `fc${i + 1}`;
    x = layers
      .dense({
        units,
        activation: 'relu',
        name,
        kernelInitializer: glorot(c.seed, name),
        biasInitializer: 'zeros',
      })
      .apply(x) as SymbolicTensor;
    if (i === hidden.length - 1)
      x = layers.activation({ activation: 'linear', name: 'embedding' }).apply(x) as SymbolicTensor;
    if (dropout > 0) {
      const dn = `dropout${i + 1}`;
      x = layers.dropout({ rate: dropout, name: dn, seed: layerSeed(c.seed, dn) }).apply(x) as SymbolicTensor;
    }
  });
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

function mlpTaps(n: number): string[] {
  return [...Array.from({ length: n }, (_, i) => `fc${i + 1}`), 'embedding'];
}

export const mlpDefinition: ModelDefinition = {
  id: 'mlp',
  describe:
    'Multi-layer perceptron: flatten → Dense+ReLU hidden layers fc1..fcN (option `hidden`, default [128, 128]) → ' +
    'logits. Option `dropout` (default 0) adds dropout after every hidden layer; `width` (default 1) multiplies ' +
    'every hidden width. Taps fc1..fcN and embedding ' +
    '(= last hidden activation). Taps listed are for the default 2 hidden layers.',
  taps: mlpTaps(2),
  build: (opts) => buildMlp('mlp', opts, { hidden: [128, 128], dropout: 0 }),
};

export const mlpTeacherDefinition: ModelDefinition = {
  id: 'mlp-teacher',
  describe:
    'Hinton et al. (2015) MNIST teacher: 784-1200-1200-10 MLP (ReLU) with dropout 0.2 on both hidden layers. ' +
    'Option `width` (default 1) multiplies the hidden widths. Taps fc1, fc2, embedding (= fc2).',
  taps: mlpTaps(2),
  build: (opts) => buildMlp('mlp-teacher', opts, { hidden: [1200, 1200], dropout: 0.2 }),
};

export const mlpStudentDefinition: ModelDefinition = {
  id: 'mlp-student',
  describe:
    'Small MNIST student: 784-128-128-10 MLP (ReLU), no dropout. Option `width` (default 1) multiplies the hidden ' +
    'widths (0.25: 784-32-32-10). Taps fc1, fc2, embedding (= fc2).',
  taps: mlpTaps(2),
  build: (opts) => buildMlp('mlp-student', opts, { hidden: [128, 128], dropout: 0 }),
};
