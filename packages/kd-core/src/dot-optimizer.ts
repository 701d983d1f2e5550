import * as tf from '@tensorflow/tfjs-core';
import { KdError } from './errors';
import { variablePairs, type OptimizerVariable, type VariableGradients } from './optim-common';

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
