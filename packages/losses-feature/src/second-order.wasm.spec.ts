/**
 * The double backward d/dθ ‖∂L/∂x‖² on the wasm backend (tfjs-backend-wasm 4.22 + the training
 * kernels of @tfkd/backend-wasm-train, loaded as `initWasmBackend` does) equals the cpu one.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { initWasmBackend } from '@tfkd/backend-wasm-train';
import { oneHotFloat } from '@tfkd/kd-core';
import { values } from './__fixtures__/reference';
import { convNet, mlp, squaredInputGradient } from './__fixtures__/second-order';
import { registerSecondOrderGradients } from './second-order';

jest.setTimeout(60_000);

/** The gradient of ‖∂L/∂x‖² in every weight, the kernels it ran, on one backend. */
async function doubleBackward(backend: 'cpu' | 'wasm', build: () => tfl.LayersModel, x: { values: number[]; shape: number[] }, labels: number[]) {
  if (backend === 'wasm') {
    if (!(await initWasmBackend())) throw new Error('wasm backend could not be initialised');
  } else {
    await tf.setBackend('cpu');
  }
  const model = build(); // same seeds on both backends: the same initial weights
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const xs = tf.tensor(x.values, x.shape);
  const t = oneHotFloat(tf.tensor1d(labels, 'int32'), 3);
  let grads: Float64Array[] = [];
  const profile = await tf.profile(() => {
    const g = tf.variableGrads(() => squaredInputGradient(model, xs, t), vars);
    grads = vars.map((v) => Float64Array.from(g.grads[v.name].dataSync()));
    tf.dispose([g.value, ...Object.values(g.grads)]);
  });
  tf.dispose([xs, t]);
  model.dispose();
  return { grads, kernels: [...new Set(profile.kernelNames)].sort() };
}

function relErr(a: Float64Array[], b: Float64Array[]): number {
  let diff = 0;
  let scale = 1e-6;
  a.forEach((g, k) =>
    g.forEach((v, i) => {
      diff = Math.max(diff, Math.abs(v - b[k][i]));
      scale = Math.max(scale, Math.abs(b[k][i]));
    }),
  );
  return diff / scale;
}

describe('double backward on wasm (+ @tfkd/backend-wasm-train) = cpu', () => {
  beforeAll(() => registerSecondOrderGradients());
  afterAll(async () => {
    await tf.setBackend('cpu');
  });

  const mlpInput = { values: values(4 * 6, 31, -2, 2), shape: [4, 6] };
  const convInput = { values: values(2 * 6 * 6, 41, 0, 1), shape: [2, 6, 6, 1] };

  it('MLP (dense + relu + dense + CE)', async () => {
    const cpu = await doubleBackward('cpu', () => mlp(7), mlpInput, [0, 1, 2, 1]);
    const wasm = await doubleBackward('wasm', () => mlp(7), mlpInput, [0, 1, 2, 1]);
    expect(relErr(wasm.grads, cpu.grads)).toBeLessThan(1e-4);
    expect(wasm.kernels).toEqual(expect.arrayContaining(['BatchMatMul', 'Relu', 'Step', 'Softmax']));
  });

  it('CNN (conv2d + relu + maxpool + dense + CE): MaxPoolGrad, its gradient, Conv2DBackpropInput and its gradient', async () => {
    const cpu = await doubleBackward('cpu', () => convNet(8), convInput, [2, 0]);
    const wasm = await doubleBackward('wasm', () => convNet(8), convInput, [2, 0]);
    expect(relErr(wasm.grads, cpu.grads)).toBeLessThan(1e-4);
    expect(wasm.kernels).toEqual(expect.arrayContaining(['Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'MaxPool', 'MaxPoolGrad', 'PadV2', 'Equal']));
  });

  it('MLP with BatchNormalization (training mode)', async () => {
    const cpu = await doubleBackward('cpu', () => mlp(9, { batchNorm: true }), mlpInput, [0, 1, 2, 1]);
    const wasm = await doubleBackward('wasm', () => mlp(9, { batchNorm: true }), mlpInput, [0, 1, 2, 1]);
    expect(relErr(wasm.grads, cpu.grads)).toBeLessThan(1e-4);
  });
});
