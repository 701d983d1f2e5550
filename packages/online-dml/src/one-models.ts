import * as tfl from '@tensorflow/tfjs-layers';
import type { LayersModel, SymbolicTensor } from '@tensorflow/tfjs-layers';
import { KdError, type ModelBuildOptions, type ModelDefinition } from '@tfkd/kd-core';

/** Per-layer initialiser seed: the build seed mixed with the layer name (FNV-1a), so layers differ. */
export function layerSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h % 2147483647;
}

function invalid(id: string, key: string, message: string, fix: string): KdError {
  return new KdError('KD_SPEC_INVALID', `model '${id}': ${message}`, { path: `options.${key}`, fix });
}

function positiveInt(id: string, opts: ModelBuildOptions, key: string, def: number, min = 1): number {
  const v = opts[key] ?? def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    throw invalid(id, key, `${key} must be an integer ≥ ${min}, got ${JSON.stringify(v)}`, `pass e.g. ${key}: ${def}`);
  }
  return v;
}

interface Checked {
  inputShape: number[];
  numClasses: number;
  seed: number;
  branches: number;
}

function check(id: string, opts: ModelBuildOptions): Checked {
  const s = opts.inputShape;
  if (!Array.isArray(s) || s.length !== 3 || !s.every((d) => Number.isInteger(d) && d > 0)) {
    throw invalid(id, 'inputShape', `inputShape must be [height, width, channels], got ${JSON.stringify(s)}`, 'pass e.g. inputShape: [28, 28, 1]');
  }
  if (opts.numClasses === undefined) throw invalid(id, 'numClasses', 'numClasses is required', 'pass e.g. numClasses: 10');
  const numClasses = positiveInt(id, opts, 'numClasses', 10, 2);
  const seed = opts.seed ?? 1;
  if (!Number.isInteger(seed)) throw invalid(id, 'seed', `seed must be an integer, got ${JSON.stringify(seed)}`, 'pass an integer seed');
  const branches = positiveInt(id, opts, 'branches', 3, 2);
  if (branches > 16) throw invalid(id, 'branches', `at most 16 branches, got ${branches}`, 'use 2 to 16 branches (ONE: 3)');
  return { inputShape: s, numClasses, seed, branches };
}

function dense(seed: number, name: string, units: number, x: SymbolicTensor, activation?: 'relu' | 'softmax'): SymbolicTensor {
  const init =
    activation === 'relu' ? tfl.initializers.heNormal({ seed: layerSeed(seed, name) }) : tfl.initializers.glorotUniform({ seed: layerSeed(seed, name) });
  return tfl.layers.dense({ units, activation, name, kernelInitializer: init, biasInitializer: 'zeros' }).apply(x) as SymbolicTensor;
}

function conv(seed: number, name: string, filters: number, x: SymbolicTensor): SymbolicTensor {
  return tfl.layers
    .conv2d({ filters, kernelSize: 3, padding: 'same', activation: 'relu', name, kernelInitializer: tfl.initializers.heNormal({ seed: layerSeed(seed, name) }), biasInitializer: 'zeros' })
    .apply(x) as SymbolicTensor;
}

function pool(name: string, x: SymbolicTensor): SymbolicTensor {
  return tfl.layers.maxPooling2d({ poolSize: 2, strides: 2, padding: 'valid', name }).apply(x) as SymbolicTensor;
}

/**
 * The gated ensemble with built-in (serialisable) layers only: each branch's logits reshaped to
 * [1, K] (`branchI_row`), concatenated to [m, K] (`branches`), then `logits` = Dot(axes 1) of the gate
 * [m] with it: z_e[k] = Σ_i g_i · z_i[k]. Saving and loading need no custom layer class.
 */
function ensembleHead(branchLogits: SymbolicTensor[], gate: SymbolicTensor, numClasses: number): SymbolicTensor {
  const rows = branchLogits.map((z, i) => tfl.layers.reshape({ targetShape: [1, numClasses], name: `branch${i}_row` }).apply(z) as SymbolicTensor);
  const stacked = tfl.layers.concatenate({ axis: 1, name: 'branches' }).apply(rows) as SymbolicTensor;
  return tfl.layers.dot({ axes: [1, 1], name: 'logits' }).apply([gate, stacked]) as SymbolicTensor;
}

/**
 * one-mlp: input → flatten → `trunk` (Dense+ReLU, `hidden`, shared) → per branch i `branchI_fc`
 * (Dense+ReLU, `branchHidden`) → `branchI` (Dense, K logits); `gate` = Dense(m) + softmax on the
 * trunk; output `logits` = Σ_i gate_i · branchI. Defaults hidden 128, branchHidden 128, branches 3:
 * each branch is the 784-128-128-10 mlp-student with the first layer shared.
 */
export function buildOneMlp(opts: ModelBuildOptions): LayersModel {
  const id = 'one-mlp';
  const c = check(id, opts);
  const hidden = positiveInt(id, opts, 'hidden', 128);
  const branchHidden = positiveInt(id, opts, 'branchHidden', 128);
  const x0 = tfl.input({ shape: c.inputShape, name: 'input' });
  const flat = tfl.layers.flatten({ name: 'flatten' }).apply(x0) as SymbolicTensor;
  const trunk = dense(c.seed, 'trunk', hidden, flat, 'relu');
  const branches = Array.from({ length: c.branches }, (_, i) =>
    dense(c.seed, `branch${i}`, c.numClasses, dense(c.seed, `branch${i}_fc`, branchHidden, trunk, 'relu')),
  );
  const gate = dense(c.seed, 'gate', c.branches, trunk, 'softmax');
  return tfl.model({ inputs: x0, outputs: ensembleHead(branches, gate, c.numClasses), name: id });
}

/**
 * one-cnn: the trunk is cnn-small's first block (`conv1` 3x3x16 same ReLU → `block1` maxpool 2);
 * each branch i is its second block (`branchI_conv` 3x3x32 → `branchI_pool`) → `branchI_flat` →
 * `branchI` (Dense, K logits); `gate` = global average pool of block1 (`gate_pool`) → Dense(m) +
 * softmax; output `logits` = Σ_i gate_i · branchI.
 */
export function buildOneCnn(opts: ModelBuildOptions): LayersModel {
  const id = 'one-cnn';
  const c = check(id, opts);
  const x0 = tfl.input({ shape: c.inputShape, name: 'input' });
  const trunk = pool('block1', conv(c.seed, 'conv1', 16, x0));
  const branches = Array.from({ length: c.branches }, (_, i) => {
    const b = pool(`branch${i}_pool`, conv(c.seed, `branch${i}_conv`, 32, trunk));
    const flat = tfl.layers.flatten({ name: `branch${i}_flat` }).apply(b) as SymbolicTensor;
    return dense(c.seed, `branch${i}`, c.numClasses, flat);
  });
  const pooled = tfl.layers.globalAveragePooling2d({ name: 'gate_pool' }).apply(trunk) as SymbolicTensor;
  const gate = dense(c.seed, 'gate', c.branches, pooled, 'softmax');
  return tfl.model({ inputs: x0, outputs: ensembleHead(branches, gate, c.numClasses), name: id });
}

const TAPS = ['branch0', 'branch1', 'branch2', 'gate'];

export const oneMlpDefinition: ModelDefinition = {
  id: 'one-mlp',
  describe:
    'ONE multi-branch MLP: flatten → shared `trunk` Dense+ReLU (hidden 128) → m branches (`branches`, default 3) of Dense+ReLU (branchHidden 128) → logits `branchI`; `gate` Dense(m)+softmax on the trunk; output = Σ gate_i·branchI. Taps trunk, branch0..2, gate.',
  taps: ['trunk', ...TAPS],
  build: buildOneMlp,
};

export const oneCnnDefinition: ModelDefinition = {
  id: 'one-cnn',
  describe:
    'ONE multi-branch CNN: shared cnn-small first block (conv1 16 → block1 pool) → m branches (default 3) of conv 32 → pool → flatten → logits `branchI`; `gate` GAP(block1) → Dense(m)+softmax; output = Σ gate_i·branchI. Taps block1, branch0..2, gate.',
  taps: ['block1', ...TAPS],
  build: buildOneCnn,
};

export const ONE_MODELS: readonly ModelDefinition[] = [oneMlpDefinition, oneCnnDefinition];
