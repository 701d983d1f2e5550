// The training recipe in a spec: optimizer (SGD, Adam, DOT) and learning-rate schedule, the run's
// `train:`, a role's overrides of it and a player's recipe. The rest of the spec schema (roles, plugins,
// stages, RunSpec) is in spec.ts, which re-exports these.
import { z } from 'zod';

/** DOT's default Δ: mdistiller `CFG.SOLVER.DOT.DELTA` (its CIFAR-100 configs; ImageNet R34→R18 uses 0.09). */
export const DOT_DELTA = 0.075;

/**
 * Optimizer and schedule of a trainable role. Defaults are the UNIXKD/RepDistiller CIFAR recipe's shape.
 * `dot` (Zhao et al. ICCV 2023, the distillation-oriented trainer): SGD with momentum μ − Δ for the task
 * loss's gradient and μ + Δ for the distillation losses' (`delta`, default {@link DOT_DELTA}, filled in
 * only for `dot`, so other optimizers' resolved specs and hashes are unchanged); see kd-core `DotOptimizer`.
 */
export const OptimizerSpec = z
  .object({
    name: z.enum(['sgd', 'adam', 'dot']).default('sgd'),
    lr: z.number().positive().default(0.05),
    momentum: z.number().min(0).max(1).default(0.9),
    weightDecay: z.number().min(0).default(5e-4),
    nesterov: z.boolean().default(false),
    /** `dot` only: the momentum gap Δ (task μ − Δ, distillation μ + Δ); default 0.075. */
    delta: z.number().min(0).max(1).optional(),
  })
  .strict()
  .superRefine((o, ctx) => {
    const issue = (path: string, message: string, fix: string) =>
      ctx.addIssue({ code: 'custom', path: [path], message, params: { fix } });
    if (o.name !== 'dot') {
      if (o.delta !== undefined)
        issue('delta', '`delta` is an option of `name: dot` only', 'remove `delta`, or set `name: dot`');
      return;
    }
    if (o.nesterov)
      issue(
        'nesterov',
        'DOT has no Nesterov variant (the reference trainer has none)',
        'remove `nesterov` (or use `name: sgd` with Nesterov momentum)',
      );
    const delta = o.delta ?? DOT_DELTA;
    if (delta > o.momentum) {
      issue(
        'delta',
        `DOT's task momentum μ − Δ = ${o.momentum} − ${delta} is negative`,
        `give \`delta\` at most \`momentum\` (${o.momentum})`,
      );
    }
  })
  .transform((o) => (o.name === 'dot' && o.delta === undefined ? { ...o, delta: DOT_DELTA } : o));

export const ScheduleSpec = z
  .object({
    name: z.enum(['constant', 'step', 'cosine']).default('constant'),
    /** `step`: after each milestone epoch (1-based) lr is multiplied by `gamma` (PyTorch MultiStepLR). */
    milestones: z.array(z.number().int().positive()).default([]),
    gamma: z.number().positive().default(0.1),
    /** Linear warm-up epochs. */
    warmup: z.number().int().min(0).default(0),
  })
  .strict();

const count = z.number().int().positive();

export const TrainSpec = z
  .object({
    epochs: count.default(10),
    batchSize: count.default(64),
    optimizer: OptimizerSpec.default(() => OptimizerSpec.parse({})),
    schedule: ScheduleSpec.default(() => ScheduleSpec.parse({})),
    /** Cap on batches per epoch (quick development runs). */
    maxBatches: count.optional(),
  })
  .strict();
export type TrainSpec = z.output<typeof TrainSpec>;

/**
 * A role's overrides of the run's `train`: only the fields given. (Not `TrainSpec.partial()`: under
 * zod 4 that still fills every absent field with its default, so `train: { epochs: 2 }` reset the
 * batch size to 64 and the optimizer to SGD 0.05 instead of keeping the run's.) A given `optimizer`
 * or `schedule` is complete in itself: its own absent fields take their defaults.
 */
export const TrainOverride = z
  .object({
    epochs: count.optional(),
    batchSize: count.optional(),
    optimizer: OptimizerSpec.optional(),
    schedule: ScheduleSpec.optional(),
    maxBatches: count.optional(),
  })
  .strict();

/**
 * A player's recipe (spec `players.<name>.train`): its own optimizer and schedule, never the
 * students' (the schedule runs over the phase's epochs). DOT is refused: it splits a student's
 * gradient into task and distillation parts, and a player has one objective.
 */
export const PlayerTrainSpec = z
  .object({
    optimizer: OptimizerSpec.default(() => OptimizerSpec.parse({})),
    schedule: ScheduleSpec.default(() => ScheduleSpec.parse({})),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (t.optimizer.name !== 'dot') return;
    ctx.addIssue({
      code: 'custom',
      path: ['optimizer', 'name'],
      message:
        "a player cannot train with 'dot': DOT splits a student's task and distillation gradients, and a player has one objective",
      params: { fix: 'give the player `name: sgd` or `name: adam`' },
    });
  });
