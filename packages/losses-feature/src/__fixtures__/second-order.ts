import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { tidyValue } from '@tfkd/kd-core/testing';
import { inputGradient } from '../gradient-attention';

const init = (seed: number) => tfl.initializers.glorotUniform({ seed });

/** dense(5, relu) [→ batchNorm] → dense(3) on 6 inputs. */
export function mlp(seed: number, opts: { batchNorm?: boolean } = {}): tfl.LayersModel {
  const x0 = tfl.input({ shape: [6] });
  let h = tfl.layers.dense({ units: 5, activation: opts.batchNorm ? 'linear' : 'relu', kernelInitializer: init(seed), biasInitializer: 'ones' }).apply(x0) as tfl.SymbolicTensor;
  if (opts.batchNorm) {
    h = tfl.layers.batchNormalization({ gammaInitializer: 'ones' }).apply(h) as tfl.SymbolicTensor;
    h = tfl.layers.reLU().apply(h) as tfl.SymbolicTensor;
  }
  const out = tfl.layers.dense({ units: 3, kernelInitializer: init(seed + 1), biasInitializer: 'zeros' }).apply(h) as tfl.SymbolicTensor;
  return tfl.model({ inputs: x0, outputs: out });
}

/** conv 3×3×3 (same, relu) → maxpool 2 → flatten → dense(3) on 6×6×1. */
export function convNet(seed: number): tfl.LayersModel {
  const x0 = tfl.input({ shape: [6, 6, 1] });
  let h = tfl.layers.conv2d({ filters: 3, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(seed), biasInitializer: 'ones' }).apply(x0) as tfl.SymbolicTensor;
  h = tfl.layers.maxPooling2d({ poolSize: 2, strides: 2, padding: 'valid' }).apply(h) as tfl.SymbolicTensor;
  h = tfl.layers.flatten().apply(h) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ units: 3, kernelInitializer: init(seed + 1) }).apply(h) as tfl.SymbolicTensor;
  return tfl.model({ inputs: x0, outputs: out });
}

/** ‖∂L/∂x‖², L = Σ_b CE(model(x)_b, t_b), training-mode forward. */
export function squaredInputGradient(model: tfl.LayersModel, x: tf.Tensor, t: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.sum(tf.square(inputGradient((xx) => model.apply(xx, { training: true }) as tf.Tensor, x, t))) as tf.Scalar);
}

/**
 * Central differences of a scalar function of some variables, every entry perturbed by ±eps in
 * turn (float64 outside, float32 inside tfjs), against tf.variableGrads: max |analytic − numeric| /
 * max(1e-3, max |numeric|), the entries checked and the largest analytic entry.
 */
export function fdVariables(f: () => tf.Scalar, vars: tf.Variable[], eps: number): { maxRelError: number; checked: number; maxAnalytic: number } {
  const grads = tidyValue(() => {
    const g = tf.variableGrads(f, vars).grads;
    return vars.map((v) => Float64Array.from(g[v.name].dataSync()));
  });
  const at = () => tf.tidy(() => f().dataSync()[0]);
  let maxErr = 0;
  let scale = 1e-3;
  let maxAnalytic = 0;
  let checked = 0;
  vars.forEach((v, k) => {
    const orig = Float64Array.from(v.dataSync());
    const set = (vals: Float64Array) => tf.tidy(() => v.assign(tf.tensor(Float32Array.from(vals), v.shape)));
    for (let i = 0; i < orig.length; i++) {
      const p = Float64Array.from(orig);
      p[i] += eps;
      set(p);
      const fp = at();
      p[i] = orig[i] - eps;
      set(p);
      const fm = at();
      const numeric = (fp - fm) / (2 * eps);
      maxErr = Math.max(maxErr, Math.abs(grads[k][i] - numeric));
      scale = Math.max(scale, Math.abs(numeric));
      maxAnalytic = Math.max(maxAnalytic, Math.abs(grads[k][i]));
      checked++;
    }
    set(orig);
  });
  return { maxRelError: maxErr / scale, checked, maxAnalytic };
}
