// The run spec (YAML) as zod schemas — roles and their views, players, plugins, stages, `RunSpec` —
// and its text: parsing, `--set` overrides, printing. The training recipe's schemas (optimizer,
// schedule, `train:`) are in train-spec.ts and `validate` (a zod issue as a KdError) in validate.ts;
// both are re-exported here.
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { z } from 'zod';
import { KdError } from './errors';
import { TASKS } from './task';
import { PlayerTrainSpec, TrainOverride, TrainSpec } from './train-spec';
import { validate } from './validate';

export * from './train-spec';
export { formatPath, validate } from './validate';

/**
 * A further trainable model of the run (an adversarial critic): built by the plugin that trains it
 * (a plugin option names the player, e.g. `critic: critic`), with its own optimizer, updated after
 * every student step, `stepsPerStudentStep` times. See docs/spec.md#players.
 */
export const PlayerSpec = z
  .object({
    /** Options of the player's model (its builder's schema: `kd list` shows them with the plugin). */
    options: z.record(z.string(), z.unknown()).default({}),
    train: PlayerTrainSpec.default(() => PlayerTrainSpec.parse({})),
    /** Player updates after every student update (each on the same batch, a fresh objective). */
    stepsPerStudentStep: z.number().int().positive().max(100).default(1),
    /** Initialisation seed; default derived from the run's. */
    seed: z.number().int().min(0).optional(),
  })
  .strict();
export type PlayerSpec = z.output<typeof PlayerSpec>;

/** A player's name: lower-case letters, digits, `-` and `_`, starting with a letter (`critic`). */
export const PlayerName = z
  .string()
  .regex(
    /^[a-z][a-z0-9_-]*$/,
    'a player name is lower-case letters, digits, - and _, starting with a letter (e.g. critic)',
  );

export const ViewSpec = z
  .object({
    /** Bilinear resize of this role's input to [h, w] (cross-quality KD). */
    resize: z
      .tuple([z.number().int().positive().max(4096), z.number().int().positive().max(4096)])
      .optional(),
    /** Resize back to the original size after down-sampling. */
    upsample: z.boolean().default(false),
  })
  .strict();
export type ViewSpec = z.output<typeof ViewSpec>;

/**
 * The name of an image view (`weak`, `strong`): a letter, then letters, digits, `_` or `-`. Written
 * by sample-stage plugins (`augment/*` with `view: <name>`), read by a role with `input: <name>`.
 */
export const ViewName = z
  .string()
  .max(64)
  .regex(
    /^[A-Za-z][A-Za-z0-9_-]*$/,
    'a view name is a letter, then letters, digits, _ or - (e.g. weak, strong)',
  );

export const RoleSpec = z
  .object({
    /** Zoo id (`kd list` shows them). */
    model: z.string().min(1).optional(),
    /** Options of the zoo model (hidden sizes, widths, …). */
    options: z.record(z.string(), z.unknown()).default({}),
    /** A saved LayersModel folder (model.json + weights.bin) instead of a zoo model. */
    load: z.string().min(1).optional(),
    /** Teachers: train from labels first (cached by the hash of this spec). Students: overrides of `train`. */
    train: TrainOverride.optional(),
    view: ViewSpec.optional(),
    /**
     * The image view this role sees (a name an augmentation writes with `view: <name>`): absent, the
     * batch's main images. Its `view:` (resize) then applies to that view.
     */
    input: ViewName.optional(),
    /** Initialisation (and, for a trained teacher, training) seed; default: the run's seed. */
    seed: z.number().int().min(0).optional(),
  })
  .strict()
  .refine((r) => (r.model === undefined) !== (r.load === undefined), {
    message: 'give exactly one of `model` (a zoo id) or `load` (a saved model folder)',
  });
export type RoleSpec = z.output<typeof RoleSpec>;

export const PluginEntry = z
  .object({
    use: z.string().min(1),
    with: z.record(z.string(), z.unknown()).default({}),
    weight: z.number().finite().default(1),
    name: z.string().min(1).optional(),
  })
  .strict();
export type PluginEntry = z.output<typeof PluginEntry>;

/**
 * An entry of a stage's `plugins:`. A `name` (or, without `name`, the id of `use`) that is also a
 * plugin of the main `plugins:` list (or of an earlier stage) selects that same instance — its
 * adapters carry over; `with`, when given, must equal that instance's options, and `weight`
 * overrides its weight for the stage only. Any other entry is a new instance (then `use` is needed).
 */
export const StagePluginEntry = z
  .object({
    use: z.string().min(1).optional(),
    with: z.record(z.string(), z.unknown()).optional(),
    weight: z.number().finite().optional(),
    name: z.string().min(1).optional(),
  })
  .strict();
export type StagePluginEntry = z.output<typeof StagePluginEntry>;

/**
 * A declared stage before the main distillation phase (FitNets' hint stage, RepDistiller's `init`
 * stage): its own epochs, its own optimizer (fresh per student), the plugins active in it, and
 * optionally `trainUpTo: <layer>` (only the student's layers up to that layer train).
 */
export const StageSpec = z
  .object({
    name: z
      .string()
      .regex(
        /^[a-z][a-z0-9_-]*$/,
        'a stage name is lower-case letters, digits, - and _, starting with a letter (e.g. hint, init)',
      ),
    epochs: z.number().int().positive(),
    plugins: z.array(StagePluginEntry),
    /** Overrides of the run's `train` for this stage (its epochs are the stage's `epochs`). */
    train: TrainOverride.omit({ epochs: true }).optional(),
    /** Train only the student layers that the named layer depends on (itself included); the rest stay frozen. */
    trainUpTo: z.string().min(1).optional(),
  })
  .strict();
export type StageSpec = z.output<typeof StageSpec>;

export const RunSpec = z
  .object({
    seed: z.number().int().min(0).default(1),
    backend: z.enum(['auto', 'wasm', 'cpu', 'tensorflow']).default('auto'),
    /**
     * What the run trains for: `classification` (absent: the default), `detection` (boxes + classes
     * per image, `metric/map`) or `segmentation` (per-pixel classes, `metric/miou`). Plugins, the
     * dataset and zoo models must support it (KD_TASK_MISMATCH at plan time otherwise).
     */
    task: z.enum(TASKS).optional(),
    /** `name` picks a dataset definition (`fashion-mnist`, `synthetic`, `cifar10`, …); the rest are its options. */
    data: z
      .object({
        name: z.string().min(1),
        /**
         * Model selection without the test set: hold `fraction` of the training data out (a seeded
         * split that depends only on the training set's size and `seed`, not on the run's seed), train
         * on the rest, and report every evaluation on the held-out part instead of the test split.
         */
        validation: z
          .object({ fraction: z.number().gt(0).lt(1).default(0.1), seed: z.number().int().min(0).default(0) })
          .strict()
          .optional(),
        /**
         * Class imbalance: keep the first round(n_c · f_c) training samples of class c (file order, so
         * the same samples for every seed); one fraction in [0, 1] per class. The test split is untouched.
         */
        classFractions: z.array(z.number().min(0).max(1)).min(1).optional(),
      })
      .passthrough(),
    teacher: RoleSpec.optional(),
    student: RoleSpec.optional(),
    /** Several students (DML, ONE): roles `student.0`, `student.1`, … */
    students: z.array(RoleSpec).min(1).optional(),
    /** Further trainable models with their own optimizers (adversarial critics), by name; see docs/spec.md#players. */
    players: z.record(PlayerName, PlayerSpec).optional(),
    train: TrainSpec.default(() => TrainSpec.parse({})),
    plugins: z.array(PluginEntry).default([]),
    /** Stages run in order before the main phase (`train` + `plugins`); see docs/spec.md#stages. Absent: one phase. */
    stages: z.array(StageSpec).optional(),
    /** Extra plugin packages to load (module names or paths), each exporting a ContainerModule. */
    packages: z.array(z.string().min(1)).default([]),
    /** Metrics on the test split: `accuracy` is always computed; others name `metric/<id>` plugins. */
    eval: z.array(z.string().min(1)).default(['accuracy']),
    /** What to do when a loss or gradient is NaN/Inf. */
    nonFinite: z.enum(['stop', 'skip-batch']).default('stop'),
    /**
     * Cache frozen teachers' outputs per training sample (`auto`: on when no sampler transforms the
     * batches and the cache fits in `teacherCacheMB`).
     */
    teacherCache: z.enum(['auto', 'off']).default('auto'),
    teacherCacheMB: z.number().positive().default(512),
    /**
     * Post-hoc calibration: hold `holdout` of the training data out of training and fit one
     * temperature per student on it (NLL); results report ECE/NLL before and after.
     */
    calibrate: z
      .object({ method: z.literal('temperature'), holdout: z.number().gt(0).lt(1).default(0.1) })
      .strict()
      .optional(),
    /** Evaluate every n epochs (and always after the last). */
    evalEvery: z.number().int().positive().default(1),
  })
  .strict()
  .refine((s) => s.student !== undefined || s.students !== undefined, {
    message: 'a run needs a `student` (or `students`)',
    path: ['student'],
  })
  .refine((s) => !(s.student !== undefined && s.students !== undefined), {
    message: 'give `student` or `students`, not both',
    path: ['students'],
  });
export type RunSpec = z.output<typeof RunSpec>;
export type RunSpecInput = z.input<typeof RunSpec>;

/** Parse YAML (or JSON) text into a raw spec object (not yet validated). `source` names the file in errors. */
export function parseSpecText(text: string, source = 'spec'): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: true });
  } catch (e) {
    throw new KdError('KD_SPEC_PARSE', `${source} is not valid YAML: ${(e as Error).message}`, {
      path: source,
      fix: 'check indentation and quoting near the line shown',
      cause: e,
    });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new KdError('KD_SPEC_INVALID', `${source} must be a mapping (seed:, data:, student:, …)`, {
      path: '(root)',
      fix: 'start from examples/fashion-kd.yaml',
    });
  }
  return raw as Record<string, unknown>;
}

/** Parse and validate: YAML text (plus `--set path=value` overrides) to a RunSpec with defaults filled in. */
export function parseSpec(text: string, source = 'spec', overrides: readonly string[] = []): RunSpec {
  return validate(RunSpec, applyOverrides(parseSpecText(text, source), overrides));
}

/** Keys that would reach an object's prototype instead of a spec field. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Apply `--set a.b[0].c=value` overrides (value parsed as YAML) to a raw spec object. Every failure
 * is a KdError at the override: a value that is not YAML (KD_SPEC_PARSE), a prototype key, a name
 * used on a list, or a list index past its end (KD_SPEC_INVALID; an index may append one entry).
 */
export function applyOverrides(
  raw: Record<string, unknown>,
  sets: readonly string[],
): Record<string, unknown> {
  const out = structuredClone(raw);
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq <= 0) {
      throw new KdError('KD_SPEC_INVALID', `--set '${s}' is not path=value`, {
        path: s || '--set',
        fix: 'write e.g. --set train.epochs=5',
      });
    }
    const target = s.slice(0, eq);
    const keys = target
      .split(/\.|\[(\d+)\]/)
      .filter((k) => k !== undefined && k !== '')
      .map((k) => (/^\d+$/.test(k) ? Number(k) : k));
    const bad = (message: string, fix: string) =>
      new KdError('KD_SPEC_INVALID', `--set '${s}': ${message}`, { path: target, fix });
    if (keys.length === 0) throw bad('names no spec field', 'write e.g. --set train.epochs=5');
    let value: unknown;
    try {
      value = parseYaml(s.slice(eq + 1));
    } catch (e) {
      throw new KdError(
        'KD_SPEC_PARSE',
        `--set '${s}': the value is not valid YAML: ${(e as Error).message.split('\n')[0]}`,
        {
          path: target,
          fix: "quote the value for the shell and YAML, e.g. --set 'plugins[0].with.pairs=[[student.block2, teacher.block3]]'",
          cause: e,
        },
      );
    }
    let node: Record<string | number, unknown> = out;
    keys.forEach((k, i) => {
      if (typeof k === 'string' && FORBIDDEN_KEYS.has(k))
        throw bad(`'${k}' is not a spec field`, 'name a field of the spec, e.g. --set train.epochs=5');
      if (Array.isArray(node)) {
        if (typeof k !== 'number')
          throw bad(
            `'${keys.slice(0, i).join('.')}' is a list: index it, e.g. [0]`,
            `write e.g. ${keys.slice(0, i).join('.')}[0].${k}=…`,
          );
        if (k > node.length)
          throw bad(
            `index ${k} is past the end of a list of ${node.length}`,
            `use an index up to ${node.length} (${node.length} appends)`,
          );
      }
      if (i === keys.length - 1) {
        node[k] = value;
        return;
      }
      if (typeof node[k] !== 'object' || node[k] === null)
        node[k] = typeof keys[i + 1] === 'number' ? [] : {};
      node = node[k] as Record<string | number, unknown>;
    });
  }
  return out;
}

export function stringifySpec(spec: unknown): string {
  return stringifyYaml(spec, { lineWidth: 110 });
}
