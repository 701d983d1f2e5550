import * as tf from '@tensorflow/tfjs-core';
import type { GradConfig, NamedAttrMap, Scalar, Tensor, Tensor4D } from '@tensorflow/tfjs-core';

/**
 * Second-order gradients in tfjs 4.22 (what a loss on an input gradient, such as gradient-based
 * attention transfer, needs: ∂/∂θ of a function of ∂L/∂x).
 *
 * tfjs differentiates a gradient by recording the backward pass's ops on the tape when a gradient is
 * taken inside another (`gradientDepth > 0`), so the gradient of a gradient exists wherever every
 * kernel of the backward pass has a gradient of its own. Two gaps in tfjs-core 4.22:
 *
 * 1. **Missing gradients** — `MaxPoolGrad` (the backward of `tf.maxPool`), `AvgPoolGrad` and
 *    `Conv2DBackpropFilter` have none (`Cannot compute gradient: gradient function not found for
 *    MaxPoolGrad`). `registerSecondOrderGradients()` registers `MaxPoolGrad` and
 *    `Conv2DBackpropFilter` here, written with ordinary ops. (`Conv2DBackpropInput` has one in
 *    tfjs-core.)
 * 2. **Gradients that read a saved output** — the engine saves an op's output for its gradient by
 *    cloning it *before* it records the op itself, so on the tape the clone comes first and its link
 *    to the op is never walked: a second-order path through `exp(saved output)` inside
 *    `LogSoftmax`'s gradient (likewise `Softmax`, `Exp`, `Sigmoid`, `Tanh`, `Elu`, `Max`, `Min`,
 *    `LRN`, `MaxPool3D`, `Pow`'s exponent) is dropped — an error when it is the only path
 *    (tensorflow/tfjs#3252, "Can't take second derivative with respect to tanh, sigmoid, or exp"),
 *    a silently wrong gradient otherwise (a softmax cross-entropy: 29 % off on a small MLP).
 *    `crossEntropySum` below is a cross-entropy whose gradient reads its saved *input* instead, and
 *    `secondOrderBlockers` names the layers of a model that would hit the gap.
 *
 * `MaxPool`'s own gradient saves its output too, but only feeds it to `MaxPoolGrad`, whose derivative
 * in it is zero: nothing is lost there.
 */

/** Kernels this module gives a gradient (tfjs-core 4.22 has none for them). */
export const SECOND_ORDER_KERNELS = ['MaxPoolGrad', 'Conv2DBackpropFilter'] as const;

/** The sum over the batch of softmax cross-entropies, Σ_b −Σ_k t_bk log softmax(z_b)_k; `t` one-hot or soft targets [B, K]. */
export function crossEntropySum(z: Tensor, t: Tensor): Scalar {
  return ceSum(z, t) as Scalar;
}

// The gradient, (Σ_k t_bk)·softmax(z_b) − t_b, is computed from the saved logits (an input), so the
// gradient of this gradient is complete (see 2. above); tf.logSoftmax's own would drop softmax'(z).
const ceSum = tf.customGrad(((z: Tensor, t: Tensor, save: (ts: Tensor[]) => void) => {
  save([z, t]);
  return {
    value: tf.neg(tf.sum(tf.mul(t, tf.logSoftmax(z)))),
    gradFunc: (dy: Tensor, saved: Tensor[]) => {
      const [zs, ts] = saved;
      return [tf.mul(dy, tf.sub(tf.mul(tf.softmax(zs), tf.sum(ts, -1, true)), ts)), tf.zerosLike(ts)];
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]);

/**
 * The transpose of `MaxPoolGrad(·, x, y)` applied to `ddx` [N, H, W, C]: for every pooling window,
 * `ddx` at the window's argmax → [N, OH, OW, C]. The argmax is the one the `MaxPoolGrad` kernels of
 * the cpu backend and of @tfkd/backend-wasm-train use: the first maximum in row-major order (a window
 * of ties, such as all zeros after a ReLU, routes to its first position). Any filter, stride and
 * padding; built from pad, slice, reshape, equal, mul, add (kernels every backend has).
 */
export function maxPoolSelect(ddx: Tensor4D, x: Tensor4D, y: Tensor4D, attrs: { filterSize: [number, number] | number; strides: [number, number] | number; pad: unknown; dimRoundingMode?: 'floor' | 'round' | 'ceil' }): Tensor4D {
  return tf.tidy(() => {
    const info = tf.backend_util.computePool2DInfo(x.shape, attrs.filterSize, attrs.strides, 1, attrs.pad as 'valid', attrs.dimRoundingMode);
    const { batchSize: n, inChannels: c, inHeight: h, inWidth: w, outHeight: oh, outWidth: ow, strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw } = info;
    const { top, left } = info.padInfo;
    // Offset (a, b) of every window is a strided slice starting at (a, b) of the padded map: rows
    // a, a + sh, …, a + (oh − 1)·sh, taken as a [oh·sh] slice reshaped to [oh, sh] and its first column.
    const needH = fh - 1 + oh * sh;
    const needW = fw - 1 + ow * sw;
    const padding: [number, number][] = [[0, 0], [top, Math.max(0, needH - top - h)], [left, Math.max(0, needW - left - w)], [0, 0]];
    const xp = tf.pad(x, padding, Number.NEGATIVE_INFINITY);
    const dp = tf.pad(ddx, padding, 0);
    const at = (t: Tensor, a: number, b: number): Tensor => {
      const s = tf.slice(t, [0, a, b, 0], [n, oh * sh, ow * sw, c]);
      return tf.reshape(tf.slice(tf.reshape(s, [n, oh, sh, ow, sw, c]), [0, 0, 0, 0, 0, 0], [n, oh, 1, ow, 1, c]), [n, oh, ow, c]);
    };
    let out: Tensor = tf.zeros([n, oh, ow, c]);
    let free: Tensor = tf.onesLike(out); // 1 until the window's argmax is found
    for (let a = 0; a < fh; a++) {
      for (let b = 0; b < fw; b++) {
        const hit = tf.mul(tf.cast(tf.equal(at(xp, a, b), y), 'float32'), free);
        out = tf.add(out, tf.mul(hit, at(dp, a, b)));
        free = tf.sub(free, hit);
      }
    }
    return out as Tensor4D;
  });
}

const maxPoolGradGrad: GradConfig = {
  kernelName: 'MaxPoolGrad',
  inputsToSave: ['input', 'output'],
  gradFunc: (ddx: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
    const [x, y] = saved;
    const a = attrs as unknown as Parameters<typeof maxPoolSelect>[3];
    return {
      // MaxPoolGrad is linear in dy; in x and y it is piecewise constant (zero derivative a.e.).
      dy: () => maxPoolSelect(ddx as Tensor4D, x as Tensor4D, y as Tensor4D, a),
      input: () => tf.zerosLike(x),
      output: () => tf.zerosLike(y),
    };
  },
};

const conv2dBackpropFilterGrad: GradConfig = {
  kernelName: 'Conv2DBackpropFilter',
  inputsToSave: ['x', 'dy'],
  gradFunc: (ddw: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
    const [x, dy] = saved as [Tensor4D, Tensor4D];
    const a = attrs as unknown as { strides: [number, number] | number; pad: 'valid'; dataFormat: string; dimRoundingMode?: 'floor' | 'round' | 'ceil' };
    if (a.dataFormat !== 'NHWC') throw new Error(`second-order gradient of Conv2DBackpropFilter: dataFormat ${a.dataFormat} is not supported (NHWC only)`);
    const f = ddw as Tensor4D;
    // dW = Σ x ⋆ dy is bilinear in (x, dy): ⟨ddW, dW(x, dy)⟩ = ⟨dy, conv2d(x, ddW)⟩.
    return {
      x: () => tf.conv2dTranspose(dy, f, x.shape, a.strides, a.pad, a.dimRoundingMode),
      dy: () => tf.conv2d(x, f, a.strides, a.pad, 'NHWC', 1, a.dimRoundingMode),
    };
  },
};

/**
 * Registers the gradients of `SECOND_ORDER_KERNELS` with tfjs-core (the host's copy), once; a
 * gradient someone else registered for one of them is left in place. Returns the kernel names that
 * now have a gradient.
 */
export function registerSecondOrderGradients(): string[] {
  for (const config of [maxPoolGradGrad, conv2dBackpropFilterGrad]) {
    if (tf.getGradient(config.kernelName) == null) tf.registerGradient(config);
  }
  return SECOND_ORDER_KERNELS.filter((k) => tf.getGradient(k) != null);
}

/** What a layer of a model does that has no complete second-order gradient in tfjs 4.22. */
export interface SecondOrderBlocker {
  layer: string;
  /** The tfjs kernel whose gradient of a gradient is missing or incomplete. */
  kernel: string;
}

// Activation names (tfjs-layers `getClassName()`) → the kernel that loses its second-order path.
const ACTIVATION_KERNELS: Record<string, string> = {
  tanh: 'Tanh',
  sigmoid: 'Sigmoid',
  elu: 'Elu',
  softmax: 'Softmax',
  logSoftmax: 'LogSoftmax',
  gelu_new: 'Tanh',
  mish: 'Tanh',
  swish: 'Sigmoid',
};

// Layer classes → kernel (recurrent cells use tanh/sigmoid; global max pooling is `Max`).
const LAYER_KERNELS: Record<string, string> = {
  ELU: 'Elu',
  Softmax: 'Softmax',
  GlobalMaxPooling1D: 'Max',
  GlobalMaxPooling2D: 'Max',
  MaxPooling1D: 'MaxPoolGrad (1-D)',
  MaxPooling3D: 'MaxPool3D',
  AveragePooling1D: 'AvgPoolGrad',
  AveragePooling2D: 'AvgPoolGrad',
  AveragePooling3D: 'AvgPool3DGrad',
  LSTM: 'Tanh',
  GRU: 'Tanh',
  SimpleRNN: 'Tanh',
  ConvLSTM2D: 'Tanh',
};

/** The smallest view of a tfjs-layers layer this check needs. */
interface LayerLike {
  name: string;
  getClassName(): string;
  getConfig(): Record<string, unknown>;
}

/**
 * The layers of a model whose ops have no complete second-order gradient in tfjs 4.22 (activations
 * tanh, sigmoid, elu, softmax, …; global max pooling; average pooling; recurrent layers), each with
 * the kernel at fault. Empty for models of Dense, Conv2D, ReLU, MaxPooling2D, Flatten, Dropout and
 * the like. A check by name: a custom layer is not looked into.
 */
export function secondOrderBlockers(model: { layers: LayerLike[] }): SecondOrderBlocker[] {
  const out: SecondOrderBlocker[] = [];
  for (const layer of model.layers) {
    const cls = layer.getClassName();
    const byClass = LAYER_KERNELS[cls];
    if (byClass) {
      out.push({ layer: layer.name, kernel: byClass });
      continue;
    }
    const activation = layer.getConfig().activation;
    if (typeof activation === 'string' && ACTIVATION_KERNELS[activation]) out.push({ layer: layer.name, kernel: ACTIVATION_KERNELS[activation] });
  }
  return out;
}
