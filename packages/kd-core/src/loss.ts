import type { Scalar, Variable } from '@tensorflow/tfjs-core';
import type { z } from 'zod';
import { KdError } from './errors';
import type { HookHandler, HookName, LossObjective, StepContext } from './hooks';
import type { PlayerDefinition, Plugin, PluginBus, PluginDefinition, PluginDeps, PluginRequirements } from './plugin';
import type { Task } from './task';

/** A named term with its own weight (multiplied by the entry's spec `weight:`). */
export interface WeightedTerm {
  value: Scalar;
  weight: number;
  /** This term's gradient under DOT (a `mixed` loss labels its terms); default: the loss's `objective`. */
  objective?: LossObjective;
}

/**
 * What `compute` returns for a step: a scalar (logged as the plugin's name), or named terms
 * (`{ distance, angle }`, `{ 'student.0:ce': …, 'student.0:kl': … }`) logged as `<name>:<key>` in
 * insertion order, each a scalar or a `WeightedTerm` (`{ ce: { value, weight: 1 − α } }`: logged
 * unweighted, summed as spec weight × term weight × value).
 */
export type LossValue = Scalar | Record<string, Scalar | WeightedTerm>;

/** Handlers of the hooks a loss may need beside `loss`: FT's paraphraser pre-training on `runStart`, BYOT's per-exit evaluation on `evalBatch`/`evalEnd`. */
export type LossHooks = { [K in Exclude<HookName, 'loss'>]?: HookHandler<K> };

/**
 * What `setup` builds once per plugin instance, at start-up; `compute` receives it back on every
 * step. Besides whatever the loss keeps for itself (adapters, a cohort, memory banks), the fields
 * below become the plugin's: `variables` and `buffers` keep their order (checkpoints save them by
 * position) and are disposed with the plugin, as is anything `dispose` frees.
 */
export interface LossState {
  /** Trainable tensors (adapters, regressors, embedding heads), trained with the students: `Plugin.variables`. */
  variables?: Variable[];
  /** Untrained tensor state (FT's frozen paraphraser, CRD's memory banks): `Plugin.buffers`. */
  buffers?: Variable[];
  /** JSON state saved with the checkpoint (`Plugin.getState` / `setState`). */
  getState?(): unknown;
  setState?(state: unknown): void;
  hooks?: LossHooks;
  /** Frees what is not in `variables` or `buffers` (those are disposed by the plugin). */
  dispose?(): void;
}

export interface LossDefinition<S extends z.ZodType, T extends object = object> {
  id: string;
  describe: string;
  options: S;
  /**
   * Every role and tap the loss reads, declared once. The engine builds the taps and checks both
   * before any training; the plugin checks at creation that every role is one of the run's, by its
   * exact name, and that no two role options name the same role.
   */
  requires?(options: z.output<S>): PluginRequirements;
  /** Multi-generation methods (born-again): `PluginDefinition.generations`. */
  generations?(options: z.output<S>): number;
  /** Its terms' gradient under DOT (`PluginDefinition.objective`); absent: `task` unless it reads a teacher or a peer. */
  objective?: LossObjective | 'mixed';
  /** The run tasks the loss works for (`PluginDefinition.tasks`); absent: classification only. */
  tasks?: readonly Task[];
  /**
   * Start-up, once per instance: check options against the run (`deps.tapShape`, the roles) and
   * throw KdErrors at their spec path, then build the per-instance state (adapters from
   * `deps.rng`, buffers, JSON state, extra hooks). Runs before the role check, so that its own,
   * more specific messages (a DML cohort's) come first.
   */
  setup?(options: z.output<S>, deps: PluginDeps): T & LossState;
  /** The loss of the current step, inside the step's tidy and gradient scope: pure tensor math on what `ctx` and `state` hold. */
  compute(ctx: StepContext, options: z.output<S>, deps: PluginDeps, state: T & LossState): LossValue;
  /**
   * A loss that trains a player (spec `players:`, an adversarial critic): the player it trains, its
   * model's builder (`PluginDefinition.player`) and its objective — `compute` here is the player's
   * loss, differentiated in the player's weights only, after the students' update (`ctx.outputs()`
   * detached). The students' side stays the loss's ordinary `compute` (which reads the player through
   * `ctx.player(name)`); list the player in `requires().players` too.
   */
  player?: PlayerDefinition<z.output<S>> & {
    compute(ctx: StepContext, options: z.output<S>, deps: PluginDeps, state: T & LossState): Scalar;
  };
}

/**
 * A loss plugin: `requires` (what it reads), an optional `setup` (per-instance state) and a
 * `compute` that calls the method's pure function. The plugin boilerplate every loss would otherwise
 * repeat — the role check, subscribing to `loss`, naming and weighting the terms, handing over
 * variables, buffers and JSON state, disposing them — is written here once.
 */
export function defineLoss<S extends z.ZodType, T extends object = object>(def: LossDefinition<S, T>): PluginDefinition<S> {
  return {
    id: def.id,
    kind: 'loss',
    describe: def.describe,
    options: def.options,
    stage: 'default',
    requires: def.requires,
    ...(def.generations ? { generations: def.generations } : {}),
    ...(def.objective ? { objective: def.objective } : {}),
    ...(def.tasks ? { tasks: def.tasks } : {}),
    ...(def.player ? { player: { role: def.player.role, build: def.player.build, ...(def.player.options ? { options: def.player.options } : {}) } } : {}),
    create(options, deps): Plugin {
      const state = def.setup ? def.setup(options, deps) : ({} as T & LossState);
      try {
        checkRoles(def.requires?.(options).roles ?? [], options, deps);
      } catch (e) {
        disposeState(state);
        throw e;
      }
      const variables = state.variables ?? [];
      const buffers = state.buffers ?? [];
      const player = def.player;
      return {
        name: deps.name,
        register(bus) {
          bus.on('loss', (ctx) => addTerms(ctx, deps.name, def.compute(ctx, options, deps, state)));
          onHooks(bus, state.hooks ?? {});
        },
        ...(player ? { playerLoss: (ctx: StepContext) => player.compute(ctx, options, deps, state) } : {}),
        ...(variables.length > 0 ? { variables: () => variables } : {}),
        ...(buffers.length > 0 ? { buffers: () => buffers } : {}),
        ...(variables.length + buffers.length > 0 || state.dispose ? { dispose: () => disposeState(state) } : {}),
        ...(state.getState ? { getState: () => (state.getState as () => unknown)() } : {}),
        ...(state.setState ? { setState: (s: unknown) => (state.setState as (s: unknown) => void)(s) } : {}),
      };
    },
  };
}

function addTerms(ctx: StepContext, name: string, out: LossValue): void {
  if (isScalarLike(out)) {
    ctx.addLoss({ name, value: out });
    return;
  }
  for (const [k, v] of Object.entries(out)) {
    ctx.addLoss(
      isScalarLike(v)
        ? { name: `${name}:${k}`, value: v }
        : { name: `${name}:${k}`, value: v.value, weight: v.weight, ...(v.objective ? { objective: v.objective } : {}) },
    );
  }
}

function onHooks(bus: PluginBus, hooks: LossHooks): void {
  for (const [hook, handler] of Object.entries(hooks)) {
    if (handler) bus.on(hook as HookName, handler as never);
  }
}

function disposeState(state: LossState): void {
  for (const v of [...(state.variables ?? []), ...(state.buffers ?? [])]) v.dispose();
  state.dispose?.();
}

/**
 * The roles of `requires()`, checked when the plugin is created: each must be a role of the run
 * (by exact name: `student` is not `student.0`), and no role may be named twice (a loss between a
 * role and itself). Errors point at the option that names the role.
 */
function checkRoles(roles: readonly string[], options: unknown, deps: PluginDeps): void {
  const names = deps.roles.map((r) => r.name);
  for (const role of roles) {
    if (names.includes(role)) continue;
    const [key] = optionKeys(options, role);
    throw new KdError('KD_PLUGIN_DEPENDENCY', `'${deps.name}' reads the logits of role '${role}'${key ? ` (option \`${key}\`)` : ''}, and the run has no such role`, {
      path: key ? `${deps.specPath}.with.${key}` : deps.specPath,
      fix: key ? `set \`${key}:\` to one of the run's roles: ${names.join(', ')}` : `add the role '${role}' to the spec (roles: ${names.join(', ')})`,
    });
  }
  const twice = roles.find((r, i) => roles.indexOf(r) !== i);
  if (twice !== undefined) {
    const keys = optionKeys(options, twice);
    const what = keys.length > 1 ? `the ${keys.slice(0, -1).join(', ')} and ${keys[keys.length - 1]} roles are both '${twice}'` : `the role '${twice}' is read twice`;
    throw new KdError('KD_PLUGIN_OPTIONS', `'${deps.name}': ${what}`, {
      path: `${deps.specPath}.with`,
      fix: 'distil from a different role (`teacher: teacher`, or a peer `student.1`)',
    });
  }
}

/** The option keys (`teacher`, `students[1]`) whose value is `role`. */
function optionKeys(options: unknown, role: string): string[] {
  if (typeof options !== 'object' || options === null) return [];
  const keys: string[] = [];
  for (const [k, v] of Object.entries(options)) {
    if (v === role) keys.push(k);
    else if (Array.isArray(v)) v.forEach((x, i) => x === role && keys.push(`${k}[${i}]`));
  }
  return keys;
}

function isScalarLike(v: unknown): v is Scalar {
  return typeof v === 'object' && v !== null && 'dataId' in v && 'shape' in v;
}
