import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { planRun, Registry, runSpec, type RunResult } from '@tfkd/engine';
import { halfBatchSampler } from '@tfkd/engine/testing';
import { definePlugin, isKdError, KdError, RunSpec, type DataSplits, type Dataset, type PluginDefinition, type RunSpecInput } from '@tfkd/kd-core';
import { testModule } from '@tfkd/kd-core/testing';
import { logitLossesModule } from '@tfkd/losses-logit';
import { z } from 'zod';
import { augmentModule } from '../module';

// Shared by views.spec.ts and views-plan.spec.ts: a hand-made data set, a tracer of what every role
// saw, the runs' spec and runner.

export type Use = Record<string, unknown> & { use: string };

/** Image i, row r, column c = (4r + c + 1)/20 + 0.002·i: every pixel of every image distinct. */
export function handMade(n: number, seed: number): Dataset {
  const images = new Float32Array(n * 16);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = (i + seed) % 3;
    for (let p = 0; p < 16; p++) images[i * 16 + p] = (p + 1) / 20 + 0.002 * i;
  }
  return { name: 'hand', images, labels, shape: [4, 4, 1], numClasses: 3, source: 'synthetic' };
}
export const HAND: DataSplits = { train: handMade(16, 0), test: handMade(4, 1) };

/** Horizontal flip of NHWC 4×4×1 images, by hand. */
export function flipByHand(x: number[]): number[] {
  return x.map((_, j) => {
    const [i, r, c] = [Math.floor(j / 16), Math.floor((j % 16) / 4), j % 4];
    return x[i * 16 + r * 4 + (3 - c)];
  });
}

/** The training images at these indices, flat. */
export const imagesAt = (indices: Int32Array): number[] => Array.from(indices).flatMap((i) => Array.from(HAND.train.images.subarray(i * 16, i * 16 + 16)));

export interface Step {
  indices: number[] | null;
  x: number[];
  views: Record<string, number[]>;
  input: Record<string, number[]>;
  teacher: number[];
  /** The teacher's forward of the un-augmented training images of the batch, outside the step. */
  teacherDirect: number[] | null;
}
export interface Trace {
  steps: Step[];
  counts: number[];
}

export const data = (t: tf.Tensor) => Array.from(t.dataSync());

/** Records, after the losses, what every role saw. */
export function tracer(trace: Trace): PluginDefinition {
  return definePlugin({
    id: 'test/views-trace',
    kind: 'observer',
    describe: 'records the images, views and inputs of every step',
    options: z.object({}).strict(),
    stage: 'observe',
    create: (_o, d) => {
      const teacher = d.roles.some((r) => r.name === 'teacher') ? (d.model?.('teacher') as LayersModel) : null;
      return {
        name: d.name,
        register(bus) {
          bus.on('loss', (ctx) => {
            const idx = ctx.batch.indices;
            trace.steps.push({
              indices: idx ? Array.from(idx) : null,
              x: data(ctx.batch.x),
              views: Object.fromEntries(Object.entries(ctx.batch.views ?? {}).map(([k, v]) => [k, data(v)])),
              input: Object.fromEntries(ctx.roles.map((r) => [r.name, data(ctx.input(r.name))])),
              teacher: teacher ? data(ctx.outputs('teacher').logits) : [],
              teacherDirect: teacher && idx ? data(teacher.apply(tf.tensor4d(imagesAt(idx), [idx.length, 4, 4, 1]), { training: false }) as tf.Tensor) : null,
            });
          });
          bus.on('batchEnd', () => void trace.counts.push(tf.memory().numTensors));
        },
      };
    },
  });
}


export function spec(augs: Use[], over: Partial<RunSpecInput> = {}, losses: Use[] = [{ use: 'loss/hinton-kd', with: { temperature: 4 } }, { use: 'loss/cross-entropy', weight: 0.5 }]): RunSpec {
  return RunSpec.parse({
    seed: 5,
    backend: 'cpu',
    data: { name: 'hand' },
    teacher: { model: 'test-dense', seed: 11, train: { epochs: 1 } },
    student: { model: 'test-dense' },
    train: { epochs: 2, batchSize: 8, optimizer: { name: 'sgd', lr: 0.1, momentum: 0, weightDecay: 0 } },
    plugins: [...augs, ...losses, { use: 'test/views-trace' }],
    evalEvery: 100,
    ...over,
  });
}

export const registry = (...extra: PluginDefinition[]) => new Registry([testModule(halfBatchSampler, ...extra), augmentModule, logitLossesModule]);

export function weightsOf(result: RunResult, role = 'student'): number[][] {
  return (result.models.get(role) as unknown as { getWeights(): tf.Tensor[] }).getWeights().map((w) => Array.from(w.dataSync()));
}

export async function run(s: RunSpec, dataset: DataSplits = HAND, extra: PluginDefinition[] = []): Promise<{ result: RunResult; trace: Trace; weights: number[][] }> {
  const trace: Trace = { steps: [], counts: [] };
  const result = await runSpec(s, { registry: registry(tracer(trace), ...extra), cacheDir: null, data: dataset });
  const weights = weightsOf(result);
  result.models.forEach((m) => m.dispose());
  return { result, trace, weights };
}

/** The KdError a spec fails with at planning (before any step), or null. */
export async function planError(s: RunSpec): Promise<KdError | null> {
  return planRun(s, { registry: registry(tracer({ steps: [], counts: [] })), cacheDir: null, data: HAND }).then(
    () => null,
    (e: unknown) => {
      if (!isKdError(e)) throw e;
      return e;
    },
  );
}
