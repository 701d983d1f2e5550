/**
 * Conv2DBackpropInput for the wasm backend — a *replacement*: tfjs-backend-wasm 4.22 has this
 * kernel, but as a plain C++ loop that runs 3-10x slower than the forward conv and dominated our
 * CNN/ResNet training steps. This version is the transposed convolution on XNNPACK:
 *
 *   dx = conv2d(pad(dilate(dy, stride)), rot180(W) with in/out channels swapped), stride 1
 *
 * where dilate inserts (stride-1) zeros between dy pixels, the padding is
 * (effective filter - 1 - forward top/left) before and whatever makes the output H x W after
 * (negative amounts crop; non-negative ones are the conv's own implicit padding, no copy), and the
 * conv runs at the forward dilation. The filter is rotated and its channels swapped in one heap pass.
 */
import {
  backend_util,
  Conv2DBackpropInput,
  KernelBackend,
  KernelConfig,
  KernelFunc,
  Tensor,
  TensorInfo,
} from '@tensorflow/tfjs-core';
import { KdError } from '@tfkd/kd-core';
import { adopt, assertChannelsLast, assertFloat, dilateSpatial, disposeAll, padOrCrop, pair, run, type ConvBackpropAttrs, type WasmHeapBackend } from './kernel-utils';

export interface Conv2DBackpropInputWasmAttrs extends ConvBackpropAttrs {
  inputShape: [number, number, number, number];
}

export function conv2DBackpropInputWasm(args: {
  inputs: { dy: TensorInfo; filter: TensorInfo };
  backend: KernelBackend;
  attrs: Conv2DBackpropInputWasmAttrs;
}): TensorInfo {
  const { inputs, backend, attrs } = args;
  const { dy, filter } = inputs;
  assertChannelsLast(Conv2DBackpropInput, attrs.dataFormat);
  assertFloat(Conv2DBackpropInput, dy, filter);
  const [fh, fw, cin, cout] = filter.shape;
  const info = backend_util.computeConv2DInfo(
    attrs.inputShape,
    filter.shape as [number, number, number, number],
    attrs.strides,
    pair(attrs.dilations),
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  const ok =
    dy.shape.length === 4 &&
    dy.shape[0] === info.batchSize &&
    dy.shape[1] === info.outHeight &&
    dy.shape[2] === info.outWidth &&
    dy.shape[3] === cout &&
    info.inChannels === cin;
  if (!ok) {
    throw new KdError(
      'KD_SHAPE_MISMATCH',
      `${Conv2DBackpropInput}: dy [${dy.shape}] and filter [${filter.shape}] do not fit inputShape [${attrs.inputShape}] (expected dy [${info.outShape}])`,
      { fix: 'Pass the dy produced by the forward conv2d with the same strides, pad and filter' },
    );
  }
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const effH = (fh - 1) * dh + 1;
  const effW = (fw - 1) * dw + 1;
  const owned: Array<Tensor | null> = [];
  try {
    const dilated = dilateSpatial(dy, sh, sw);
    owned.push(dilated);
    const dyd: TensorInfo = dilated ?? dy;
    const pt = effH - 1 - info.padInfo.top;
    const pl = effW - 1 - info.padInfo.left;
    const pb = info.inHeight + effH - 1 - pt - dyd.shape[1];
    const pr = info.inWidth + effW - 1 - pl - dyd.shape[2];
    // Non-negative padding is left to the conv (XNNPACK pads implicitly: no padded copy of dy);
    // only a crop needs a copy.
    const implicit = pt >= 0 && pb >= 0 && pl >= 0 && pr >= 0;
    const dyp = implicit ? null : padOrCrop(dyd, [[0, 0], [pt, pb], [pl, pr], [0, 0]]);
    owned.push(dyp);
    const pad = implicit ? [[0, 0], [pt, pb], [pl, pr], [0, 0]] : 'valid';
    const wt = rotateSwap(backend as WasmHeapBackend, filter); // [FH, FW, Cout, Cin], rotated 180°
    try {
      const out = run('Conv2D', { x: dyp ?? dyd, filter: wt }, { strides: [1, 1], dilations: [dh, dw], pad, dataFormat: 'NHWC' });
      return adopt(backend, out);
    } finally {
      backend.disposeData(wt.dataId);
    }
  } finally {
    disposeAll(...owned);
  }
}

/**
 * rot180(W) with in/out channels swapped, in one pass over the heap:
 * out[a, b, co, ci] = W[FH-1-a, FW-1-b, ci, co]. (Was a Reverse and a Transpose kernel, ~2 and
 * ~3 ms each for a 3x3x128x128 filter — 25 ms per cnn-large step for the five layers.)
 */
function rotateSwap(backend: WasmHeapBackend, filter: TensorInfo): TensorInfo {
  const [fh, fw, cin, cout] = filter.shape;
  const out = backend.makeOutput([fh, fw, cout, cin], 'float32');
  const src = backend.typedArrayFromHeap(filter) as Float32Array;
  const dst = backend.typedArrayFromHeap(out) as Float32Array;
  for (let a = 0; a < fh; a++) {
    for (let b = 0; b < fw; b++) {
      const s0 = ((fh - 1 - a) * fw + (fw - 1 - b)) * cin * cout;
      const d0 = (a * fw + b) * cout * cin;
      for (let ci = 0; ci < cin; ci++) {
        const srow = s0 + ci * cout;
        for (let co = 0; co < cout; co++) dst[d0 + co * cin + ci] = src[srow + co];
      }
    }
  }
  return out;
}

export const conv2DBackpropInputWasmConfig: KernelConfig = {
  kernelName: Conv2DBackpropInput,
  backendName: 'wasm',
  kernelFunc: conv2DBackpropInputWasm as unknown as KernelFunc,
};
