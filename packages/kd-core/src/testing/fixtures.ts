import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { ContainerModule } from 'inversify';
import { z } from 'zod';
import { defineLoss } from '../loss';
import { definePlugin, type PluginDefinition, type PluginDeps } from '../plugin';
import type { RoleInfo } from '../hooks';
import { Rng } from '../rng';
import {
  DATASET_DEFINITION,
  MODEL_DEFINITION,
  MODEL_TOOLS,
  PLUGIN_DEFINITION,
  type DataSplits,
  type Dataset,
  type DatasetDefinition,
  type ModelDefinition,
  type ModelTools,
} from '../tokens';

/** Seeded Gaussian blobs, [h, w, 1] images in [0, 1]: enough signal for a dense net to learn. */
export function blobs(n: number, opts: { seed: number; numClasses?: number; side?: number; stream?: number }): Dataset {
  const k = opts.numClasses ?? 3;
  const side = opts.side ?? 4;
  const d = side * side;
  const rng = new Rng(opts.seed);
  const centres = Array.from({ length: k }, () => Array.from({ length: d }, () => rng.next()));
  const noise = rng.fork(opts.stream ?? 0);
  const images = new Float32Array(n * d);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % k;
    labels[i] = c;
    for (let j = 0; j < d; j++) images[i * d + j] = Math.min(1, Math.max(0, centres[c][j] + 0.15 * noise.normal()));
  }
  return { name: 'blobs', images, labels, shape: [side, side, 1], numClasses: k, source: 'synthetic' };
}

export function blobSplits(seed = 7, train = 96, test = 48): DataSplits {
  return { train: blobs(train, { seed, stream: 0 }), test: blobs(test, { seed, stream: 1 }) };
}

/** A dense model over flattened images, layer names `flatten`, `fc1`, `logits`. */
export function denseModel(opts: { inputShape: number[]; numClasses: number; seed?: number; hidden?: number }): tfl.LayersModel {
  const seed = opts.seed ?? 1;
  const input = tfl.input({ shape: opts.inputShape });
  const flat = tfl.layers.flatten({ name: 'flatten' }).apply(input) as tfl.SymbolicTensor;
  const h = tfl.layers
    .dense({ units: opts.hidden ?? 8, activation: 'relu', name: 'fc1', kernelInitializer: tfl.initializers.glorotUniform({ seed }) })
    .apply(flat) as tfl.SymbolicTensor;
  const out = tfl.layers
    .dense({ units: opts.numClasses, name: 'logits', kernelInitializer: tfl.initializers.glorotUniform({ seed: seed + 1 }) })
    .apply(h) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out, name: 'dense' });
}

export const testModelDefinition: ModelDefinition = {
  id: 'test-dense',
  describe: 'flatten → dense(8, relu) → dense(K), for tests',
  taps: ['fc1'],
  build: (o) => denseModel({ inputShape: o.inputShape, numClasses: o.numClasses, seed: o.seed, hidden: o.hidden as number | undefined }),
};

const memoryModels = new Map<string, tf.io.ModelArtifacts>();

/** Dense-only FLOP count; save/load to an in-memory store keyed by folder path (no files). */
export const testModelTools: ModelTools = {
  countFlops(model) {
    return model.layers
      .filter((l) => l.getClassName() === 'Dense')
      .reduce((s, l) => {
        const kernel = l.getWeights()[0];
        return s + 2 * (kernel.shape[0] as number) * (kernel.shape[1] as number);
      }, 0);
  },
  async save(model, dir) {
    await model.save(
      tf.io.withSaveHandler(async (artifacts) => {
        memoryModels.set(dir, artifacts);
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
  },
  async load(dir) {
    const artifacts = memoryModels.get(dir);
    if (!artifacts) throw new Error(`testModelTools: nothing saved at ${dir}`);
    return tfl.loadLayersModel(tf.io.fromMemory(artifacts));
  },
};

/** A KD-style test loss: mean squared difference of student and teacher logits. */
export const testLogitMatch = defineLoss({
  id: 'test/logit-match',
  describe: 'mean((z_s − z_t)²) (test fixture)',
  options: z.object({}).strict(),
  requires: () => ({ roles: ['student', 'teacher'] }),
  compute(ctx) {
    return tf.mean(tf.squaredDifference(ctx.outputs('student').logits, ctx.outputs('teacher').logits)) as tf.Scalar;
  },
});

export const testDataset: DatasetDefinition = {
  id: 'blobs',
  describe: 'seeded Gaussian blobs for tests',
  options: z.object({ train: z.number().int().positive().default(96), test: z.number().int().positive().default(48) }).strict(),
  async load(o) {
    return blobSplits(7, o.train as number, o.test as number);
  },
};

/** Mean softmax cross-entropy, for kd-core tests (the real one lives in @tfkd/losses-logit). */
export const testCrossEntropy = defineLoss({
  id: 'test/ce',
  describe: 'softmax cross-entropy (test fixture)',
  options: z.object({}).strict(),
  compute(ctx) {
    const { logits } = ctx.outputs('student');
    const logp = tf.logSoftmax(logits);
    const picked = tf.sum(tf.mul(logp, tf.cast(tf.oneHot(ctx.batch.y as tf.Tensor1D, ctx.numClasses), 'float32')), 1);
    return tf.neg(tf.mean(picked)) as tf.Scalar;
  },
});

/** Pushes `tf.memory().numTensors` into `counts` after every step (`batchEnd`): for leak tests. */
export function tensorCounter(counts: number[], id = 'obs/count'): PluginDefinition {
  return definePlugin({
    id,
    kind: 'observer',
    describe: 'records tf.memory().numTensors after each step',
    options: z.object({}).strict(),
    create: (_o, deps) => ({ name: deps.name, register: (bus) => bus.on('batchEnd', () => void counts.push(tf.memory().numTensors)) }),
  });
}

/** Records every hook it sees (with its stage) into `trace`. */
export function tracer(trace: string[], id = 'test/tracer'): PluginDefinition {
  return definePlugin({
    id,
    kind: 'observer',
    describe: 'records hooks, for tests',
    options: z.object({ stage: z.enum(['sample', 'default', 'observe']).default('default') }).strict(),
    create(_o, deps) {
      return {
        name: deps.name,
        register(bus) {
          bus.on('runStart', () => void trace.push(`${deps.name}:runStart`));
          bus.on('epochStart', (e) => void trace.push(`${deps.name}:epochStart:${e.phase}:${e.epoch}`));
          bus.on('batchStart', (c) => void trace.push(`${deps.name}:batchStart:${c.batchIndex}`));
          bus.on('loss', (c) => void trace.push(`${deps.name}:loss:${c.batchIndex}`));
          bus.on('batchEnd', (b) => void trace.push(`${deps.name}:batchEnd:${b.batchIndex}`));
          bus.on('evalBatch', (e) => void trace.push(`${deps.name}:evalBatch:${e.role}`));
          bus.on('evalEnd', (e) => void trace.push(`${deps.name}:evalEnd:${e.epoch}`));
          bus.on('epochEnd', (e) => void trace.push(`${deps.name}:epochEnd:${e.epoch}`));
          bus.on('runEnd', () => void trace.push(`${deps.name}:runEnd`));
        },
      };
    },
  });
}

/** The fixtures as a ContainerModule (plus any extra plugin definitions). */
export function testModule(...extra: PluginDefinition[]): ContainerModule {
  return new ContainerModule((o) => {
    o.bind(MODEL_DEFINITION).toConstantValue(testModelDefinition);
    o.bind(MODEL_TOOLS).toConstantValue(testModelTools);
    o.bind(DATASET_DEFINITION).toConstantValue(testDataset);
    o.bind(PLUGIN_DEFINITION).toConstantValue(testCrossEntropy);
    o.bind(PLUGIN_DEFINITION).toConstantValue(testLogitMatch);
    for (const d of extra) o.bind(PLUGIN_DEFINITION).toConstantValue(d);
  });
}

/**
 * What `create` receives from the engine, for unit tests of a plugin outside a run: 3 classes,
 * 4×4×1 images, weight 1, seeded generator, tap shapes from `tapShapes` (an unknown tap throws).
 */
export function fakePluginDeps(name: string, roles: RoleInfo[], tapShapes: Record<string, number[]> = {}): PluginDeps {
  return {
    name,
    weight: 1,
    numClasses: 3,
    inputShape: [4, 4, 1],
    roles,
    tapShape: (tap) => {
      const s = tapShapes[tap];
      if (!s) throw new Error(`no tap '${tap}'`);
      return s;
    },
    rng: new Rng(1),
    specPath: 'plugins[0]',
  };
}
