/** Registration of the training kernels for the 'wasm' backend. */
import {
  BatchMatMul,
  Conv2DBackpropFilter,
  Conv2DBackpropInput,
  DepthwiseConv2dNativeBackpropFilter,
  DepthwiseConv2dNativeBackpropInput,
  Einsum,
  getKernel,
  Identity,
  KernelConfig,
  MaxPoolGrad,
  registerKernel,
  Sum,
  UnsortedSegmentSum,
  unregisterKernel,
} from '@tensorflow/tfjs-core';
import { conv2DBackpropFilterWasmConfig } from './conv2d-backprop-filter';
import { conv2DBackpropInputWasmConfig } from './conv2d-backprop-input';
import { depthwiseConv2dNativeBackpropFilterWasmConfig } from './depthwise-backprop-filter';
import { depthwiseConv2dNativeBackpropInputWasmConfig } from './depthwise-backprop-input';
import { einsumWasmConfig } from './einsum';
import { unsortedSegmentSumWasmConfig } from './unsorted-segment-sum';
import { wrapBatchMatMul } from './batch-matmul';
import { makeIdentityWasm } from './identity';
import { maxPoolGradWasmConfig } from './max-pool-grad';
import { wrapSum } from './sum';
import { fusedAdamWasmConfig, fusedSgdWasmConfig } from './optimizer-kernels';
import { reluGradWasmConfig, setFusedReluGradient } from './relu-grad';
import { setSimdKernels } from './simd';

/** The kernels tfjs-backend-wasm 4.22 lacks for training, which this package provides. */
export const WASM_TRAINING_KERNELS: readonly string[] = Object.freeze([
  Conv2DBackpropFilter,
  DepthwiseConv2dNativeBackpropFilter,
  DepthwiseConv2dNativeBackpropInput,
  UnsortedSegmentSum,
  Einsum,
]);

/**
 * Fused kernels this package adds: those of @tfkd/kd-core's fused optimizers (`FusedAdamOptimizer`,
 * `FusedMomentumOptimizer`, `FusedSGDOptimizer`, what `makeOptimizer` makes: one call per step
 * instead of 2–15 per variable) and ReLU's gradient in one pass (relu-grad.ts; used once
 * `fusedReluGradient: true` has replaced tfjs-core's `Relu` gradient).
 */
export const WASM_FUSED_KERNELS: readonly string[] = Object.freeze([
  fusedAdamWasmConfig.kernelName,
  fusedSgdWasmConfig.kernelName,
  reluGradWasmConfig.kernelName,
]);

/** wasm kernels that exist but are slow enough to dominate training; replaced by default. */
export const WASM_KERNEL_REPLACEMENTS: readonly string[] = Object.freeze([Conv2DBackpropInput, MaxPoolGrad, BatchMatMul, Identity, Sum]);

const CONFIGS: readonly KernelConfig[] = [
  conv2DBackpropFilterWasmConfig,
  depthwiseConv2dNativeBackpropFilterWasmConfig,
  depthwiseConv2dNativeBackpropInputWasmConfig,
  unsortedSegmentSumWasmConfig,
  einsumWasmConfig,
  fusedAdamWasmConfig,
  fusedSgdWasmConfig,
  reluGradWasmConfig,
];
const REPLACEMENTS: readonly KernelConfig[] = [conv2DBackpropInputWasmConfig, maxPoolGradWasmConfig];
/** Replacements that wrap the native kernel (built once the native one is known). */
const WRAPPERS: ReadonlyMap<string, (native: KernelConfig) => KernelConfig> = new Map([
  [BatchMatMul, wrapBatchMatMul],
  [Identity, makeIdentityWasm],
  [Sum, wrapSum],
]);
const originals = new Map<string, KernelConfig>();
const wrapped = new Map<string, KernelConfig>();

export interface RegisterOptions {
  /** Replace the slow native kernels in {@link WASM_KERNEL_REPLACEMENTS} (default true). */
  replaceSlowKernels?: boolean;
  /**
   * Use the wasm SIMD loops (MaxPoolGrad, the fused Adam update) where the backend's memory can be
   * reached (default true; `false` runs the same kernels' JS loops — same results, for A/B timing).
   */
  simd?: boolean;
  /**
   * Replace tfjs-core's `Relu` gradient (Step → Cast → Multiply) by the one-kernel `TfkdReluGrad` on
   * wasm (same values bit for bit; other backends keep tfjs's expression). Default: unchanged (off
   * until set); `false` puts tfjs's gradient back. See relu-grad.ts.
   */
  fusedReluGradient?: boolean;
}

/**
 * Registers the kernels for backend 'wasm' (safe to call any number of times). Returns the names of
 * this package's kernels now in place. A missing kernel that a future tfjs-backend-wasm implements
 * natively is left alone and not listed. Replacements are installed only once tfjs-backend-wasm
 * has registered its own kernels (it would otherwise override ours when it loads), so call this (or
 * `initWasmBackend`) after importing tfjs-backend-wasm; `replaceSlowKernels: false` restores the
 * originals.
 */
export function registerWasmTrainingKernels(opts: RegisterOptions = {}): string[] {
  if (opts.simd != null) setSimdKernels(opts.simd);
  if (opts.fusedReluGradient != null) setFusedReluGradient(opts.fusedReluGradient);
  const names: string[] = [];
  for (const config of CONFIGS) {
    const existing = getKernel(config.kernelName, 'wasm');
    if (existing == null) registerKernel(config);
    else if (existing.kernelFunc !== config.kernelFunc) continue;
    names.push(config.kernelName);
  }
  for (const config of REPLACEMENTS) {
    const existing = getKernel(config.kernelName, 'wasm');
    const ours = existing?.kernelFunc === config.kernelFunc;
    if (opts.replaceSlowKernels === false) {
      const original = originals.get(config.kernelName);
      if (ours && original) {
        unregisterKernel(config.kernelName, 'wasm');
        registerKernel(original);
      }
      continue;
    }
    if (existing == null) continue; // tfjs-backend-wasm not loaded yet
    if (!ours) {
      originals.set(config.kernelName, existing);
      unregisterKernel(config.kernelName, 'wasm');
      // Keep the native setup (it binds the native function when the backend initialises), so
      // `replaceSlowKernels: false` can hand back a working native kernel later.
      registerKernel({ ...config, setupFunc: existing.setupFunc, disposeFunc: existing.disposeFunc });
    }
    names.push(config.kernelName);
  }
  for (const [name, wrap] of WRAPPERS) {
    const existing = getKernel(name, 'wasm');
    const ours = existing != null && existing === wrapped.get(name);
    if (opts.replaceSlowKernels === false) {
      const original = originals.get(name);
      if (ours && original) {
        unregisterKernel(name, 'wasm');
        registerKernel(original);
      }
      continue;
    }
    if (existing == null) continue;
    if (!ours) {
      originals.set(name, existing);
      const config = wrap(existing);
      wrapped.set(name, config);
      unregisterKernel(name, 'wasm');
      registerKernel(config);
    }
    names.push(name);
  }
  return names;
}
