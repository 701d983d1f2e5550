/**
 * UnsortedSegmentSum for the wasm backend (it is the gradient of gather / embedding lookups).
 *
 *   out[s, ...rest] = sum_{k : segmentIds[k] = s} x[k, ...rest]      (ids outside [0, numSegments) dropped)
 *
 * `segmentIds` indexes the leading dims of `x` (its shape is a prefix of x's shape). One pass over
 * the wasm heap: O(x.size), independent of numSegments, where the cpu kernel does numSegments
 * masked reductions.
 */
import { KernelConfig, KernelFunc, TensorInfo, UnsortedSegmentSum } from '@tensorflow/tfjs-core';
import { KdError } from '@tfkd/kd-core';
import { WasmHeapBackend } from './kernel-utils';

export function unsortedSegmentSumWasm(args: {
  inputs: { x: TensorInfo; segmentIds: TensorInfo };
  backend: WasmHeapBackend;
  attrs: { numSegments: number };
}): TensorInfo {
  const { inputs, backend, attrs } = args;
  const { x, segmentIds } = inputs;
  const { numSegments } = attrs;
  const idRank = segmentIds.shape.length;
  const prefixOk = idRank <= x.shape.length && segmentIds.shape.every((d, i) => d === x.shape[i]);
  if (!prefixOk || !Number.isInteger(numSegments) || numSegments < 0) {
    throw new KdError(
      'KD_SHAPE_MISMATCH',
      `${UnsortedSegmentSum}: segmentIds [${segmentIds.shape}] must be a prefix of x [${x.shape}] and numSegments (${numSegments}) a non-negative integer`,
      { fix: 'Pass one segment id per leading slice of x, e.g. x [n, d] with segmentIds [n]' },
    );
  }
  if (x.dtype !== 'float32' && x.dtype !== 'int32') {
    throw new KdError('KD_BACKEND_UNAVAILABLE', `${UnsortedSegmentSum} on wasm supports float32 and int32 x, got ${x.dtype}`, {
      fix: 'Cast x to float32 first',
    });
  }
  const rest = x.shape.slice(idRank);
  const inner = rest.reduce((a, b) => a * b, 1);
  const numIds = segmentIds.shape.reduce((a, b) => a * b, 1);
  const out = backend.makeOutput([numSegments, ...rest], x.dtype);
  const xv = backend.typedArrayFromHeap(x) as Float32Array | Int32Array;
  const ids = backend.typedArrayFromHeap(segmentIds) as Int32Array | Float32Array;
  const ov = backend.typedArrayFromHeap(out) as Float32Array | Int32Array;
  ov.fill(0);
  for (let k = 0; k < numIds; k++) {
    const s = ids[k];
    if (!(s >= 0 && s < numSegments) || Math.floor(s) !== s) continue;
    const o = s * inner;
    const xo = k * inner;
    for (let e = 0; e < inner; e++) ov[o + e] += xv[xo + e];
  }
  return out;
}

export const unsortedSegmentSumWasmConfig: KernelConfig = {
  kernelName: UnsortedSegmentSum,
  backendName: 'wasm',
  kernelFunc: unsortedSegmentSumWasm as unknown as KernelFunc,
};
