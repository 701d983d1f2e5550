/**
 * Which tfjs kernels have a gradient of their gradient (cpu backend), and the ones this package adds:
 * d/dθ ‖∂L/∂x‖² of small tfjs-layers networks against central finite differences.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { crossEntropy, oneHotFloat } from '@tfkd/kd-core';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { values } from './__fixtures__/reference';
import { inputGradient } from './gradient-attention';
import { crossEntropySum, maxPoolSelect, registerSecondOrderGradients, SECOND_ORDER_KERNELS, secondOrderBlockers } from './second-order';
import { convNet, fdVariables, mlp, squaredInputGradient } from './__fixtures__/second-order';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('tfjs 4.22 without this module', () => {
  it('has no gradient for MaxPoolGrad or Conv2DBackpropFilter, one for Conv2DBackpropInput', () => {
    // (this file registers nothing before this test; jest gives each spec file its own tfjs-core)
    expect(tf.getGradient('MaxPoolGrad')).toBeUndefined();
    expect(tf.getGradient('Conv2DBackpropFilter')).toBeUndefined();
    expect(tf.getGradient('Conv2DBackpropInput')).toBeDefined();
    const x = tf.tensor4d(values(16, 1), [1, 4, 4, 1]);
    const w = tf.variable(tf.tensor4d(values(9, 2), [3, 3, 1, 1]));
    const f = () => tf.sum(tf.square(tf.grad((xx: tf.Tensor) => tf.sum(tf.maxPool(tf.conv2d(xx as tf.Tensor4D, w, 1, 'same'), 2, 2, 'valid')))(x))) as tf.Scalar;
    expect(() => tf.variableGrads(f, [w])).toThrow('gradient function not found for MaxPoolGrad');
    w.dispose();
  });

  it("drops the softmax curvature from tf.logSoftmax's second-order gradient (tfjs#3252: its gradient reads a saved output)", () => {
    // ‖∂CE/∂x‖² for a linear model z = xW + b: through b, softmax' is the only path (tfjs throws);
    // through W, the path via Wᵀ remains and the softmax' one is silently dropped.
    const x = tf.tensor2d(values(6, 3), [2, 3]);
    const t = oneHotFloat(tf.tensor1d([0, 2], 'int32'), 3);
    const w0 = values(9, 4);
    const b = tf.tensor1d([0.1, -0.2, 0.05]);
    const viaLogSoftmax = (w: tf.Tensor, bb: tf.Tensor) =>
      tf.sum(tf.square(tf.grad((xx: tf.Tensor) => tf.mul(crossEntropy(tf.add(tf.matMul(xx as tf.Tensor2D, w as tf.Tensor2D), bb), t), 2))(x))) as tf.Scalar;
    const viaCrossEntropySum = (w: tf.Tensor) => tf.sum(tf.square(inputGradient((xx) => tf.add(tf.matMul(xx as tf.Tensor2D, w as tf.Tensor2D), b), x, t))) as tf.Scalar;
    const w = tf.tensor2d(w0, [3, 3]);
    expect(() => tf.grad((bb: tf.Tensor) => viaLogSoftmax(w, bb))(b)).toThrow('Cannot compute gradient of y=f(x)');
    // same value; crossEntropySum's gradient is that of finite differences, logSoftmax's is not
    expect(viaLogSoftmax(w, b).dataSync()[0]).toBeCloseTo(viaCrossEntropySum(w).dataSync()[0], 5);
    const r = finiteDifferenceCheck(viaCrossEntropySum, w0, [3, 3], 1e-3);
    expect(r.maxRelError).toBeLessThan(1e-2);
    const broken = tf.grad((ww: tf.Tensor) => viaLogSoftmax(ww, b))(w).dataSync();
    const err = Math.max(...Array.from(broken).map((v, i) => Math.abs(v - r.numeric[i]))) / Math.max(...Array.from(r.numeric).map(Math.abs));
    expect(err).toBeGreaterThan(0.1);
  });
});

describe('registerSecondOrderGradients', () => {
  it('registers MaxPoolGrad and Conv2DBackpropFilter, once', () => {
    expect(registerSecondOrderGradients()).toEqual([...SECOND_ORDER_KERNELS]);
    const g = tf.getGradient('MaxPoolGrad');
    expect(registerSecondOrderGradients()).toEqual([...SECOND_ORDER_KERNELS]);
    expect(tf.getGradient('MaxPoolGrad')).toBe(g);
  });

  it('crossEntropySum is Σ_b CE_b (kd-core crossEntropy × B), with soft targets too', () => {
    const z = tf.tensor2d(values(8, 5), [2, 4]);
    const t = tf.tensor2d([0, 1, 0, 0, 0.25, 0, 0.5, 0.25], [2, 4]);
    expect(crossEntropySum(z, t).dataSync()[0]).toBeCloseTo(2 * crossEntropy(z, t).dataSync()[0], 5);
    const r = finiteDifferenceCheck((zz) => crossEntropySum(zz, t), values(8, 5), [2, 4], 1e-3);
    expect(r.maxRelError).toBeLessThan(1e-2);
  });
});

describe('MaxPoolGrad gradient = the transpose of MaxPoolGrad (probed one output at a time)', () => {
  beforeAll(() => registerSecondOrderGradients());

  // MaxPoolGrad(dy) = ∂/∂x ⟨maxPool(x), dy⟩, linear in dy: its transpose's column j is MaxPoolGrad(e_j).
  const cases: [string, number[], number, number, 'valid' | 'same'][] = [
    ['2×2 stride 2 valid, odd size (a row dropped)', [2, 5, 5, 2], 2, 2, 'valid'],
    ['3×3 stride 2 same (overlapping windows)', [1, 5, 6, 2], 3, 2, 'same'],
    ['3×3 stride 1 same', [1, 4, 4, 1], 3, 1, 'same'],
    ['2×2 stride 3 valid (gaps)', [1, 7, 7, 1], 2, 3, 'valid'],
  ];
  it.each(cases)('%s, with ties (ReLU zeros)', (_name, shape, f, s, pad) => {
    tf.tidy(() => {
      const n = shape.reduce((a, b) => a * b, 1);
      const x = tf.relu(tf.tensor4d(values(n, 11 + f + s, -1, 1), shape as [number, number, number, number])); // ~half zeros: tie windows
      const y = tf.maxPool(x, f, s, pad);
      const ddx = tf.tensor4d(values(n, 17), shape as [number, number, number, number]);
      const back = (dy: tf.Tensor) => tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(xx as tf.Tensor4D, f, s, pad), dy)))(x);
      // the registered gradient, through a double backward: ∂/∂dy ⟨MaxPoolGrad(dy), ddx⟩
      const got = tf.grad((dy: tf.Tensor) => tf.sum(tf.mul(back(dy), ddx)))(tf.zerosLike(y)).dataSync();
      const direct = maxPoolSelect(ddx, x, y, { filterSize: f, strides: s, pad }).dataSync();
      const ddxv = ddx.dataSync();
      const probed = Array.from({ length: y.size }, (_, j) => {
        const col = back(tf.reshape(oneHotFloat(tf.tensor1d([j], 'int32'), y.size), y.shape)).dataSync();
        return Array.from(col).reduce((acc, v, i) => acc + v * ddxv[i], 0);
      });
      expect(Array.from(got)).toEqual(probed.map((v) => Math.fround(v)));
      expect(Array.from(direct)).toEqual(Array.from(got));
      expect(x.dataSync().filter((v) => v === 0).length).toBeGreaterThan(n / 4);
    });
  });
});

describe('Conv2DBackpropFilter gradient', () => {
  beforeAll(() => registerSecondOrderGradients());

  it('matches finite differences in x and in dy (stride 2, same padding)', () => {
    const filterShape: [number, number, number, number] = [3, 3, 2, 3];
    const c = tf.tensor4d(values(18 * 3, 21), filterShape);
    const dw = (x: tf.Tensor, dy: tf.Tensor) => {
      // dW of conv2d(x, W) for the upstream gradient dy, via the gradient of ⟨conv2d(x, W), dy⟩ in W
      const w0 = tf.zeros(filterShape);
      return tf.grad((w: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, 'same'), dy)))(w0);
    };
    const x0 = values(2 * 5 * 5 * 2, 22);
    const dy0 = values(2 * 3 * 3 * 3, 23);
    const rx = finiteDifferenceCheck((x) => tf.sum(tf.mul(dw(x, tf.tensor4d(dy0, [2, 3, 3, 3])), c)) as tf.Scalar, x0, [2, 5, 5, 2], 1e-2);
    const rdy = finiteDifferenceCheck((dy) => tf.sum(tf.mul(dw(tf.tensor4d(x0, [2, 5, 5, 2]), dy), c)) as tf.Scalar, dy0, [2, 3, 3, 3], 1e-2);
    expect(rx.maxRelError).toBeLessThan(1e-3);
    expect(rdy.maxRelError).toBeLessThan(1e-3);
  });
});

describe('double backward d/dθ ‖∂L/∂x‖² (L = Σ_b CE) against central differences (float32, ε = 1e-3)', () => {
  beforeAll(() => registerSecondOrderGradients());

  it('MLP: dense + relu + dense + softmax CE (every weight)', () => {
    const model = mlp(7);
    const x = tf.tensor2d(values(4 * 6, 31, -2, 2), [4, 6]);
    const t = oneHotFloat(tf.tensor1d([0, 1, 2, 1], 'int32'), 3);
    const r = fdVariables(() => squaredInputGradient(model, x, t), model.trainableWeights.map((w) => w.read() as tf.Variable), 1e-3);
    expect(r.checked).toBe(6 * 5 + 5 + 5 * 3 + 3);
    expect(r.maxRelError).toBeLessThan(1e-2);
    model.dispose();
  });

  it("CNN: conv2d + relu + maxpool + dense (every weight; MaxPoolGrad's gradient registered here)", () => {
    const model = convNet(8);
    const x = tf.tensor4d(values(2 * 6 * 6, 41, 0, 1), [2, 6, 6, 1]);
    const t = oneHotFloat(tf.tensor1d([2, 0], 'int32'), 3);
    const r = fdVariables(() => squaredInputGradient(model, x, t), model.trainableWeights.map((w) => w.read() as tf.Variable), 1e-3);
    expect(r.checked).toBe(3 * 3 * 1 * 3 + 3 + 27 * 3 + 3);
    expect(r.maxRelError).toBeLessThan(1e-2);
    expect(r.maxAnalytic).toBeGreaterThan(1e-3);
    model.dispose();
  });

  it('BatchNormalization in training mode (batch statistics) also has a complete double backward', () => {
    const model = mlp(9, { batchNorm: true });
    const x = tf.tensor2d(values(4 * 6, 51, -2, 2), [4, 6]);
    const t = oneHotFloat(tf.tensor1d([0, 1, 2, 1], 'int32'), 3);
    const r = fdVariables(() => squaredInputGradient(model, x, t), model.trainableWeights.map((w) => w.read() as tf.Variable), 1e-3);
    expect(r.maxRelError).toBeLessThan(1e-2);
    model.dispose();
  });
});

describe('secondOrderBlockers', () => {
  it('names layers whose ops lose second-order paths, and none in Dense/Conv2D/ReLU/MaxPooling2D models', () => {
    expect(secondOrderBlockers(convNet(1))).toEqual([]);
    expect(secondOrderBlockers(mlp(1, { batchNorm: true }))).toEqual([]);
    const x0 = tfl.input({ shape: [4, 4, 1] });
    let h = tfl.layers.conv2d({ filters: 2, kernelSize: 3, activation: 'tanh', name: 'c1' }).apply(x0) as tfl.SymbolicTensor;
    h = tfl.layers.averagePooling2d({ poolSize: 2, name: 'avg' }).apply(h) as tfl.SymbolicTensor;
    h = tfl.layers.flatten().apply(h) as tfl.SymbolicTensor;
    const out = tfl.layers.dense({ units: 3, activation: 'softmax', name: 'probs' }).apply(h) as tfl.SymbolicTensor;
    expect(secondOrderBlockers(tfl.model({ inputs: x0, outputs: out }))).toEqual([
      { layer: 'c1', kernel: 'Tanh' },
      { layer: 'avg', kernel: 'AvgPoolGrad' },
      { layer: 'probs', kernel: 'Softmax' },
    ]);
  });
});
