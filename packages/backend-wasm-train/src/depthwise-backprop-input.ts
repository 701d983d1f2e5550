/**
 * DepthwiseConv2dNativeBackpropInput for the wasm backend (gradient of depthwiseConv2d w.r.t. x).
 *
 *   dx[n, h, w, c] = sum_{i, j, a, b, m : i*sh + a*dh - top = h, j*sw + b*dw - left = w}
 *                    dy[n, i, j, c*M + m] * W[a, b, c, m]
 *
 * Two implementations; the kernel picks by size (see README for the measurements):
 *  - `native`: the transposed convolution, i.e. dy with (stride-1) zeros inserted between pixels,
 *    padded by (effective filter - 1 - top), correlated by the wasm depthwise conv kernel with the
 *    180°-rotated filter [FH, FW, C*M, 1] at the forward dilation, then summed over M.
 *  - `loop`: a scatter loop over the wasm heap (no intermediates at all).
 */
import {
  backend_util,
  DepthwiseConv2dNativeBackpropInput,
  KernelConfig,
  KernelFunc,
  Tensor,
  TensorInfo,
} from '@tensorflow/tfjs-core';
import { KdError } from '@tfkd/kd-core';
import { adopt, assertFloat, dilateSpatial, disposeAll, padOrCrop, pair, run, WasmHeapBackend } from './kernel-utils';

export interface DepthwiseBackpropInputAttrs {
  strides: number | [number, number];
  dilations?: number | [number, number];
  pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  inputShape: [number, number, number, number];
}

type ConvInfo = backend_util.Conv2DInfo;

function checkShapes(dy: TensorInfo, filter: TensorInfo, info: ConvInfo): void {
  const [, , ch, mult] = filter.shape;
  const ok =
    dy.shape.length === 4 &&
    dy.shape[0] === info.batchSize &&
    dy.shape[1] === info.outHeight &&
    dy.shape[2] === info.outWidth &&
    dy.shape[3] === ch * mult &&
    info.inChannels === ch;
  if (!ok) {
    throw new KdError(
      'KD_SHAPE_MISMATCH',
      `${DepthwiseConv2dNativeBackpropInput}: dy [${dy.shape}] and filter [${filter.shape}] do not fit inputShape [${info.inShape}] (expected dy [${info.outShape}])`,
      { fix: 'Pass the dy produced by the forward depthwiseConv2d with the same strides, pad, dilations and filter' },
    );
  }
}

/** Transposed depthwise conv built from PadV2 / Reverse / DepthwiseConv2dNative / Sum. */
export function backpropInputNative(dy: TensorInfo, filter: TensorInfo, info: ConvInfo): Tensor {
  const [fh, fw, ch, mult] = filter.shape;
  const { batchSize: n, inHeight: H, inWidth: W } = info;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const cm = ch * mult;
  const owned: Tensor[] = [];
  const keep = (t: Tensor): Tensor => (owned.push(t), t);
  try {
    // 1. Insert (stride - 1) zeros after every dy pixel.
    const dilated = dilateSpatial(dy, sh, sw);
    const dyd: TensorInfo = dilated ? keep(dilated) : dy;
    // 2. Pad so a stride-1 correlation with the rotated filter yields exactly H x W.
    const effH = (fh - 1) * dh + 1;
    const effW = (fw - 1) * dw + 1;
    const pt = effH - 1 - info.padInfo.top;
    const pl = effW - 1 - info.padInfo.left;
    const pb = H + effH - 1 - pt - dyd.shape[1];
    const pr = W + effW - 1 - pl - dyd.shape[2];
    const dyp = keep(padOrCrop(dyd, [[0, 0], [pt, pb], [pl, pr], [0, 0]]));
    // 3. Rotate the filter by 180° and lay it out as [FH, FW, C*M, 1].
    const rot = keep(run('Reverse', { x: filter }, { dims: [0, 1] }));
    const rot4 = keep(run('Reshape', { x: rot }, { shape: [fh, fw, cm, 1] }));
    const conv = keep(
      run('DepthwiseConv2dNative', { x: dyp, filter: rot4 }, { strides: [1, 1], dilations: [dh, dw], pad: 'valid', dataFormat: 'NHWC' }),
    );
    if (mult === 1) return run('Reshape', { x: conv }, { shape: [n, H, W, ch] });
    const r5 = keep(run('Reshape', { x: conv }, { shape: [n, H, W, ch, mult] }));
    return run('Sum', { x: r5 }, { axis: [4], keepDims: false });
  } finally {
    disposeAll(...owned);
  }
}

/** Scatter loop over the wasm heap. */
export function backpropInputLoop(backend: WasmHeapBackend, dy: TensorInfo, filter: TensorInfo, info: ConvInfo): TensorInfo {
  const [fh, fw, ch, mult] = filter.shape;
  const { batchSize: n, inHeight: H, inWidth: W, outHeight: oh, outWidth: ow } = info;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const { top, left } = info.padInfo;
  const cm = ch * mult;
  const out = backend.makeOutput([n, H, W, ch], 'float32');
  const dyv = backend.typedArrayFromHeap(dy) as Float32Array;
  const wv = backend.typedArrayFromHeap(filter) as Float32Array;
  const ov = backend.typedArrayFromHeap(out) as Float32Array;
  ov.fill(0);
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < oh; i++) {
      for (let fr = 0; fr < fh; fr++) {
        const h = i * sh + fr * dh - top;
        if (h < 0 || h >= H) continue;
        for (let j = 0; j < ow; j++) {
          const dyOff = ((b * oh + i) * ow + j) * cm;
          for (let fc = 0; fc < fw; fc++) {
            const w = j * sw + fc * dw - left;
            if (w < 0 || w >= W) continue;
            const oOff = ((b * H + h) * W + w) * ch;
            const wOff = (fr * fw + fc) * cm;
            if (mult === 1) {
              for (let c = 0; c < ch; c++) ov[oOff + c] += dyv[dyOff + c] * wv[wOff + c];
            } else {
              for (let c = 0; c < ch; c++) {
                let s = 0;
                for (let m = 0; m < mult; m++) s += dyv[dyOff + c * mult + m] * wv[wOff + c * mult + m];
                ov[oOff + c] += s;
              }
            }
          }
        }
      }
    }
  }
  return out;
}

/** Below this many multiply-adds the loop wins (no kernel launches); above it XNNPACK does. */
export const NATIVE_MIN_MACS = 4096;

/** Which implementation the kernel uses; 'auto' picks by size. Exposed for tests and benchmarks. */
export const depthwiseInputStrategy: { mode: 'auto' | 'native' | 'loop' } = { mode: 'auto' };

export function depthwiseConv2dNativeBackpropInputWasm(args: {
  inputs: { dy: TensorInfo; filter: TensorInfo };
  backend: WasmHeapBackend;
  attrs: DepthwiseBackpropInputAttrs;
}): TensorInfo {
  const { inputs, backend, attrs } = args;
  const { dy, filter } = inputs;
  assertFloat(DepthwiseConv2dNativeBackpropInput, dy, filter);
  const info = backend_util.computeConv2DInfo(
    attrs.inputShape,
    filter.shape as [number, number, number, number],
    attrs.strides,
    pair(attrs.dilations),
    attrs.pad,
    attrs.dimRoundingMode,
    true,
  );
  checkShapes(dy, filter, info);
  const macs = dy.shape.reduce((a, b) => a * b, 1) * filter.shape[0] * filter.shape[1];
  const mode = depthwiseInputStrategy.mode;
  if (mode === 'loop' || (mode === 'auto' && macs < NATIVE_MIN_MACS)) return backpropInputLoop(backend, dy, filter, info);
  return adopt(backend, backpropInputNative(dy, filter, info));
}

export const depthwiseConv2dNativeBackpropInputWasmConfig: KernelConfig = {
  kernelName: DepthwiseConv2dNativeBackpropInput,
  backendName: 'wasm',
  kernelFunc: depthwiseConv2dNativeBackpropInputWasm as unknown as KernelFunc,
};
