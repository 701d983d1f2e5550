import type { Scalar, Variable } from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { z } from 'zod';
import type { HookHandler, HookName, LossObjective, RoleInfo, Stage, StepContext } from './hooks';
import type { Rng } from './rng';
import type { Storage } from './storage';
import type { Task } from './task';
import type { TrainingAccess } from './training-access';

export type PluginKind = 'loss' | 'sampler' | 'metric' | 'observer' | 'method';

/** What a plugin needs from the run, checked at start-up before any training. */
export interface PluginRequirements {
  /** Role names that must exist, matched exactly (`teacher`, `student`, `student.1`). */
  roles?: string[];
  /** Taps as `role.layerName` (`student.block2`, `teacher.block3`). */
  taps?: string[];
  /** Named image views the plugin reads (`weak`, `strong`): some plugin before it must write each (checked at start-up). */
  views?: string[];
  /**
   * Players (keys of the spec's `players:`) the plugin reads through `ctx.player(name)`, the one it
   * trains included: each must be declared in the spec (KD_PLUGIN_DEPENDENCY at plan time otherwise).
   */
  players?: string[];
}

/**
 * A plugin that trains a player (spec `players:`, an adversarial critic): which player, and how its
 * model is built. The player's objective is the instance's `playerLoss`; the engine differentiates it
 * in the player's weights only and steps the player's own optimizer after every student step,
 * `stepsPerStudentStep` times. Exactly one plugin trains each player.
 */
export interface PlayerDefinition<O = unknown> {
  /** The player this plugin trains (a key of `players:`), as its options name it. */
  role(options: O): string;
  /** Schema of the player's model options (spec `players.<name>.options`); absent: it takes none. */
  options?: z.ZodType;
  /**
   * Builds the player's model at start-up (at plan time too), once the run's roles exist:
   * `deps.model(role)` gives their shapes. `player.options` are validated by `options`; `player.seed`
   * is its initialisation seed (the spec's `players.<name>.seed`, else derived from the run's).
   */
  build(options: O, deps: PluginDeps, player: { name: string; options: unknown; seed: number }): LayersModel;
}

/** The bus as one plugin sees it: subscriptions are attributed to the plugin for ordering and errors. */
export interface PluginBus {
  on<K extends HookName>(hook: K, handler: HookHandler<K>): void;
}

/** What `create` receives besides its validated options. */
export interface PluginDeps {
  /** Instance name: the spec's `name:` or the plugin id. */
  name: string;
  /** The spec's `weight:` for this entry (default 1); `defineLoss` applies it. */
  weight: number;
  numClasses: number;
  /** NHWC shape of one input image. */
  inputShape: number[];
  roles: readonly RoleInfo[];
  /** Output shape (without batch) of a tap `role.layer`, known at start-up. */
  tapShape(tap: string): number[];
  /**
   * The hidden layers of a role's model (not its inputs, not its output layers; of a zoo model, its
   * documented taps) with their output shapes (without batch), in model order: for error messages
   * that name the layers that would fit.
   * Set by the engine; absent in hand-made deps.
   */
  layerShapes?(role: string): { layer: string; shape: number[] }[];
  /** Seeded generator owned by this plugin instance. */
  rng: Rng;
  /** A line for the run's log (stderr in the CLI). Set by the engine; absent in hand-made deps. */
  log?(line: string): void;
  /**
   * The run's storage port (files on Node, what the host gives in a browser), for a plugin that keeps
   * files of its own. Set by the engine; absent in hand-made deps.
   */
  storage?: Storage;
  /** The spec path of this entry (`plugins[2]`), for error messages. */
  specPath: string;
  /** The run's task (spec `task:`). Set by the engine; absent in hand-made deps: classification. */
  task?: Task;
  /**
   * Forward FLOPs per image of the sub-graph that computes these layers (`role.layerName`, one or
   * several) from the role's input: the cost of an early exit up to a head, say. Any layer of the
   * role's model, declared in `requires().taps` or not. Set by the engine; absent in hand-made deps.
   */
  tapFlops?(taps: string | readonly string[]): number;
  /**
   * A role's model as the run built or loaded it (the weights `ctx.outputs(role)` forwards with), for
   * a method that computes with the weights itself: NetAug reads the student's kernels inside its
   * loss as the leading slice of wider layers, so the gradient reaches them. Read it; never change its
   * structure or its weights from a tensor hook. Set by the engine; absent in hand-made deps.
   */
  model?(role: string): LayersModel;
  /**
   * The training set and the roles' forward outside a step (the engine always provides it; hand-built
   * deps in unit tests may not): for a pre-training stage run on `runStart` (FT's paraphraser), or
   * state sized by the training set (CRD's memory bank).
   */
  training?: TrainingAccess;
}

/** A plugin instance. Small: a name, a `register`, and optional trainable state. */
export interface Plugin {
  readonly name: string;
  register(bus: PluginBus): void;
  /** Trainable variables owned by the plugin (adapters, embedding heads), trained with the students. */
  variables?(): Variable[];
  /**
   * Tensor state that is not trained (torch's "buffers"): a frozen paraphraser, a memory bank.
   * Never given to an optimizer; saved with the adapters (`savePluginStates`) next to `variables()`.
   */
  buffers?(): Variable[];
  /**
   * The objective of the player this plugin trains (`PluginDefinition.player`), on the step's
   * context: its `outputs()` detached. Called after the students' update, once per player step.
   */
  playerLoss?(ctx: StepContext): Scalar;
  /** JSON-serialisable state for checkpoints (tensors go through `variables`). */
  getState?(): unknown;
  setState?(state: unknown): void;
  dispose?(): void;
}

/** What a package binds to PLUGIN_DEFINITION. */
export interface PluginDefinition<S extends z.ZodType = z.ZodType> {
  /** `family/name`, e.g. `loss/hinton-kd`. Stable: specs name it. */
  id: string;
  kind: PluginKind;
  describe: string;
  /** Options schema with defaults (zod); `kd list` prints it. */
  options: S;
  /** Default `sample` for samplers, `default` otherwise. */
  stage?: Stage;
  /**
   * Which gradient the plugin's loss terms belong to under DOT (`train.optimizer: { name: dot }`):
   * `task` or `distill`; `mixed`: the plugin gives each term its own (`LossTerm.objective`; a term
   * without one counts as `distill`). Absent: {@link lossObjective}'s default — `task` when the plugin
   * reads no role besides (at most) one student, `distill` when it reads a teacher or a peer.
   */
  objective?: LossObjective | 'mixed';
  /**
   * The run tasks (spec `task:`) the plugin works for; absent: classification only. A plugin on a
   * run of another task is KD_TASK_MISMATCH at plan time. Declare a task only when the plugin reads
   * (or transforms) that task's targets correctly: an augmentation that moves pixels must move boxes
   * and masks too before it declares detection or segmentation.
   */
  tasks?: readonly Task[];
  /** Whether this plugin transforms batches (samplers that mix): disables the teacher-output cache. */
  transformsBatch?: boolean | ((options: z.output<S>) => boolean);
  requires?(options: z.output<S>): PluginRequirements;
  /**
   * Multi-generation methods (born-again): how many generations of the student the run trains, one
   * engine run each (`runGenerations`). The driver sets this entry's option `generation` (1-based)
   * for each run and loads generation g − 1 as the role `teacher` of generation g. Absent: one run.
   */
  generations?(options: z.output<S>): number;
  /** A plugin that trains a player (spec `players:`): which one, and how its model is built. Its instances give `playerLoss`. */
  player?: PlayerDefinition<z.output<S>>;
  create(options: z.output<S>, deps: PluginDeps): Plugin;
}

/**
 * The objective of a plugin's loss terms (DOT's task or distillation gradient): its definition's
 * `objective` if it declares one; otherwise `task` when the roles it reads (`requires().roles` and
 * the roles of its taps) are at most one student — cross-entropy, label smoothing — and `distill`
 * when they include a teacher or a second student (a peer).
 */
export function lossObjective(
  def: Pick<PluginDefinition, 'objective'>,
  requirements: PluginRequirements,
  students: readonly string[],
): LossObjective | 'mixed' {
  if (def.objective) return def.objective;
  const read = new Set([...(requirements.roles ?? []), ...(requirements.taps ?? []).map((t) => t.slice(0, t.lastIndexOf('.')))]);
  return read.size > 1 || [...read].some((r) => !students.includes(r)) ? 'distill' : 'task';
}

/** Identity helper that keeps the options type flowing from the schema into `create`. */
export function definePlugin<S extends z.ZodType>(def: PluginDefinition<S>): PluginDefinition<S> {
  return def;
}
