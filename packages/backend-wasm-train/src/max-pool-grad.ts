/**
 * MaxPoolGrad for the wasm backend — a *replacement* of the native kernel (a per-element C++ loop
 * that re-scans every window for every input pixel: 136 ms of a cnn-large b128 training step).
 * One pass over the output windows on the wasm heap: for each window the argmax of `x` per channel
 * (first maximum in row-major window order, strict `>`, so NaN is never picked and ties go to the
 * first position — the cpu backend's rule), then dx[argmax] += dy. NHWC, any filter/stride/pad.
 * Channels in groups of 4 go through the wasm SIMD loop of simd.ts (same rule, 4 lanes per compare;
 * ~10x fewer instructions than this JS loop); the channels past the last multiple of 4, and every
 * channel where SIMD is not available, through the JS loop below.
 */
import { backend_util, MaxPoolGrad, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import { assertFloat, type WasmHeapBackend } from './kernel-utils';
import { simdKernels } from './simd';

interface MaxPoolGradAttrs {
  filterSize: number | [number, number];
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

export function maxPoolGradWasm(args: {
  inputs: { dy: TensorInfo; input: TensorInfo; output: TensorInfo };
  backend: WasmHeapBackend;
  attrs: MaxPoolGradAttrs;
}): TensorInfo {
  const { inputs, backend, attrs } = args;
  const { dy, input: x } = inputs;
  assertFloat(MaxPoolGrad, dy, x);
  const info = backend_util.computePool2DInfo(
    x.shape as [number, number, number, number],
    attrs.filterSize,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info;
  const { strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw } = info;
  const { top, left } = info.padInfo;
  const out = backend.makeOutput(x.shape, 'float32');
  const dx = backend.typedArrayFromHeap(out) as Float32Array;
  dx.fill(0);
  const xv = backend.typedArrayFromHeap(x) as Float32Array;
  const dyv = backend.typedArrayFromHeap(dy) as Float32Array;
  const simd = dx.length > 0 ? simdKernels(backend) : null;
  const c4 = simd ? c - (c % 4) : 0;
  if (simd && c4 > 0) {
    simd.maxPoolGrad(xv.byteOffset, dyv.byteOffset, dx.byteOffset, n, h, w, c, oh, ow, sh, sw, fh, fw, top, left, c4);
    if (c4 === c) return out;
  }
  jsLoop(xv, dyv, dx, { n, h, w, c, oh, ow, sh, sw, fh, fw, top, left }, c4);
  return out;
}

interface PoolGeometry {
  n: number;
  h: number;
  w: number;
  c: number;
  oh: number;
  ow: number;
  sh: number;
  sw: number;
  fh: number;
  fw: number;
  top: number;
  left: number;
}

/** Channels [from, c) of MaxPoolGrad in plain JS (dx zeroed by the caller). */
function jsLoop(xv: Float32Array, dyv: Float32Array, dx: Float32Array, g: PoolGeometry, from: number): void {
  const { n, h, w, c, oh, ow, sh, sw, fh, fw, top, left } = g;
  const best = new Float32Array(c);
  const where = new Int32Array(c);
  for (let b = 0; b < n; b++) {
    const xb = b * h * w * c;
    for (let i = 0; i < oh; i++) {
      const r0 = Math.max(0, i * sh - top);
      const r1 = Math.min(h, i * sh - top + fh);
      for (let j = 0; j < ow; j++) {
        const c0 = Math.max(0, j * sw - left);
        const c1 = Math.min(w, j * sw - left + fw);
        best.fill(-Infinity);
        where.fill(-1);
        for (let r = r0; r < r1; r++) {
          for (let q = c0; q < c1; q++) {
            const base = xb + (r * w + q) * c;
            for (let d = from; d < c; d++) {
              const v = xv[base + d];
              if (v > best[d]) {
                best[d] = v;
                where[d] = base + d;
              }
            }
          }
        }
        const dyBase = ((b * oh + i) * ow + j) * c;
        for (let d = from; d < c; d++) {
          const at = where[d];
          if (at >= 0) dx[at] += dyv[dyBase + d];
        }
      }
    }
  }
}

export const maxPoolGradWasmConfig: KernelConfig = {
  kernelName: MaxPoolGrad,
  backendName: 'wasm',
  kernelFunc: maxPoolGradWasm as unknown as KernelFunc,
};
