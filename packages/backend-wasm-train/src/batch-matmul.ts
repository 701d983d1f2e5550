/**
 * BatchMatMul for the wasm backend — a *wrapper* around the native kernel: tfjs-backend-wasm 4.22
 * multiplies fast when neither operand is transposed (XNNPACK) but 5–15x slower with `transposeA`
 * or `transposeB`, which is exactly what every dense layer's backward pass asks for
 * (dW = xᵀ·dy, dx = dy·Wᵀ). Measured on the mlp-teacher step (784-1200-1200-10, batch 128):
 * 660 ms → 131 ms. The wrapper transposes the flagged operands with the wasm Transpose kernel, calls
 * the native kernel without flags, and frees the transposed copies.
 */
import { BatchMatMul, getKernel, type KernelBackend, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';

export function wrapBatchMatMul(native: KernelConfig): KernelConfig {
  const transpose = getKernel('Transpose', 'wasm');
  if (!transpose) throw new Error('wrapBatchMatMul: the wasm Transpose kernel is not registered');
  const kernelFunc: KernelFunc = ({ inputs, backend, attrs }) => {
    const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
    if (!transposeA && !transposeB) return native.kernelFunc({ inputs, backend, attrs });
    const copies: TensorInfo[] = [];
    const flip = (t: TensorInfo): TensorInfo => {
      const r = t.shape.length;
      const perm = [...Array(r - 2).keys(), r - 1, r - 2];
      const out = transpose.kernelFunc({ inputs: { x: t }, backend, attrs: { perm } }) as TensorInfo;
      copies.push(out);
      return out;
    };
    try {
      const a = transposeA ? flip(inputs.a as TensorInfo) : inputs.a;
      const b = transposeB ? flip(inputs.b as TensorInfo) : inputs.b;
      return native.kernelFunc({ inputs: { a, b }, backend, attrs: { ...attrs, transposeA: false, transposeB: false } });
    } finally {
      for (const c of copies) (backend as KernelBackend).disposeData(c.dataId);
    }
  };
  return { kernelName: BatchMatMul, backendName: 'wasm', setupFunc: native.setupFunc, disposeFunc: native.disposeFunc, kernelFunc };
}
