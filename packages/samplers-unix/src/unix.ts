import * as tf from '@tensorflow/tfjs-core';
import { KdError, definePlugin, type Plugin, type PluginDefinition, type PluginDeps, type Rng, type StepContext, type Task } from '@tfkd/kd-core';
import { z } from 'zod';
import { denseUncertainty, keptTargets, uncertaintyOutputs } from './dense';
import { entropyRows, mixAndKeep, mixRatios, rankDescending, type MixResult } from './select';

/** What a sampler did on its last batch (numbers only), for diagnostics and tests. */
export interface Selection {
  /** Batch size N before sampling. */
  n: number;
  /** Source positions (0..N−1, in the loaded batch) of the kept rows, in kept order. */
  kept: Int32Array;
  /** Training-set indices of the kept rows (null when the loaded batch had none). */
  keptIndices: Int32Array | null;
  /** Partner position of each kept row (empty without mixup). */
  partners: Int32Array;
  /** λ of the batch (0 without mixup). */
  lambda: number;
  /** m_r = λ·c_r of each kept row (zeros without mixup). */
  m: Float64Array;
  /** Uncertainty u of every loaded sample, in batch order (`sampler/unix` only; empty otherwise). */
  uncertainty: Float32Array;
}

/** A sampler plugin instance: a plugin plus its last selection. */
export interface SamplerPlugin extends Plugin {
  lastSelection(): Selection | null;
}

const keepOption = z.number().int().positive().default(48).describe('k: images kept per batch (UNIXKD --k 48 of batch 64); min(k, N) for a smaller batch');

/** Options shared by the mixing samplers. */
export const mixOptions = {
  w: z.number().positive().default(10).describe('steepness w of c_r = sigmoid(w·(r/N − (2b−1)/(2N))); 10 as in UNIXKD command.sh (argparse default 1000 = a hard step)'),
  b: z.number().int().min(0).default(32).describe('rank b where c_r crosses 1/2: the b most uncertain are mixed mildly. Absolute (not scaled with N), as in the reference; 32 for N = 64'),
  alpha: z.number().positive().default(1).describe('λ ~ Beta(alpha, beta), one λ per batch (reference: Beta(1, 1))'),
  beta: z.number().positive().default(1).describe('λ ~ Beta(alpha, beta)'),
  lambda: z.number().min(0).max(1).nullable().default(null).describe('fix λ instead of drawing it (ablations, tests): 0 = no mixing; null = draw from Beta(alpha, beta). Detection and segmentation never mix (null or 0 only)'),
};

/** The tasks the samplers work for: on detection and segmentation they keep k images unmixed, with their boxes / masks. */
export const SAMPLER_TASKS = ['classification', 'detection', 'segmentation'] as const;

/** The run's task as the plugin's deps give it (hand-made deps: classification). */
export function taskOf(deps: PluginDeps): Task {
  return deps.task ?? 'classification';
}

/** A mixing option set on a dense run: UNIX's mixup cannot mix boxes or masks (KD_PLUGIN_OPTIONS at the option). */
export function noMixingOnDense(deps: PluginDeps, option: string, value: unknown, instead: string): KdError {
  const task = taskOf(deps);
  return new KdError('KD_PLUGIN_OPTIONS', `'${deps.name}': ${option}: ${JSON.stringify(value)} mixes images, and the ${task === 'detection' ? 'boxes' : 'masks'} of a ${task} run cannot be mixed with them; on ${task} the sampler keeps k images unmixed`, {
    path: `${deps.specPath}.with.${option}`,
    fix: `${instead} (the kept images then train with their own ${task === 'detection' ? 'objects' : 'masks'})`,
  });
}

export const unixSchema = z
  .object({
    keep: keepOption,
    ...mixOptions,
    student: z.string().min(1).default('student').describe('role whose uncertainty ranks the batch (forward in training mode, no gradient)'),
  })
  .strict();
export type UnixOptions = z.output<typeof unixSchema>;

/** λ for this batch: the fixed value, or one Beta draw. */
export function drawLambda(rng: Rng, o: { alpha: number; beta: number; lambda: number | null }): number {
  return o.lambda ?? rng.beta(o.alpha, o.beta);
}

/** Kept training-set indices from the kept batch positions (null when the batch has none). */
export function keptIndices(indices: Int32Array | null, kept: Int32Array): Int32Array | null {
  return indices ? Int32Array.from(kept, (p) => indices[p]) : null;
}

/** A selection as plain JSON (checkpoints: `Plugin.getState`). */
export function selectionToJson(s: Selection | null): unknown {
  if (!s) return null;
  return {
    n: s.n,
    kept: Array.from(s.kept),
    keptIndices: s.keptIndices && Array.from(s.keptIndices),
    partners: Array.from(s.partners),
    lambda: s.lambda,
    m: Array.from(s.m),
    uncertainty: Array.from(s.uncertainty),
  };
}

export function selectionFromJson(j: unknown): Selection | null {
  if (!j) return null;
  const o = j as { n: number; kept: number[]; keptIndices: number[] | null; partners: number[]; lambda: number; m: number[]; uncertainty: number[] };
  return {
    n: o.n,
    kept: Int32Array.from(o.kept),
    keptIndices: o.keptIndices && Int32Array.from(o.keptIndices),
    partners: Int32Array.from(o.partners),
    lambda: o.lambda,
    m: Float64Array.from(o.m),
    uncertainty: Float32Array.from(o.uncertainty),
  };
}

export function toSelection(n: number, r: MixResult, indices: Int32Array | null, lambda: number, u: Float32Array): Selection {
  return { n, kept: r.kept, keptIndices: keptIndices(indices, r.kept), partners: r.partners, lambda, m: r.m, uncertainty: u };
}

/**
 * Keep the rows `order[0:k]` untouched: their images, labels, training-set indices and, on a dense
 * task, their objects / masks (`transformed: false`: these are the loaded images).
 */
export function keepUntouched(ctx: StepContext, order: ArrayLike<number>, keep: number, u: Float32Array): Selection {
  const { x, y, indices } = ctx.batch;
  const n = x.shape[0] as number;
  const r = mixAndKeep(x, y, { order, c: new Float64Array(n), lambda: 0, perm: order, keep });
  ctx.replaceBatch({ x: r.x, y: r.y, indices: keptIndices(indices, r.kept), ...keptTargets(ctx.batch, r.kept) }, { transformed: false });
  return { ...toSelection(n, r, indices, 0, u), partners: new Int32Array(0) };
}

/**
 * One UNIX step on `ctx.batch`: uncertainty of all N (student, training mode, no gradient, counted
 * in the ledger), rank, one λ and one partner permutation from the plugin's generator, mix, keep k.
 * Detection and segmentation: the dense uncertainty (`denseUncertainty`), then the k most uncertain
 * kept unmixed with their objects / masks; nothing is drawn.
 */
export function unixStep(ctx: StepContext, o: UnixOptions, task: Task = 'classification'): Selection {
  if (task !== 'classification') {
    const uD = tf.tidy(() => denseUncertainty(task, ctx.predictHeads(o.student, ctx.batch.x, { training: true })));
    const ud = Float32Array.from(uD.dataSync());
    uD.dispose();
    return keepUntouched(ctx, rankDescending(ud), o.keep, ud);
  }
  const { x, y, indices } = ctx.batch;
  const n = x.shape[0] as number;
  const uT = tf.tidy(() => entropyRows(tf.softmax(ctx.predict(o.student, x, { training: true }) as tf.Tensor2D)));
  const u = Float32Array.from(uT.dataSync());
  uT.dispose();
  const lambda = drawLambda(ctx.rng, o);
  const perm = ctx.rng.permutation(n);
  const r = mixAndKeep(x, y, { order: rankDescending(u), c: mixRatios(n, o), lambda, perm, keep: o.keep });
  ctx.replaceBatch({ x: r.x, y: r.y }, { transformed: true });
  return toSelection(n, r, indices, lambda, u);
}

/**
 * `sampler/unix`: UNIX (uncertainty-aware mixup). Teacher and student then see only the k kept,
 * mixed images; the labels are the kept source images' own labels.
 */
export const unixSampler: PluginDefinition<typeof unixSchema> = definePlugin({
  id: 'sampler/unix',
  kind: 'sampler',
  describe:
    'UNIX (Xu et al. 2020): rank the batch by the student’s predictive entropy, mix rank r with a random partner at ratio λ·sigmoid(w·(r/N − (2b−1)/(2N))), keep the k most uncertain (labels unmixed). Detection/segmentation: mean per-location entropy, the k most uncertain kept unmixed with their boxes/masks',
  options: unixSchema,
  tasks: SAMPLER_TASKS,
  stage: 'sample',
  transformsBatch: true,
  requires: (o) => ({ roles: [o.student] }),
  create(o, deps): SamplerPlugin {
    const role = deps.roles.find((r) => r.name === o.student);
    if (!role || role.kind !== 'student') {
      throw new KdError('KD_PLUGIN_DEPENDENCY', `'${deps.name}': option student '${o.student}' names no student role of this run (roles: ${deps.roles.map((r) => r.name).join(', ')})`, {
        path: `${deps.specPath}.with.student`,
        fix: "use 'student', or 'student.0', 'student.1', … in a `students:` run",
      });
    }
    const task = taskOf(deps);
    if (task !== 'classification') {
      if (o.lambda !== null && o.lambda > 0) throw noMixingOnDense(deps, 'lambda', o.lambda, 'drop `lambda` (or set it to 0)');
      const names = deps.model?.(o.student).outputNames;
      if (names && uncertaintyOutputs(task, names).length === 0) {
        throw new KdError('KD_PLUGIN_DEPENDENCY', `'${deps.name}' ranks a ${task} batch by the student's ${task === 'detection' ? 'class heads (outputs named cls_…)' : "per-pixel logits (an output named 'logits')"}; '${o.student}' has the outputs ${names.join(', ')}`, {
          path: `${deps.specPath}.with.student`,
          fix: `use a ${task === 'detection' ? 'detector' : 'segmenter'} zoo model for '${o.student}'`,
        });
      }
    }
    let last: Selection | null = null;
    return {
      name: deps.name,
      register(bus) {
        bus.on('batchStart', (ctx) => void (last = unixStep(ctx, o, task)));
      },
      lastSelection: () => last,
      // Its draws (λ, partners) come from the plugin's generator, which the engine checkpoints; the
      // last selection is kept too, so lastSelection() reads the same after a resume.
      getState: () => ({ last: selectionToJson(last) }),
      setState: (state) => void (last = selectionFromJson((state as { last: unknown }).last)),
    };
  },
});
