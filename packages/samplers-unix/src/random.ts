import { definePlugin, type PluginDefinition, type StepContext, type Task } from '@tfkd/kd-core';
import { z } from 'zod';
import { mixAndKeep, mixRatios } from './select';
import { drawLambda, keepUntouched, mixOptions, noMixingOnDense, SAMPLER_TASKS, selectionFromJson, selectionToJson, taskOf, toSelection, type SamplerPlugin, type Selection } from './unix';

export const randomSchema = z
  .object({
    keep: z.number().int().positive().default(48).describe('k: images kept per batch, chosen uniformly at random (seeded); min(k, N) for a smaller batch'),
    mixup: z
      .boolean()
      .nullable()
      .default(null)
      .describe('true: mix as UNIX does, over a random ranking (UNIXKD --strategy 0: random scores, same mask); false: keep k untouched images and their training-set indices (the teacher-output cache can serve them); null: true on classification, false on detection and segmentation (boxes and masks cannot be mixed; true there is an error)'),
    ...mixOptions,
  })
  .strict();
export type RandomOptions = z.output<typeof randomSchema>;

/**
 * One `sampler/random` step: a uniformly random ranking of the batch (a seeded permutation; the
 * reference's `argsort(rand(N))`), then either UNIX's mixing over that ranking or a plain subset.
 * No student forward: the ranking needs none.
 */
export function randomStep(ctx: StepContext, o: RandomOptions, task: Task = 'classification'): Selection {
  const { x, y, indices } = ctx.batch;
  const n = x.shape[0] as number;
  const order = ctx.rng.permutation(n);
  if (o.mixup ?? task === 'classification') {
    const lambda = drawLambda(ctx.rng, o);
    const perm = ctx.rng.permutation(n);
    const r = mixAndKeep(x, y, { order, c: mixRatios(n, o), lambda, perm, keep: o.keep });
    ctx.replaceBatch({ x: r.x, y: r.y }, { transformed: true });
    return toSelection(n, r, indices, lambda, new Float32Array(0));
  }
  return keepUntouched(ctx, order, o.keep, new Float32Array(0));
}

/** `sampler/random`: the random baseline of UNIX (UNIXKD strategy 0). */
export const randomSampler: PluginDefinition<typeof randomSchema> = definePlugin({
  id: 'sampler/random',
  kind: 'sampler',
  describe:
    'Random baseline of UNIX (UNIXKD --strategy 0): keep k of N chosen uniformly at random (seeded); mixup: true mixes them as sampler/unix does, mixup: false keeps them untouched (teacher cache still usable); detection/segmentation: k random images unmixed with their boxes/masks',
  options: randomSchema,
  tasks: SAMPLER_TASKS,
  stage: 'sample',
  transformsBatch: (o) => o.mixup ?? true,
  create(o, deps): SamplerPlugin {
    const task = taskOf(deps);
    if (task !== 'classification' && o.mixup === true) throw noMixingOnDense(deps, 'mixup', true, 'drop `mixup` (or set it to false)');
    let last: Selection | null = null;
    return {
      name: deps.name,
      register(bus) {
        bus.on('batchStart', (ctx) => void (last = randomStep(ctx, o, task)));
      },
      lastSelection: () => last,
      getState: () => ({ last: selectionToJson(last) }),
      setState: (state) => void (last = selectionFromJson((state as { last: unknown }).last)),
    };
  },
});
