/**
 * Sum for the wasm backend — a *wrapper* around the native kernel. The native kernel reduces only
 * innermost axes, so a reduction over leading axes (the bias gradient of every conv and dense
 * layer: [N, H, W, C] -> [C]) first transposes the whole input ([C, N·H·W]) and then sums it: 45 ms
 * of a cnn-large step's 86 ms of Sum went into that for one [128, 28, 28, 32] tensor. Here a
 * float32 reduction over a *prefix* of the axes is one pass over the wasm heap with float64
 * accumulators (one per kept element, rows summed in order); everything else goes to the native kernel.
 * The pass runs in the wasm SIMD loop of simd.ts (2 columns per f64x2, the same order and float64
 * adds, so the same bits) where available — ~5x faster than this JS loop — and in JS otherwise.
 */
import { backend_util, Sum, util, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import type { WasmHeapBackend } from './kernel-utils';
import { simdKernels } from './simd';

/** Below this many elements the native kernel's fixed cost is no worse than ours. */
const MIN_SIZE = 4096;

export function wrapSum(native: KernelConfig): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const x = args.inputs.x as TensorInfo;
    const { axis, keepDims } = args.attrs as unknown as { axis: number | number[]; keepDims: boolean };
    const rank = x.shape.length;
    const axes = util.parseAxisParam(axis, x.shape).sort((a, b) => a - b);
    const size = util.sizeFromShape(x.shape);
    const isPrefix = axes.length > 0 && axes.length < rank && axes.every((a, i) => a === i);
    if (x.dtype !== 'float32' || !isPrefix || size < MIN_SIZE) return native.kernelFunc(args);
    const backend = args.backend as WasmHeapBackend;
    const keptShape = x.shape.slice(axes.length);
    const cols = util.sizeFromShape(keptShape);
    const rows = size / cols;
    const outShape = keepDims ? backend_util.expandShapeToKeepDim(keptShape, axes) : keptShape;
    const out = backend.makeOutput(outShape, 'float32');
    const simd = cols >= 2 ? simdKernels(backend) : null;
    if (simd) {
      // float64 accumulators on the heap (8 bytes per column); views taken after the allocations.
      const scratch = backend.makeOutput([2 * cols], 'float32');
      try {
        const s32 = backend.typedArrayFromHeap(scratch) as Float32Array;
        if (s32.byteOffset % 8 === 0) {
          const acc = new Float64Array(s32.buffer, s32.byteOffset, cols);
          acc.fill(0);
          const src = backend.typedArrayFromHeap(x) as Float32Array;
          const cols2 = cols - (cols % 2);
          simd.sumRows(src.byteOffset, rows, cols, cols2, acc.byteOffset);
          if (cols2 < cols) sumRowsJs(src, rows, cols, acc, cols2);
          (backend.typedArrayFromHeap(out) as Float32Array).set(acc);
          return out;
        }
      } finally {
        backend.disposeData(scratch.dataId);
      }
    }
    const src = backend.typedArrayFromHeap(x) as Float32Array;
    const acc = new Float64Array(cols);
    sumRowsJs(src, rows, cols, acc, 0);
    (backend.typedArrayFromHeap(out) as Float32Array).set(acc);
    return out;
  };
  return { kernelName: Sum, backendName: 'wasm', setupFunc: native.setupFunc, disposeFunc: native.disposeFunc, kernelFunc };
}

/** acc[c] += src[r, c] for every row, columns [from, cols), in row order (float64). */
function sumRowsJs(src: Float32Array, rows: number, cols: number, acc: Float64Array, from: number): void {
  for (let r = 0, off = 0; r < rows; r++, off += cols) {
    for (let c = from; c < cols; c++) acc[c] += src[off + c];
  }
}
