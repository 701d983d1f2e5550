/**
 * ReLU's gradient as one kernel on wasm. tfjs-core's gradient of `Relu` is `dy · cast(step(x))`:
 * three kernels (Step, Cast, Multiply), three passes over the activation and two intermediate
 * buffers per ReLU of a training step. `TfkdReluGrad` computes the same product in one pass (the
 * wasm SIMD loop of simd.ts for 4 floats at a time, JS for the rest): out = dy · s with s = 1 where
 * x > 0, NaN where x is NaN, 0 elsewhere — tfjs's Step — and the float32 product as tfjs's Multiply
 * computes it, so the gradient is the same bit for bit (signed zeros and NaNs included).
 *
 * tfjs looks a kernel's gradient up by kernel name, for every backend, so using it means replacing
 * tfjs-core's `Relu` gradient — opt-in (`registerWasmTrainingKernels({ fusedReluGradient: true })` or
 * `initWasmBackend({ fusedReluGradient: true })`): the replacement runs `TfkdReluGrad` where the active
 * backend has it (wasm, with this package) and tfjs's own expression everywhere else, and `false`
 * puts tfjs's gradient back. `TfkdReluGrad` has a gradient too (linear in dy: ddy · step(x); zero in
 * x), so second-order gradients through ReLU keep working. Opt-in because the kernels a gradient runs
 * change (Step/Cast/Multiply → TfkdReluGrad) — code that inspects them (a profile, a test listing
 * kernels) sees the difference — and because it is global to the process.
 */
import {
  cast,
  engine,
  getBackend,
  getGradient,
  getKernel,
  mul,
  registerGradient,
  step,
  zerosLike,
  type GradConfig,
  type KernelConfig,
  type KernelFunc,
  type Tensor,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import type { WasmHeapBackend } from './kernel-utils';
import { simdKernels } from './simd';

export const RELU_GRAD_KERNEL = 'TfkdReluGrad';

/** dy · step(x) over elements [from, n) (float32, as tfjs's Step then Multiply). */
function reluGradJs(dy: Float32Array, x: Float32Array, out: Float32Array, from: number): void {
  for (let i = from; i < out.length; i++) {
    const v = x[i];
    out[i] = dy[i] * (v > 0 ? 1 : v !== v ? NaN : 0);
  }
}

const reluGradWasm: KernelFunc = ({ inputs, backend }) => {
  const { dy, x } = inputs as unknown as { dy: TensorInfo; x: TensorInfo };
  const b = backend as WasmHeapBackend;
  const out = b.makeOutput(x.shape.slice(), 'float32');
  const o = b.typedArrayFromHeap(out) as Float32Array;
  const dyv = b.typedArrayFromHeap(dy) as Float32Array;
  const xv = b.typedArrayFromHeap(x) as Float32Array;
  const n4 = o.length - (o.length % 4);
  const simd = n4 > 0 ? simdKernels(b) : null;
  if (simd) simd.reluGrad(dyv.byteOffset, xv.byteOffset, o.byteOffset, n4 * 4);
  reluGradJs(dyv, xv, o, simd ? n4 : 0);
  return out;
};

export const reluGradWasmConfig: KernelConfig = { kernelName: RELU_GRAD_KERNEL, backendName: 'wasm', kernelFunc: reluGradWasm };

/** dy · step(x): one kernel where the backend has it, tfjs-core's Relu gradient expression otherwise. */
function reluGrad(dy: Tensor, x: Tensor): Tensor {
  const fused = dy.dtype === 'float32' && x.dtype === 'float32' && dy.size === x.size && getKernel(RELU_GRAD_KERNEL, getBackend()) != null;
  if (fused) return engine().runKernel(RELU_GRAD_KERNEL, { dy, x }) as Tensor;
  return mul(dy, cast(step(x), 'float32'));
}

const reluGradConfig: GradConfig = {
  kernelName: 'Relu',
  inputsToSave: ['x'],
  gradFunc: (dy, saved) => {
    const [x] = saved;
    return { x: () => reluGrad(dy as Tensor, x) };
  },
};

const reluGradGradConfig: GradConfig = {
  kernelName: RELU_GRAD_KERNEL,
  inputsToSave: ['x'],
  gradFunc: (ddx, saved) => {
    const [x] = saved;
    return { dy: () => reluGrad(ddx as Tensor, x), x: () => zerosLike(x) };
  },
};

/** tfjs-core's own `Relu` gradient (what is put back when tfjs's registration was not seen). */
const tfjsExpressionConfig: GradConfig = {
  kernelName: 'Relu',
  inputsToSave: ['x'],
  gradFunc: (dy, saved) => {
    const [x] = saved;
    return { x: () => mul(dy as Tensor, cast(step(x), 'float32')) };
  },
};
let tfjsReluGradient: GradConfig | null = null;
let fusedOn = false;

/** Replaces tfjs-core's `Relu` gradient by the one-kernel one (true) or puts tfjs's back (false); idempotent. */
export function setFusedReluGradient(on: boolean): void {
  if (getGradient(RELU_GRAD_KERNEL) == null) registerGradient(reluGradGradConfig);
  const current = getGradient('Relu');
  if (on) {
    if (current !== reluGradConfig) {
      tfjsReluGradient = current ?? null;
      registerGradient(reluGradConfig);
    }
  } else if (current === reluGradConfig) {
    registerGradient(tfjsReluGradient ?? tfjsExpressionConfig);
  }
  fusedOn = on;
}

/** Whether the `Relu` gradient in place is the one-kernel one. */
export function fusedReluGradient(): boolean {
  return fusedOn && getGradient('Relu') === reluGradConfig;
}
