import * as tf from '@tensorflow/tfjs-core';
import './gradients';
import {
  FUSED_ADAM_KERNEL,
  FUSED_SGD_KERNEL,
  type FusedAdamAttrs,
  type FusedSgdAttrs,
} from './fused-kernels';
import { DotOptimizer } from './dot-optimizer';
import { variablePairs, type OptimizerVariable, type VariableGradients } from './optim-common';
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

/** Whether a fused optimizer takes its one-kernel path for these gradients on the active backend. */
function fusable(kernelName: string, pairs: Array<[tf.Variable, tf.Tensor | null]>): boolean {
  if (tf.getKernel(kernelName, tf.getBackend()) == null) return false;
  return pairs.every(
    ([v, g]) =>
      v != null && v.dtype === 'float32' && (g == null || (g.dtype === 'float32' && g.size === v.size)),
  );
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
        self.accumulatedFirstMoment[i] = zeroSlot(`${value.name}/m`, value);
      }
      if (self.accumulatedSecondMoment[i] == null) {
        self.accumulatedSecondMoment[i] = zeroSlot(`${value.name}/v`, value);
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
      runFusedInto(FUSED_ADAM_KERNEL, inputs, attrs, targets);
    });
    this.incrementIterations();
  }
}

/** A zero-filled optimizer slot for `value`, named as tfjs names it (`<weight>/m`, `/v`, `/momentum`). */
function zeroSlot(originalName: string, value: tf.Variable): OptimizerVariable {
  return { originalName, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
}

/** Runs a fused optimizer kernel over `inputs` and assigns its outputs, in order, to `targets`. */
function runFusedInto(kernel: string, inputs: tf.Tensor[], attrs: FusedAdamAttrs | FusedSgdAttrs, targets: tf.Variable[]): void {
  const outs = tf.engine().runKernel(kernel, inputs as unknown as tf.NamedTensorMap, attrs as unknown as tf.NamedAttrMap) as unknown as tf.Tensor[];
  outs.forEach((t, i) => targets[i].assign(t));
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
        acc[i] = zeroSlot(`${value.name}/momentum`, value);
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
    runFusedInto(FUSED_SGD_KERNEL, inputs, attrs, targets);
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

export { DotOptimizer, isDotOptimizer, type DotConfig } from './dot-optimizer';
