// The StepContext of one training step (`StepContextImpl`): the batch and what samplers do to it,
// each role's inputs and outputs (served from the teacher-output cache or a fast teacher when they
// can be), players, and the loss terms the plugins add. What a replaced batch must carry on is in
// replace-batch.ts; a role's view of the images in view.ts (re-exported here).
import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import type { OutputCache } from './cache';
import {
  type Batch,
  type CostLedger,
  firstOutput,
  KdError,
  type LossObjective,
  type LossTerm,
  type Rng,
  type RoleInfo,
  type RoleOutputs,
  type StepContext,
  stopGradient,
  ViewName,
} from '@tfkd/kd-core';
import { detachOutputs, type PlayerRuntime } from './players';
import { checkViewShape, replacedBatch } from './replace-batch';
import type { RoleRuntime } from './roles';
import type { FastTeacher } from './teacher-source';
import { viewFor } from './view';

export { applyView, viewFor } from './view';

/** What the step context needs from the engine. */
export interface StepHost {
  roles: Map<string, RoleRuntime>;
  roleInfos: readonly RoleInfo[];
  ledger: CostLedger;
  numClasses: number;
  /** Spec weight of a plugin instance. */
  weightOf(owner: string): number;
  rngOf(owner: string): Rng;
  /** Teacher-output caches by role (only for runs whose batches no sampler transforms). */
  caches?: Map<string, OutputCache>;
  /**
   * Frozen teachers' fast forward (`EngineOptions.teacherForward`): a folded model and/or a source
   * holding the batch's outputs computed ahead (a worker). Consulted after the output cache.
   */
  teacherForward?: ReadonlyMap<string, FastTeacher>;
  /** A plugin's objective (DOT's task or distillation gradient), by instance name; absent: `task`. */
  objectiveOf?(owner: string): LossObjective | 'mixed';
  /** Players (spec `players:`) by name, for `ctx.player`; absent or empty without players. */
  playerModels?: ReadonlyMap<string, PlayerRuntime>;
}

export interface RecordedTerm {
  name: string;
  owner: string;
  weight: number;
  value: Scalar;
  /** Its gradient under DOT: the term's own `objective`, else its plugin's (a `mixed` plugin's: `distill`). */
  objective: LossObjective;
}

/** One step's context. `scoped(owner)` gives the view a plugin's handler receives. */
export class StepContextImpl implements StepContext {
  batch: Batch;
  /**
   * Whether the main images `x` were transformed (`replaceBatch(…, { transformed: true })`). Per image
   * variant: a named view that a plugin wrote is always transformed; one no plugin wrote this step is
   * `x`, transformed or not as `x` is (`transformedFor`). A teacher whose images are untransformed is
   * served by the teacher-output cache.
   */
  transformed = false;
  readonly terms: RecordedTerm[] = [];
  private readonly outputsCache = new Map<string, RoleOutputs>();
  private readonly inputCache = new Map<string, Tensor>();
  /** The players read through `player()` in this step (the students' backward passes through them). */
  readonly playersRead = new Set<string>();
  /**
   * A step with players: every output and input cached here is kept (`tf.keep`) past the gradient
   * scope that computed it, for the players' objectives after the students' update; `release()`
   * frees them. Null otherwise (nothing is kept: a run without players is as before).
   */
  private retained: Tensor[] | null = null;
  protected owner: string | null = null;
  protected base: StepContextImpl | null = null;
  /** The players' view (`detachedView`): `outputs()` behind a stop-gradient. */
  protected detached = false;

  constructor(
    private readonly host: StepHost,
    batch: Batch,
    readonly phase: string,
    readonly epoch: number,
    readonly epochs: number,
    readonly batchIndex: number,
    readonly step: number,
  ) {
    this.batch = batch;
  }

  get numClasses(): number {
    return this.host.numClasses;
  }

  get roles(): readonly RoleInfo[] {
    return this.host.roleInfos;
  }

  get rng(): Rng {
    return this.host.rngOf(this.requireOwner('rng'));
  }

  scoped(owner: string): StepContext {
    const view = Object.create(this) as StepContextImpl;
    view.owner = owner;
    view.base = this.root();
    return view;
  }

  /** Keep what the step caches (outputs, inputs) until `release()`: a step with players. */
  retain(): void {
    this.root().retained ??= [];
  }

  /** Free what `retain()` kept. */
  release(): void {
    const self = this.root();
    for (const t of self.retained ?? []) t.dispose();
    self.retained = null;
  }

  /** The context of the players' objectives: the same step, its `outputs()` detached (stop-gradient). */
  detachedView(): StepContextImpl {
    const view = Object.create(this.root()) as StepContextImpl;
    view.base = this.root();
    view.detached = true;
    return view;
  }

  private hold<T extends Tensor>(t: T): T {
    const kept = this.root().retained;
    if (kept) kept.push(tf.keep(t));
    return t;
  }

  replaceBatch(b: Parameters<StepContext['replaceBatch']>[0], opts: { transformed: boolean }): void {
    const self = this.root();
    if (self.outputsCache.size > 0) {
      throw new KdError(
        'KD_PLUGIN_DEPENDENCY',
        'replaceBatch() after outputs() were computed for this step',
        {
          fix: 'samplers must run at stage `sample` in batchStart, before any loss asks for outputs',
        },
      );
    }
    const batch = replacedBatch(self.batch, b, self.host.numClasses, opts.transformed);
    self.inputCache.clear();
    self.transformed = self.transformed || opts.transformed;
    self.batch = batch;
  }

  setView(name: string, x: Tensor): void {
    const self = this.root();
    if (self.outputsCache.size > 0) {
      throw new KdError('KD_PLUGIN_DEPENDENCY', 'setView() after outputs() were computed for this step', {
        fix: 'samplers must run at stage `sample` in batchStart, before any loss asks for outputs',
      });
    }
    if (!ViewName.safeParse(name).success) {
      throw new KdError('KD_PLUGIN_OPTIONS', `setView: '${name}' is not a view name`, {
        fix: 'a view name is a letter, then letters, digits, _ or - (e.g. weak, strong)',
      });
    }
    checkViewShape(name, x, self.batch.x, 'setView');
    self.inputCache.clear();
    self.batch = { ...self.batch, views: { ...(self.batch.views ?? {}), [name]: x } };
  }

  input(role: string, view?: string | null): Tensor {
    const self = this.root();
    const r = self.roleRuntime(role);
    const variant = view === undefined ? (r.spec.input ?? null) : view;
    const key = variant === null ? role : `${role}\u0000${variant}`;
    const cached = self.inputCache.get(key);
    if (cached) return cached;
    const x = self.hold(viewFor(r, self.imagesOf(variant)));
    self.inputCache.set(key, x);
    return x;
  }

  /** The images of a variant: a named view (the main images when no plugin wrote it this step), or null: `x`. */
  imagesOf(variant: string | null): Tensor {
    const self = this.root();
    return (variant !== null ? self.batch.views?.[variant] : undefined) ?? self.batch.x;
  }

  /** Whether a variant's images are transformed: a written view always; otherwise as `x` is. */
  transformedFor(variant: string | null): boolean {
    const self = this.root();
    return (variant !== null && self.batch.views?.[variant] !== undefined) || self.transformed;
  }

  predict(role: string, x: Tensor, opts: { training?: boolean } = {}): Tensor {
    const self = this.root();
    const r = self.roleRuntime(role);
    self.host.ledger.forward(role, x.shape[0] as number);
    const out = firstOutput(
      r.model.apply(viewFor(r, x), { training: opts.training ?? false }) as Tensor | Tensor[],
    );
    return stopGradient(out);
  }

  predictHeads(role: string, x: Tensor, opts: { training?: boolean } = {}): Record<string, Tensor> {
    const self = this.root();
    const r = self.roleRuntime(role);
    self.host.ledger.forward(role, x.shape[0] as number);
    const raw = r.model.apply(viewFor(r, x), { training: opts.training ?? false }) as Tensor | Tensor[];
    const list = Array.isArray(raw) ? raw : [raw];
    return Object.fromEntries(r.model.outputNames.map((name, i) => [name, stopGradient(list[i] as Tensor)]));
  }

  apply(role: string, x: Tensor, opts: { training?: boolean; backward?: boolean } = {}): Tensor {
    const self = this.root();
    const r = self.roleRuntime(role);
    const n = x.shape[0] as number;
    self.host.ledger.forward(role, n);
    if (opts.backward) self.host.ledger.backward(role, n);
    return firstOutput(r.model.apply(x, { training: opts.training ?? false }) as Tensor | Tensor[]);
  }

  outputs(role: string): RoleOutputs {
    const out = this.root().forwardOutputs(role);
    return this.detached ? detachOutputs(out) : out;
  }

  player(name: string): (x: Tensor) => Tensor {
    const self = this.root();
    const p = self.host.playerModels?.get(name);
    if (!p) {
      const names = [...(self.host.playerModels?.keys() ?? [])];
      throw new KdError(
        'KD_PLUGIN_DEPENDENCY',
        `no player '${name}' in this run (players: ${names.join(', ') || 'none'})`,
        {
          path: 'players',
          fix: "declare the player under the spec's `players:`, and list it in the plugin's requires().players",
        },
      );
    }
    self.playersRead.add(name);
    return (x: Tensor) => {
      self.host.ledger.forward(name, x.shape[0] as number);
      return firstOutput(p.model.apply(x, { training: true }) as Tensor | Tensor[]);
    };
  }

  private forwardOutputs(role: string): RoleOutputs {
    const self = this.root();
    const hit = self.outputsCache.get(role);
    if (hit) return hit;
    const r = self.roleRuntime(role);
    const student = r.info.kind === 'student';
    const cache = student ? undefined : self.host.caches?.get(role);
    // Per image variant: a teacher that sees untransformed images (the main ones, while only views
    // were augmented) is still served by the cache.
    const indices = self.transformedFor(r.spec.input ?? null) ? null : self.batch.indices;
    let list: Tensor[];
    const fast = student ? undefined : self.host.teacherForward?.get(role);
    if (cache && indices && cache.has(indices)) {
      list = cache.get(indices);
      self.host.ledger.cacheHit(role, self.batch.size);
    } else {
      if (fast?.source && indices && fast.source.has(indices)) {
        // Computed ahead (a worker): the same forward, counted as one.
        list = fast.source.takeTensors(indices);
      } else {
        const raw = (fast?.model ?? r.tapped).apply(self.input(role), { training: student });
        list = Array.isArray(raw) ? (raw as Tensor[]) : [raw as Tensor];
      }
      self.host.ledger.forward(role, self.batch.size);
      if (cache && indices) cache.put(indices, list);
    }
    const fix = (t: Tensor): Tensor => self.hold(student ? t : stopGradient(t));
    const outputs: RoleOutputs = {
      logits: fix(list[0] as Tensor),
      taps: Object.fromEntries(r.tapNames.map((name, i) => [name, fix(list[i + 1] as Tensor)])),
    };
    // Dense tasks: every output of the model by name (the first is the logits, the others are taps).
    if (r.heads)
      outputs.heads = Object.fromEntries(
        r.heads.map((h, i) => [h, i === 0 ? outputs.logits : outputs.taps[h]]),
      );
    self.outputsCache.set(role, outputs);
    return outputs;
  }

  hasOutputs(role: string): boolean {
    return this.root().outputsCache.has(role);
  }

  addLoss(term: LossTerm): void {
    const owner = this.requireOwner('addLoss');
    const self = this.root();
    if (term.value.rank !== 0) {
      throw new KdError(
        'KD_SHAPE_MISMATCH',
        `loss term '${term.name ?? owner}' must be a scalar, got shape [${term.value.shape}]`,
        {
          fix: 'reduce the loss with tf.mean/tf.sum before addLoss',
        },
      );
    }
    const declared = self.host.objectiveOf?.(owner) ?? 'task';
    self.terms.push({
      name: term.name ?? owner,
      owner,
      weight: self.host.weightOf(owner) * (term.weight ?? 1),
      value: term.value,
      objective: term.objective ?? (declared === 'mixed' ? 'distill' : declared),
    });
  }

  /** Σ weight · value over the recorded terms. */
  total(): Scalar {
    const self = this.root();
    if (self.terms.length === 0) {
      throw new KdError('KD_PLUGIN_DEPENDENCY', 'no plugin added a loss term in this step', {
        path: 'plugins',
        fix: 'add a loss, e.g. `- use: loss/cross-entropy`',
      });
    }
    return tf.addN(self.terms.map((t) => (t.weight === 1 ? t.value : tf.mul(t.value, t.weight)))) as Scalar;
  }

  /** Σ weight · value over the terms of one objective (DOT's task or distillation loss); undefined if there are none. */
  totalOf(objective: LossObjective): Scalar | undefined {
    const terms = this.root().terms.filter((t) => t.objective === objective);
    if (terms.length === 0) return undefined;
    return tf.addN(terms.map((t) => (t.weight === 1 ? t.value : tf.mul(t.value, t.weight)))) as Scalar;
  }

  private root(): StepContextImpl {
    return this.base ?? this;
  }

  private requireOwner(what: string): string {
    if (this.owner === null) throw new KdError('KD_INTERNAL', `${what}() called on an unscoped step context`);
    return this.owner;
  }

  private roleRuntime(role: string): RoleRuntime {
    const r = this.host.roles.get(role);
    if (!r) {
      throw new KdError(
        'KD_PLUGIN_DEPENDENCY',
        `no role '${role}' in this run (roles: ${[...this.host.roles.keys()].join(', ')})`,
        {
          fix: 'declare the role in the spec (teacher:, student:, students:) or declare it in the plugin requirements',
        },
      );
    }
    return r;
  }
}
