import * as tf from '@tensorflow/tfjs-core';
import './gradients';
import type { TrainSpec } from './spec';

/** A fresh tfjs optimizer for a `train.optimizer` block (SGD, SGD + momentum/Nesterov, Adam). */
export function makeOptimizer(train: TrainSpec): tf.Optimizer {
  const o = train.optimizer;
  if (o.name === 'adam') return tf.train.adam(o.lr);
  if (o.momentum > 0) return fixMomentumDispose(tf.train.momentum(o.lr, o.momentum, o.nesterov));
  return tf.train.sgd(o.lr);
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
