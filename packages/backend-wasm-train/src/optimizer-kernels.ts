/**
 * The fused optimizer kernels of @tfkd/kd-core (`FusedAdamOptimizer`, `FusedMomentumOptimizer`,
 * `FusedSGDOptimizer`) for the wasm backend: one kernel call updates every variable and its slots,
 * on the heap. The arithmetic is kd-core's (`adamLoop` / `sgdLoop`: tfjs's float32 expressions in
 * tfjs's order); Adam's elements go 4 at a time through the SIMD loop of simd.ts (the same IEEE
 * float32 operations, so the same bits), the last size mod 4 through the JS loop.
 */
import type { KernelBackend, KernelConfig, TensorInfo } from '@tensorflow/tfjs-core';
import {
  adamLoop,
  FUSED_ADAM_KERNEL,
  FUSED_SGD_KERNEL,
  makeFusedAdamKernel,
  makeFusedSgdKernel,
  type AdamLoopFn,
  type FusedKernelMemory,
} from '@tfkd/kd-core';
import type { WasmHeapBackend } from './kernel-utils';
import { simdKernels } from './simd';

function wasmMemory(backend: KernelBackend): FusedKernelMemory {
  const b = backend as WasmHeapBackend;
  return {
    read: (info: TensorInfo) => b.typedArrayFromHeap(info) as Float32Array,
    alloc: (shape: number[]) => b.makeOutput(shape, 'float32'),
  };
}

/** Adam over whole arrays on this backend: SIMD for the first size − size mod 4 elements, JS for the rest. */
function adamLoopOf(backend: KernelBackend): AdamLoopFn {
  return (k, p, m, v, g, pOut, mOut, vOut) => {
    const n = p.length;
    const n4 = n - (n % 4);
    const simd = n4 > 0 ? simdKernels(backend) : null;
    if (simd == null) {
      adamLoop(k, p, m, v, g, pOut, mOut, vOut);
      return;
    }
    simd.adam(
      p.byteOffset, m.byteOffset, v.byteOffset, g.byteOffset, pOut.byteOffset, mOut.byteOffset, vOut.byteOffset, n4 * 4,
      k.beta1, k.beta2, k.oneMinusBeta1, k.oneMinusBeta2, k.oneMinusAccBeta1, k.oneMinusAccBeta2, k.epsilon, k.negLr,
    );
    if (n4 < n) adamLoop(k, p, m, v, g, pOut, mOut, vOut, n4, n);
  };
}

export const fusedAdamWasmConfig: KernelConfig = {
  kernelName: FUSED_ADAM_KERNEL,
  backendName: 'wasm',
  kernelFunc: makeFusedAdamKernel(wasmMemory, adamLoopOf),
};

export const fusedSgdWasmConfig: KernelConfig = {
  kernelName: FUSED_SGD_KERNEL,
  backendName: 'wasm',
  kernelFunc: makeFusedSgdKernel(wasmMemory),
};
