/**
 * Born-again generations are cached by `generationKey`, which holds the run's `seed`: the seed that
 * draws a dataset seeded by the run (and the `calibrate:` hold-out), so generations of runs whose data
 * differ by their seed never share a cache entry.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { ContainerModule } from 'inversify';
import { z } from 'zod';
import { defineLoss, PLUGIN_DEFINITION, RunSpec } from '@tfkd/kd-core';
import { datasetsModule } from '@tfkd/datasets';
import { modelsModule } from '@tfkd/models';
import { planRun } from './plan';
import { Registry } from './registry';

/** Asks for `generations` generations of a student trained on mean(z²) (only the plan's keys are tested here). */
const generationsFixture = defineLoss({
  id: 'test/generations',
  describe: 'mean squared logits over G generations (test fixture)',
  options: z
    .object({
      generations: z.number().int().positive().default(2),
      generation: z.number().int().positive().default(1),
    })
    .strict(),
  generations: (o) => o.generations,
  compute: (ctx) => tf.mean(tf.square(ctx.outputs('student').logits)) as tf.Scalar,
});

const registry = () =>
  new Registry([
    { name: '@tfkd/datasets', module: datasetsModule },
    { name: '@tfkd/models', module: modelsModule },
    {
      name: 'test',
      module: new ContainerModule((o) => void o.bind(PLUGIN_DEFINITION).toConstantValue(generationsFixture)),
    },
  ]);

const spec = (seed: number, data: Record<string, unknown>): RunSpec =>
  RunSpec.parse({
    seed,
    backend: 'cpu',
    data,
    student: { model: 'mlp', options: { hidden: [4] } },
    train: { epochs: 1, batchSize: 8, optimizer: { name: 'sgd', lr: 0.1, momentum: 0, weightDecay: 0 } },
    plugins: [{ use: 'test/generations' }],
  });

const keys = async (s: RunSpec) =>
  (await planRun(s, { registry: registry(), cacheDir: null })).runs.map((r) => r.cache?.key);

describe('generationKey and the run seed', () => {
  const synthetic = { name: 'synthetic', train: 16, test: 8, numClasses: 3, shape: [4, 4, 1] };

  it('a dataset seeded by the run: every generation of another run seed has another key; the same seed, the same keys', async () => {
    const [a, b, again] = [
      await keys(spec(1, synthetic)),
      await keys(spec(2, synthetic)),
      await keys(spec(1, synthetic)),
    ];
    expect(a).toHaveLength(2);
    expect(new Set([...a, ...b]).size).toBe(4);
    expect(again).toEqual(a);
  });

  it('stages before the main phase are part of every generation’s key; a spec without them keeps its key', async () => {
    const fixed = { ...synthetic, seed: 9 };
    const plain = await keys(spec(1, fixed));
    // The key of a stage-less spec, pinned: adding fields to the key object must not change it.
    expect(plain).toEqual(['3c5684af32785891', '7b8b6d82e6a5d47e']);
    const staged = RunSpec.parse({ ...spec(1, fixed), stages: [{ name: 'warm', epochs: 1, plugins: [{ use: 'test/generations' }] }] });
    const withStage = await keys(staged);
    expect(withStage).toHaveLength(2);
    expect(new Set([...plain, ...withStage]).size).toBe(4);
  });
});

