/**
 * DepthwiseConv2dNativeBackpropFilter for the wasm backend.
 *
 *   dW[a, b, c, m] = sum_{n, i, j} x[n, i*sh + a*dh - top, j*sw + b*dw - left, c] * dy[n, i, j, c*M + m]
 *
 * A direct loop over the wasm heap (no copies in or out): the work is N*OH*OW*FH*FW*C*M
 * multiply-adds, the same as one depthwise forward pass, and it is accumulated in float64 because
 * each output sums N*OH*OW products. Composing it from native kernels needs either a grouped conv
 * with a per-image filter (which XNNPACK runs as an inefficient grouped GEMM with 1-wide groups)
 * or materialising FH*FW shifted copies of x; the loop was faster on the shapes we measured (see
 * README).
 */
import {
  backend_util,
  DepthwiseConv2dNativeBackpropFilter,
  KernelConfig,
  KernelFunc,
  TensorInfo,
} from '@tensorflow/tfjs-core';
import { KdError } from '@tfkd/kd-core';
import { assertFloat, pair, WasmHeapBackend } from './kernel-utils';

export interface DepthwiseBackpropFilterAttrs {
  strides: number | [number, number];
  dilations?: number | [number, number];
  pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape: [number, number, number, number];
}

export function depthwiseConv2dNativeBackpropFilterWasm(args: {
  inputs: { x: TensorInfo; dy: TensorInfo };
  backend: WasmHeapBackend;
  attrs: DepthwiseBackpropFilterAttrs;
}): TensorInfo {
  const { inputs, backend, attrs } = args;
  const { x, dy } = inputs;
  assertFloat(DepthwiseConv2dNativeBackpropFilter, x, dy);
  const info = backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    attrs.filterShape,
    attrs.strides,
    pair(attrs.dilations),
    attrs.pad,
    attrs.dimRoundingMode,
    true,
  );
  const [fh, fw, ch, mult] = attrs.filterShape;
  const { batchSize: n, inHeight: H, inWidth: W, outHeight: oh, outWidth: ow } = info;
  const cm = ch * mult;
  if (x.shape[3] !== ch || dy.shape[0] !== n || dy.shape[1] !== oh || dy.shape[2] !== ow || dy.shape[3] !== cm) {
    throw new KdError(
      'KD_SHAPE_MISMATCH',
      `${DepthwiseConv2dNativeBackpropFilter}: x [${x.shape}], dy [${dy.shape}] and filterShape [${attrs.filterShape}] do not agree (expected dy [${info.outShape}])`,
      { fix: 'Pass the dy produced by the forward depthwiseConv2d with the same strides, pad, dilations and filter' },
    );
  }
  const { top, left } = info.padInfo;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;

  const acc = new Float64Array(fh * fw * cm);
  // Views are taken after makeOutput: allocating may grow (and detach) the wasm heap.
  const out = backend.makeOutput([fh, fw, ch, mult], 'float32');
  const xv = backend.typedArrayFromHeap(x) as Float32Array;
  const dyv = backend.typedArrayFromHeap(dy) as Float32Array;
  const ov = backend.typedArrayFromHeap(out) as Float32Array;

  for (let b = 0; b < n; b++) {
    for (let i = 0; i < oh; i++) {
      for (let fr = 0; fr < fh; fr++) {
        const xr = i * sh + fr * dh - top;
        if (xr < 0 || xr >= H) continue;
        const xRow = (b * H + xr) * W;
        const dyRow = ((b * oh + i) * ow) * cm;
        for (let j = 0; j < ow; j++) {
          const dyOff = dyRow + j * cm;
          for (let fc = 0; fc < fw; fc++) {
            const xc = j * sw + fc * dw - left;
            if (xc < 0 || xc >= W) continue;
            const xOff = (xRow + xc) * ch;
            const aOff = (fr * fw + fc) * cm;
            if (mult === 1) {
              for (let c = 0; c < ch; c++) acc[aOff + c] += xv[xOff + c] * dyv[dyOff + c];
            } else {
              for (let c = 0; c < ch; c++) {
                const xval = xv[xOff + c];
                const base = c * mult;
                for (let m = 0; m < mult; m++) acc[aOff + base + m] += xval * dyv[dyOff + base + m];
              }
            }
          }
        }
      }
    }
  }
  ov.set(acc);
  return out;
}

export const depthwiseConv2dNativeBackpropFilterWasmConfig: KernelConfig = {
  kernelName: DepthwiseConv2dNativeBackpropFilter,
  backendName: 'wasm',
  kernelFunc: depthwiseConv2dNativeBackpropFilterWasm as unknown as KernelFunc,
};
