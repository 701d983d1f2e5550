import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import type { Rng } from './rng';
import type { ObjectList } from './task';

/**
 * The lifecycle, in firing order. A run fires `runStart`, then per phase and epoch `epochStart`,
 * per batch `batchStart` → `loss` → `batchEnd`, then `epochEnd` (after evaluation: `evalBatch` per
 * test batch and role, `evalEnd`), and finally `runEnd`.
 */
export const HOOKS = [
  'runStart',
  'epochStart',
  'batchStart',
  'loss',
  'batchEnd',
  'evalBatch',
  'evalEnd',
  'epochEnd',
  'runEnd',
] as const;
export type HookName = (typeof HOOKS)[number];

/** Hooks whose payload holds tensors: handlers run inside the step's tidy scope and must be synchronous. */
export const TENSOR_HOOKS = ['batchStart', 'loss', 'evalBatch'] as const;
export type TensorHook = (typeof TENSOR_HOOKS)[number];
export type NumberHook = Exclude<HookName, TensorHook>;

export function isTensorHook(hook: HookName): hook is TensorHook {
  return (TENSOR_HOOKS as readonly string[]).includes(hook);
}

/** Order inside one hook: by stage, then by spec order. */
export const STAGES = ['sample', 'default', 'observe'] as const;
export type Stage = (typeof STAGES)[number];

/**
 * `player`: a further trainable model of the run (spec `players:`, an adversarial critic) with its
 * own optimizer and its own objective, trained in alternation with the students (`ctx.player`).
 */
export type RoleKind = 'teacher' | 'student' | 'player';

export interface RoleInfo {
  name: string;
  kind: RoleKind;
  trainable: boolean;
}

/** What one role's forward pass yields: logits and the tapped layer outputs by layer name. */
export interface RoleOutputs {
  logits: Tensor;
  taps: Record<string, Tensor>;
  /**
   * Detection and segmentation runs: every output of the role's model by output name (a detector's
   * `cls_p3`, `box_p3`, …; a segmenter's `logits`), the first one being `logits`. Absent in
   * classification runs.
   */
  heads?: Record<string, Tensor>;
}

export interface Batch {
  /** Images, NHWC (or the flat shape a role's model takes: the engine reshapes per role). */
  x: Tensor;
  /** Integer class labels, int32 [n]. */
  y: Tensor;
  /** Indices of the samples in the training set, or null once a sampler transformed the batch. */
  indices: Int32Array | null;
  size: number;
  /**
   * Soft label targets float32 [n, K], rows summing to 1, when a mixing augmentation set them
   * (`augment/mixup`, `augment/cutmix`); absent otherwise. `y` then holds each image's own label.
   * Losses that train on labels read `labelTargets(batch)` (kd-core), which prefers these.
   */
  targets?: Tensor;
  /**
   * Named image views (`weak`, `strong`, …): the same samples as `x`, in the same order and of the
   * same shape, each transformed by its own augmentations (`ctx.setView`; `augment/*` with
   * `view: <name>`). A role whose spec says `input: <name>` sees that view instead of `x`. A view no
   * plugin wrote in this step (its plugins are inactive in a stage) is absent here, and a role
   * reading it sees `x`. Tensors of the step: freed with it, like `x`.
   */
  views?: Readonly<Record<string, Tensor>>;
  /** `task: detection`: the objects of each image of the batch (boxes in pixels, classes), in batch order. Read them, do not change them. */
  objects?: readonly ObjectList[];
  /** `task: segmentation`: per-pixel classes int32 [n, H, W]. */
  masks?: Tensor;
}

/**
 * What a plugin of stage `sample` writes into the batch, declared so the plan can check it before
 * anything trains: the image views it writes (`ctx.setView`) and whether it sets soft targets. A
 * `PluginDefinition` may carry it as an extra member `writes(options)` (`@tfkd/augment` does);
 * `batchWrites(def, options)` reads it.
 */
export interface BatchWrites {
  /** Names of the image views the plugin writes (a role's `input:` may name them). */
  views?: readonly string[];
  /** Whether it sets soft label targets (`augment/mixup`, `augment/cutmix`). */
  targets?: boolean;
}

/** A plugin definition that declares what it writes into the batch (see `BatchWrites`). */
export interface BatchWriter<O = never> {
  writes(options: O): BatchWrites;
}

/** What a definition declares it writes into the batch with these options (`{}`: nothing declared). */
export function batchWrites(def: unknown, options: unknown): BatchWrites {
  const w = (def as Partial<BatchWriter<unknown>> | null)?.writes;
  return typeof w === 'function' ? w.call(def, options) : {};
}

/**
 * Which gradient a loss term belongs to, for an optimizer that treats the two apart (DOT,
 * `train.optimizer: { name: dot }`): `task` (the labels' loss: cross-entropy, label smoothing) or
 * `distill` (what a teacher or a peer teaches). Other optimizers step on the sum.
 */
export type LossObjective = 'task' | 'distill';

export interface LossTerm {
  /** Name as logged; defaults to the plugin's name. */
  name?: string;
  value: Scalar;
  /** Multiplies the plugin's spec `weight`. Default 1. */
  weight?: number;
  /** This term's gradient under DOT; default: the plugin's (`PluginDefinition.objective`). */
  objective?: LossObjective;
}

/** The per-step context handed to `batchStart` and `loss` handlers. Tensors live until the step ends. */
export interface StepContext {
  readonly phase: string;
  /** 1-based epoch within the phase. */
  readonly epoch: number;
  readonly epochs: number;
  /** 0-based batch index within the epoch. */
  readonly batchIndex: number;
  /** Global step count within the phase (0-based). */
  readonly step: number;
  readonly numClasses: number;
  readonly roles: readonly RoleInfo[];
  /** The plugin's own seeded generator (forked per plugin, state saved with checkpoints). */
  readonly rng: Rng;
  readonly batch: Batch;
  /**
   * Samplers: replace the batch. `transformed` (mixed, augmented) disables the teacher-output cache.
   * `targets` [n, K] sets soft label targets; a batch that has them can only be replaced by one that
   * carries them on (an error otherwise: the soft targets would be lost silently).
   */
  replaceBatch(
    batch: {
      x: Tensor;
      y: Tensor;
      indices?: Int32Array | null;
      targets?: Tensor | null;
      views?: Readonly<Record<string, Tensor>> | null;
      /** Dense tasks: the batch's objects / masks must be carried on (for the new images), else it is an error. */
      objects?: readonly ObjectList[] | null;
      masks?: Tensor | null;
    },
    opts: { transformed: boolean },
  ): void;
  /**
   * Samplers: set the named image view `name` (`batch.views[name]`), leaving `x` and the other views
   * as they are. `x` must have the batch's shape (the same samples, in the same order). A view is
   * always a transformed image: a role reading it gets no teacher-output cache. To continue a view,
   * read it first: `ctx.batch.views?.[name] ?? ctx.batch.x` (a view starts as the main images as they
   * are when it is first written). Views survive `replaceBatch` only when it carries them on (`views`).
   */
  setView(name: string, x: Tensor): void;
  /**
   * The batch as `role` sees it: the role's images — the view its spec names (`input: strong`), else
   * `x` — with its `view:` applied (resized for cross-quality KD) and reshaped to its input. `view`
   * picks other images for the role: a view's name (`x` when no plugin wrote it this step), or null
   * for the main images `x`; for a loss that runs a role on several views itself (`ctx.apply`).
   */
  input(role: string, view?: string | null): Tensor;
  /** Inference outside the loss (no gradient), counted in the ledger. `training` selects dropout/BN mode. */
  predict(role: string, x: Tensor, opts?: { training?: boolean }): Tensor;
  /**
   * `predict` with every output of the role's model by output name (a detector's `cls_p3`, `box_p3`,
   * …; a segmenter's `logits`; a classifier's one output): one forward, no gradient, counted as
   * `predict` is. For a sampler that ranks a dense task's batch by more than the first output.
   */
  predictHeads(role: string, x: Tensor, opts?: { training?: boolean }): Record<string, Tensor>;
  /**
   * The role's logits for a given input `x` (as `input(role)` gives it: the role's view applied) **on the
   * step's gradient tape**: nothing is stopped, so a loss can differentiate through it with respect to
   * `x` (input gradients: gradient-based attention) — a frozen teacher's weights still are not trained.
   * Counted in the ledger as a forward of `x`'s images, plus a backward with `backward: true` (for a loss
   * that takes a gradient through it). `training` selects dropout/BN mode (default false).
   */
  apply(role: string, x: Tensor, opts?: { training?: boolean; backward?: boolean }): Tensor;
  /** Lazy forward of the current batch; teachers without gradient, students with. Cached per step. */
  outputs(role: string): RoleOutputs;
  /**
   * A player's model (spec `players:`, e.g. an adversarial critic) as a function of its input, in
   * training mode, never cached: every call is a forward, counted in the ledger. In a student's loss
   * its gradient reaches the input (the student's map) but never the player's weights — only the
   * player's own step trains them (`PluginDefinition.player`). In that step (`Plugin.playerLoss`) the
   * context's `outputs()` are detached: the step's student and teacher outputs behind a stop-gradient.
   */
  player(name: string): (x: Tensor) => Tensor;
  addLoss(term: LossTerm): void;
}

export interface RunStartInfo {
  runId: string;
  backend: string;
  seed: number;
  roles: readonly RoleInfo[];
  phases: readonly { name: string; epochs: number; batchesPerEpoch: number }[];
  dataset: { name: string; source: string; train: number; test: number; note?: string };
  /**
   * Set when the run continues from a checkpoint: the next step to run and the steps already taken.
   * The engine restores every saved state (weights, optimizers, plugin variables, buffers and
   * `getState`, generators) right after `runStart`, so a plugin may skip expensive initialisation
   * here. With `batchIndex > 0` the run resumes inside that epoch, and its `epochStart` does not fire again.
   */
  resumed?: { epoch: number; batchIndex: number; step: number; phase?: string };
}

export interface EpochStartInfo {
  phase: string;
  epoch: number;
  epochs: number;
}

export interface BatchSummary {
  phase: string;
  epoch: number;
  batchIndex: number;
  batchesPerEpoch: number;
  step: number;
  /** Weighted total loss. */
  loss: number;
  /** Unweighted value of every term, by term name. */
  terms: Record<string, number>;
  learningRate: number;
  images: number;
}

export interface EvalBatch {
  phase: string;
  epoch: number;
  role: string;
  /** Logits [n, K] of the role on this test batch. */
  logits: Tensor;
  /** Labels int32 [n]. */
  labels: Tensor;
  /**
   * Auxiliary outputs of a multi-output model (BYOT's early-exit heads), by output layer name, on
   * the same batch; absent for single-output models.
   */
  outputs?: Record<string, Tensor>;
  /** Detection and segmentation runs: every output by name, the first (`logits`) included. */
  heads?: Record<string, Tensor>;
  /** `task: detection`: the ground-truth objects of each test image of the batch. */
  objects?: readonly ObjectList[];
  /** `task: segmentation`: ground-truth classes int32 [n, H, W]. */
  masks?: Tensor;
}

/** Evaluation results by role, then metric name. Metric plugins add to it in their `evalEnd` handler. */
export interface EvalReport {
  phase: string;
  epoch: number;
  metrics: Record<string, Record<string, number>>;
  /** Add (or overwrite) metric values of a role. */
  set(role: string, values: Record<string, number>): void;
}

export interface EpochSummary {
  phase: string;
  epoch: number;
  epochs: number;
  /** Mean of each term over the epoch, and `loss`. */
  train: Record<string, number>;
  eval: Record<string, Record<string, number>>;
  seconds: number;
  learningRate: number;
}

export interface RunSummary {
  status: 'completed' | 'failed' | 'interrupted';
  seconds: number;
  eval: Record<string, Record<string, number>>;
}

export interface HookPayloads {
  runStart: RunStartInfo;
  epochStart: EpochStartInfo;
  batchStart: StepContext;
  loss: StepContext;
  batchEnd: BatchSummary;
  evalBatch: EvalBatch;
  evalEnd: EvalReport;
  epochEnd: EpochSummary;
  runEnd: RunSummary;
}

/** The discriminated union carried by the bus. */
export type LifecycleEvent = { [K in HookName]: { hook: K; payload: HookPayloads[K] } }[HookName];
/** Events observers see: numbers only. */
export type ObservedEvent = Extract<LifecycleEvent, { hook: NumberHook }>;

export type HookHandler<K extends HookName> = K extends TensorHook
  ? (payload: HookPayloads[K]) => void
  : (payload: HookPayloads[K]) => void | Promise<void>;
