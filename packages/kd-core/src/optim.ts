import * as tf from '@tensorflow/tfjs-core';
import './gradients';
import {
  FUSED_ADAM_KERNEL,
  FUSED_SGD_KERNEL,
  type FusedAdamAttrs,
  type FusedSgdAttrs,
} from './fused-kernels';
import { KdError } from './errors';
import { DOT_DELTA, type TrainSpec } from './spec';

export interface MakeOptimizerOptions {
  /**
   * The fused optimizers below (default true): one kernel call per step for all variables instead
   * of tfjs's 2–15 per variable, with the same float32 arithmetic in the same order, so that the
   * weights, slots and checkpoints are bit for bit those of `tf.train.adam` / `momentum` / `sgd`
   * (tested on cpu and wasm). `false` gives the tfjs optimizers themselves. (`dot` has one form.)
   */
  fused?: boolean;
}

/** A fresh tfjs optimizer for a `train.optimizer` block (SGD, SGD + momentum/Nesterov, Adam, DOT). */
export function makeOptimizer(train: TrainSpec, opts: MakeOptimizerOptions = {}): tf.Optimizer {
  const o = train.optimizer;
  const fused = opts.fused ?? true;
  if (o.name === 'dot') return new DotOptimizer({ lr: o.lr, momentum: o.momentum, delta: o.delta ?? DOT_DELTA, weightDecay: o.weightDecay });
  if (o.name === 'adam') return fused ? new FusedAdamOptimizer(o.lr) : tf.train.adam(o.lr);
  if (o.momentum > 0)
    return fused
      ? new FusedMomentumOptimizer(o.lr, o.momentum, o.nesterov)
      : fixMomentumDispose(tf.train.momentum(o.lr, o.momentum, o.nesterov));
  return fused ? new FusedSGDOptimizer(o.lr) : tf.train.sgd(o.lr);
}

/**
 * tfjs 4.22's `MomentumOptimizer.dispose()` frees its momentum scalar and accumulators but not the
 * learning-rate scalar `c` that its parent `SGDOptimizer` keeps (it does not call `super.dispose()`),
 * so every momentum optimizer leaked one tensor when it was disposed. Free `c` as well.
 */
export function fixMomentumDispose(opt: tf.MomentumOptimizer): tf.MomentumOptimizer {
  const own = opt.dispose.bind(opt);
  opt.dispose = () => {
    own();
    const c = (opt as unknown as { c?: tf.Tensor }).c;
    if (c && !c.isDisposed) c.dispose();
  };
  return opt;
}

/** Set the learning rate of a tfjs optimizer (SGD/momentum cache it as a scalar; Adam reads the field). */
export function setLearningRate(opt: tf.Optimizer, lr: number): void {
  const o = opt as unknown as { setLearningRate?: (lr: number) => void; learningRate: number };
  if (typeof o.setLearningRate === 'function') o.setLearningRate(lr);
  else o.learningRate = lr;
}

/** applyGradients' argument: a map of gradients by variable name, or (name, tensor) pairs (tfjs's `NamedTensor[]`). */
type VariableGradients = Parameters<tf.AdamOptimizer['applyGradients']>[0];

/** Whether a fused optimizer takes its one-kernel path for these gradients on the active backend. */
function fusable(kernelName: string, pairs: Array<[tf.Variable, tf.Tensor | null]>): boolean {
  if (tf.getKernel(kernelName, tf.getBackend()) == null) return false;
  return pairs.every(
    ([v, g]) =>
      v != null && v.dtype === 'float32' && (g == null || (g.dtype === 'float32' && g.size === v.size)),
  );
}

/** The tfjs argument of applyGradients as (variable, gradient) pairs, in tfjs's order (slots are by position). */
function variablePairs(variableGradients: VariableGradients): Array<[tf.Variable, tf.Tensor | null]> {
  const registered = tf.engine().registeredVariables;
  if (Array.isArray(variableGradients))
    return variableGradients.map((v) => [registered[v.name], v.tensor ?? null]);
  return Object.keys(variableGradients).map((name) => [registered[name], variableGradients[name] ?? null]);
}

interface OptimizerVariable {
  originalName: string;
  variable: tf.Variable;
}
interface AdamInternals {
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  accumulatedFirstMoment: OptimizerVariable[];
  accumulatedSecondMoment: OptimizerVariable[];
}

/**
 * `tf.train.adam`, with the step in one kernel call ({@link FUSED_ADAM_KERNEL}). Class name `Adam`,
 * same slots, `getWeights`/`setWeights` and `accBeta1/2` as tfjs's: checkpoints of either load in
 * the other. Bit-identical results to `tf.train.adam(lr, beta1, beta2, epsilon)`.
 */
export class FusedAdamOptimizer extends tf.AdamOptimizer {
  constructor(learningRate: number, beta1 = 0.9, beta2 = 0.999, epsilon: number | null = null) {
    super(learningRate, beta1, beta2, epsilon as number);
  }

  override applyGradients(variableGradients: VariableGradients): void {
    const pairs = variablePairs(variableGradients);
    if (!fusable(FUSED_ADAM_KERNEL, pairs)) {
      super.applyGradients(variableGradients);
      return;
    }
    const self = this as unknown as AdamInternals;
    pairs.forEach(([value], i) => {
      // As tfjs: slots by position, created (zeros) for every variable, with or without a gradient.
      if (self.accumulatedFirstMoment[i] == null) {
        self.accumulatedFirstMoment[i] = {
          originalName: `${value.name}/m`,
          variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
        };
      }
      if (self.accumulatedSecondMoment[i] == null) {
        self.accumulatedSecondMoment[i] = {
          originalName: `${value.name}/v`,
          variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
        };
      }
    });
    tf.tidy(() => {
      const inputs: tf.Tensor[] = [self.accBeta1, self.accBeta2];
      const targets: tf.Variable[] = [self.accBeta1, self.accBeta2];
      pairs.forEach(([value, g], i) => {
        if (g == null) return;
        const m = self.accumulatedFirstMoment[i].variable;
        const v = self.accumulatedSecondMoment[i].variable;
        inputs.push(value, m, v, g);
        targets.push(value, m, v);
      });
      const attrs: FusedAdamAttrs = {
        beta1: self.beta1,
        beta2: self.beta2,
        epsilon: self.epsilon,
        learningRate: self.learningRate,
      };
      const outs = tf
        .engine()
        .runKernel(
          FUSED_ADAM_KERNEL,
          inputs as unknown as tf.NamedTensorMap,
          attrs as unknown as tf.NamedAttrMap,
        ) as unknown as tf.Tensor[];
      outs.forEach((t, i) => targets[i].assign(t));
    });
    this.incrementIterations();
  }
}

interface SgdInternals {
  c: tf.Scalar;
  m?: tf.Scalar;
  useNesterov?: boolean;
  accumulations?: OptimizerVariable[];
}

/** Runs the fused SGD kernel; returns false (nothing done) when the backend has no such kernel. */
function fusedSgdStep(
  opt: tf.Optimizer,
  mode: FusedSgdAttrs['mode'],
  pairs: Array<[tf.Variable, tf.Tensor | null]>,
): boolean {
  if (!fusable(FUSED_SGD_KERNEL, pairs)) return false;
  const self = opt as unknown as SgdInternals;
  if (mode !== 'sgd') {
    const acc = self.accumulations as OptimizerVariable[];
    pairs.forEach(([value], i) => {
      if (acc[i] == null)
        acc[i] = {
          originalName: `${value.name}/momentum`,
          variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
        };
    });
  }
  tf.tidy(() => {
    const mu = self.m ?? self.c; // plain SGD: unused, any scalar
    const inputs: tf.Tensor[] = [self.c, mu];
    const targets: tf.Variable[] = [];
    pairs.forEach(([value, g], i) => {
      if (g == null) return;
      if (mode === 'sgd') {
        inputs.push(value, g);
        targets.push(value);
      } else {
        const a = (self.accumulations as OptimizerVariable[])[i].variable;
        inputs.push(value, a, g);
        targets.push(value, a);
      }
    });
    if (targets.length === 0) return;
    const attrs: FusedSgdAttrs = { mode };
    const outs = tf
      .engine()
      .runKernel(
        FUSED_SGD_KERNEL,
        inputs as unknown as tf.NamedTensorMap,
        attrs as unknown as tf.NamedAttrMap,
      ) as unknown as tf.Tensor[];
    outs.forEach((t, i) => targets[i].assign(t));
  });
  return true;
}

/** `tf.train.sgd` with the step in one kernel call ({@link FUSED_SGD_KERNEL}); bit-identical results. */
export class FusedSGDOptimizer extends tf.SGDOptimizer {
  override applyGradients(variableGradients: VariableGradients): void {
    if (!fusedSgdStep(this, 'sgd', variablePairs(variableGradients))) {
      super.applyGradients(variableGradients);
      return;
    }
    this.incrementIterations();
  }
}

/**
 * `tf.train.momentum` (also Nesterov) with the step in one kernel call; class name `Momentum`, same
 * accumulations and weights as tfjs's, bit-identical results; `dispose()` also frees the
 * learning-rate scalar (see {@link fixMomentumDispose}).
 */
export class FusedMomentumOptimizer extends tf.MomentumOptimizer {
  override applyGradients(variableGradients: VariableGradients): void {
    const mode = (this as unknown as SgdInternals).useNesterov ? 'nesterov' : 'momentum';
    if (!fusedSgdStep(this, mode, variablePairs(variableGradients))) {
      super.applyGradients(variableGradients);
      return;
    }
    this.incrementIterations();
  }

  override dispose(): void {
    super.dispose();
    const c = (this as unknown as SgdInternals).c;
    if (c && !c.isDisposed) c.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// DOT, the distillation-oriented trainer (Zhao et al., ICCV 2023).

export interface DotConfig {
  /** Learning rate, one for both updates (the reference has one parameter group). */
  lr: number;
  /** μ: the task gradient's momentum is μ − Δ, the distillation gradient's μ + Δ. */
  momentum: number;
  /** Δ (the reference's default 0.075, `DOT_DELTA`). */
  delta: number;
  /** L2 weight decay λ, added to a gradient as torch's SGD does — to which one: see {@link DotOptimizer}. */
  weightDecay: number;
}

/** Whether an optimizer is DOT's: it steps on the task and distillation gradients apart (`applyDot`). */
export function isDotOptimizer(opt: tf.Optimizer | null | undefined): opt is DotOptimizer {
  return typeof (opt as Partial<DotOptimizer> | null | undefined)?.applyDot === 'function';
}

const DOT_SLOT = /^dot\/(task|distill)\/(\d+)(?:\/|$)/;

/** tfjs's `NamedTensor[]` (optimizer weights), which tfjs-core does not export by name. */
type NamedTensors = Parameters<tf.Optimizer['setWeights']>[0];

/**
 * DOT: SGD with two momentum buffers per weight, one for the task loss's gradient (momentum μ − Δ)
 * and one for the distillation losses' (μ + Δ), as mdistiller's `DistillationOrientedTrainer`
 * (`mdistiller/engine/dot.py`, function `dot`, at a08d46f10d6102bd6e3f258ca5ac880b020ea259) run by its
 * `DOT` trainer (momentum = μ − Δ, momentum_kd = μ + Δ, dampening 0, `step_kd()` on the distillation
 * gradient, then `step()` on the task gradient). Per weight p, with task gradient g_t and distillation
 * gradient g_d for this step — either may be absent (a weight only one of the losses reaches: an
 * adapter, a layer past a hint) — λ the weight decay and μ₁ = ((μ+Δ) + (μ−Δ))/2 the momentum of a
 * weight that has one of the two:
 *
 *     if g_t:  d = g_t + λ·p
 *              if μ − Δ ≠ 0:  b_t = d on its first step, else b_t ← (g_d ? μ−Δ : μ₁)·b_t + d;  d = b_t
 *              p ← p − lr·d
 *     if g_d:  b_d = g_d on its first step (no weight decay, even for a weight without g_t)
 *              else b_d ← (μ+Δ)·b_d + g_d              (g_t too: the decay went into b_t)
 *              else b_d ← μ₁·b_d + (g_d + λ·p)         (no g_t: the decay goes here)
 *              p ← p − lr·b_d
 *
 * Float32, operation by operation in that order (as tfjs's momentum: m·b + d, then (−lr)·b + p).
 * With Δ = 0 it is SGD with momentum μ on g_t + g_d, up to float32 rounding. `applyGradients(g)`
 * treats every gradient as the task's (a step without distillation terms).
 *
 * State: the step counter and the buffers that exist, by the weight's position in the `variables`
 * given to `applyDot` — `getWeights()` names them `dot/task/<i>/<weight>`, `dot/distill/<i>/<weight>`,
 * and `setWeights` restores them by that position (a buffer that does not exist yet is not saved, so a
 * resumed run takes the same first-step branch as the run in one go). Class name `DOT`.
 */
export class DotOptimizer extends tf.Optimizer {
  static get className(): string {
    return 'DOT';
  }

  private readonly config: DotConfig;
  private c: tf.Scalar;
  private readonly mTask: tf.Scalar;
  private readonly mDistill: tf.Scalar;
  private readonly mOne: tf.Scalar;
  private readonly decay: tf.Scalar | null;
  private task: (OptimizerVariable | null)[] = [];
  private distill: (OptimizerVariable | null)[] = [];
  /** Set by `setWeights`: the next step checks the restored buffers against its variables. */
  private restored = false;

  constructor(config: DotConfig) {
    super();
    this.config = { ...config };
    const muTask = config.momentum - config.delta;
    const muDistill = config.momentum + config.delta;
    this.c = tf.keep(tf.scalar(-config.lr));
    this.mTask = tf.keep(tf.scalar(muTask));
    this.mDistill = tf.keep(tf.scalar(muDistill));
    this.mOne = tf.keep(tf.scalar((muDistill + muTask) / 2));
    this.decay = config.weightDecay !== 0 ? tf.keep(tf.scalar(config.weightDecay)) : null;
  }

  /**
   * One step: the task gradients and the distillation gradients of `variables` (by variable name;
   * a variable absent from both is left alone). Positions in `variables` key the buffers: give the
   * same list, in the same order, every step.
   */
  applyDot(variables: readonly tf.Variable[], task: tf.NamedTensorMap, distill: tf.NamedTensorMap): void {
    if (this.restored) {
      this.checkRestored(variables);
      this.restored = false;
    }
    const taskMomentum = this.config.momentum - this.config.delta !== 0;
    tf.tidy(() => {
      variables.forEach((p, i) => {
        const gt = task[p.name];
        const gd = distill[p.name];
        if (gt) {
          let d: tf.Tensor = this.decay ? tf.add(gt, tf.mul(p, this.decay)) : gt;
          if (taskMomentum) {
            const b = this.task[i];
            if (b) b.variable.assign(tf.add(tf.mul(gd ? this.mTask : this.mOne, b.variable), d));
            else this.task[i] = dotSlot('task', i, p, d);
            d = (this.task[i] as OptimizerVariable).variable;
          }
          p.assign(tf.add(tf.mul(this.c, d), p));
        }
        if (gd) {
          const b = this.distill[i];
          if (!b) this.distill[i] = dotSlot('distill', i, p, gd);
          else if (gt) b.variable.assign(tf.add(tf.mul(this.mDistill, b.variable), gd));
          else b.variable.assign(tf.add(tf.mul(this.mOne, b.variable), this.decay ? tf.add(gd, tf.mul(p, this.decay)) : gd));
          p.assign(tf.add(tf.mul(this.c, (this.distill[i] as OptimizerVariable).variable), p));
        }
      });
    });
    this.incrementIterations();
  }

  override applyGradients(variableGradients: VariableGradients): void {
    const pairs = variablePairs(variableGradients);
    const task: tf.NamedTensorMap = {};
    for (const [v, g] of pairs) if (v && g) task[v.name] = g;
    this.applyDot(pairs.map(([v]) => v), task, {});
  }

  setLearningRate(lr: number): void {
    this.config.lr = lr;
    this.c.dispose();
    this.c = tf.keep(tf.scalar(-lr));
  }

  override async getWeights(): Promise<NamedTensors> {
    const slots = (list: (OptimizerVariable | null)[]) => list.flatMap((s) => (s ? [{ name: s.originalName, tensor: s.variable }] : []));
    return [await this.saveIterations(), ...slots(this.task), ...slots(this.distill)];
  }

  override async setWeights(weightValues: NamedTensors): Promise<void> {
    const rest = await this.extractIterations(weightValues);
    this.disposeSlots();
    for (const w of rest) {
      const m = DOT_SLOT.exec(w.name);
      if (!m) {
        throw new KdError('KD_CHECKPOINT_INVALID', `optimizer slot '${w.name}' is not a DOT momentum buffer (dot/task/<i>/… or dot/distill/<i>/…)`, {
          fix: 'resume with the spec (and optimizer) the checkpoint was written with',
        });
      }
      (m[1] === 'task' ? this.task : this.distill)[Number(m[2])] = { originalName: w.name, variable: w.tensor.variable(false) };
    }
    this.restored = true;
  }

  override getConfig(): tf.serialization.ConfigDict {
    const { lr, momentum, delta, weightDecay } = this.config;
    return { lr, momentum, delta, weightDecay };
  }

  override dispose(): void {
    super.dispose();
    for (const t of [this.c, this.mTask, this.mDistill, this.mOne, this.decay]) t?.dispose();
    this.disposeSlots();
  }

  private disposeSlots(): void {
    for (const s of [...this.task, ...this.distill]) s?.variable.dispose();
    this.task = [];
    this.distill = [];
  }

  private checkRestored(variables: readonly tf.Variable[]): void {
    for (const list of [this.task, this.distill]) {
      list.forEach((s, i) => {
        if (!s) return;
        const v = variables[i];
        if (!v || v.shape.join(',') !== s.variable.shape.join(',')) {
          throw new KdError('KD_CHECKPOINT_INVALID', `DOT buffer ${s.originalName} is [${s.variable.shape}] but weight ${i} is ${v ? `[${v.shape}]` : 'missing'}`, {
            fix: 'resume with the spec (and models) the checkpoint was written with',
          });
        }
      });
    }
  }
}

/** A DOT buffer's first value: the step's (decayed) gradient itself, as the reference's `torch.clone(d_p)`. */
function dotSlot(kind: 'task' | 'distill', i: number, p: tf.Variable, value: tf.Tensor): OptimizerVariable {
  return { originalName: `dot/${kind}/${i}/${p.name}`, variable: tf.clone(value).variable(false) };
}
