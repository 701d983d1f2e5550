/**
 * Conv2DBackpropFilter for the wasm backend (the gradient of conv2d w.r.t. its filter).
 *
 *   dW[a, b, ci, co] = sum_{n, i, j} x[n, i*sh + a*dh - top, j*sw + b*dw - left, ci] * dy[n, i, j, co]
 *
 * This is itself a convolution once the batch axis is treated as the channel axis: take
 * X' = transpose(x) [Cin, H, W, N] as a batch of Cin images with N channels, and
 * F' = transpose(dy) [OH, OW, N, Cout] as the filter. Convolving X' with F' using
 * stride = the forward dilation and dilation = the forward stride gives [Cin, FH, FW, Cout].
 * Padding is explicit: `top`/`left` as in the forward conv, and bottom/right chosen so the output is
 * exactly FH x FW (negative amounts crop rows of x the forward conv never read). The heavy lifting
 * is one XNNPACK convolution (the wasm backend's own Conv2D kernel).
 */
import {
  backend_util,
  Conv2DBackpropFilter,
  KernelBackend,
  KernelConfig,
  KernelFunc,
  Tensor,
  TensorInfo,
} from '@tensorflow/tfjs-core';
import { KdError } from '@tfkd/kd-core';
import { adopt, assertChannelsLast, assertFloat, disposeAll, padOrCrop, pair, run, type ConvBackpropAttrs, type WasmHeapBackend } from './kernel-utils';

export interface Conv2DBackpropFilterWasmAttrs extends ConvBackpropAttrs {
  filterShape: [number, number, number, number];
}

export function conv2DBackpropFilterWasm(args: {
  inputs: { x: TensorInfo; dy: TensorInfo };
  backend: KernelBackend;
  attrs: Conv2DBackpropFilterWasmAttrs;
}): TensorInfo {
  const { inputs, backend, attrs } = args;
  const { x, dy } = inputs;
  assertChannelsLast(Conv2DBackpropFilter, attrs.dataFormat);
  assertFloat(Conv2DBackpropFilter, x, dy);
  const [fh, fw, cin, cout] = attrs.filterShape;
  const info = backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    attrs.filterShape,
    attrs.strides,
    pair(attrs.dilations),
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  const [n, oh, ow] = [info.batchSize, info.outHeight, info.outWidth];
  if (dy.shape.length !== 4 || dy.shape[0] !== n || dy.shape[1] !== oh || dy.shape[2] !== ow || dy.shape[3] !== cout) {
    throw new KdError(
      'KD_SHAPE_MISMATCH',
      `${Conv2DBackpropFilter}: dy has shape [${dy.shape}] but x [${x.shape}] with filter [${attrs.filterShape}] gives [${info.outShape}]`,
      { fix: 'Pass the dy produced by the forward conv2d with the same strides, pad and filter shape' },
    );
  }
  if (x.shape[3] !== cin) {
    throw new KdError('KD_SHAPE_MISMATCH', `${Conv2DBackpropFilter}: x has ${x.shape[3]} channels, filterShape expects ${cin}`, {
      fix: 'filterShape[2] must equal the channel count of x',
    });
  }
  const { top, left } = info.padInfo;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  // Rows of (top-padded) x the gradient reads: the last one is (oh-1)*sh + (fh-1)*dh.
  const bottom = (fh - 1) * dh + (oh - 1) * sh + 1 - info.inHeight - top;
  const right = (fw - 1) * dw + (ow - 1) * sw + 1 - info.inWidth - left;

  if (sh === 1 && sw === 1 && dh === 1 && dw === 1 && cin <= SMALL_CIN && fh * fw * cin * n * oh * ow <= MAX_COLS) {
    return smallCinFilterGrad(backend as WasmHeapBackend, x, dy, attrs.filterShape, oh, ow, top, left);
  }
  let xt: Tensor | null = null;
  let xp: Tensor | null = null;
  let dyt: Tensor | null = null;
  let conv: Tensor | null = null;
  try {
    xt = run('Transpose', { x }, { perm: [3, 1, 2, 0] }); // [Cin, H, W, N]
    // Crop what the forward conv never read; padding itself is left to the conv.
    xp = bottom < 0 || right < 0 ? padOrCrop(xt, [[0, 0], [0, Math.min(0, bottom)], [0, Math.min(0, right)], [0, 0]]) : null;
    dyt = run('Transpose', { x: dy }, { perm: [1, 2, 0, 3] }); // [OH, OW, N, Cout]
    const pad = [
      [0, 0],
      [top, Math.max(0, bottom)],
      [left, Math.max(0, right)],
      [0, 0],
    ];
    conv = run(
      'Conv2D',
      { x: xp ?? xt, filter: dyt },
      { strides: [dh, dw], dilations: [sh, sw], pad, dataFormat: 'NHWC', dimRoundingMode: undefined },
    ); // [Cin, FH, FW, Cout]
    const out = run('Transpose', { x: conv }, { perm: [1, 2, 0, 3] });
    return adopt(backend, out);
  } finally {
    disposeAll(xt, xp, dyt, conv);
  }
}

/**
 * Inputs with few channels (a network's first conv, e.g. 1-channel images): the batch-as-channels
 * conv above is memory-bound there (K = OH·OW·N per output, 9 outputs per channel), so build
 * im2colᵀ instead — [FH·FW·Cin, N·OH·OW], tiny when Cin is — and do one matmul with dy as
 * [N·OH·OW, Cout]. Measured on [128,28,28,1] → [3,3,1,32]: 67–75 ms → 15–30 ms. Stride 1, dilation 1.
 * im2colᵀ is written in one pass over the heap (zeros where a tap falls into the padding), and the
 * matmul reads it and dy through reshaped TensorInfos: two kernel calls in all (this one and the
 * BatchMatMul), where building it from PadV2, Transpose, FH·FW Slices and Reshapes and a Concat took 24.
 */
const SMALL_CIN = 4;
/** The im2col matrix is built whole: at most 16 M floats (64 MB); larger inputs take the conv path. */
const MAX_COLS = 16 * 1024 * 1024;

function smallCinFilterGrad(
  backend: WasmHeapBackend,
  x: TensorInfo,
  dy: TensorInfo,
  filterShape: [number, number, number, number],
  oh: number,
  ow: number,
  top: number,
  left: number,
): TensorInfo {
  const [n, h, w, cin] = x.shape;
  const [fh, fw, , cout] = filterShape;
  const np = n * oh * ow;
  const k = fh * fw * cin;
  const cols = backend.makeOutput([1, k, np], 'float32');
  try {
    im2colT(backend.typedArrayFromHeap(x) as Float32Array, backend.typedArrayFromHeap(cols) as Float32Array, { n, h, w, cin, fh, fw, oh, ow, top, left });
    const a: TensorInfo = { dataId: cols.dataId, shape: [1, k, np], dtype: 'float32' };
    const b: TensorInfo = { dataId: dy.dataId, shape: [1, np, cout], dtype: 'float32' };
    const mm = run('BatchMatMul', { a, b }, { transposeA: false, transposeB: false }); // [1, K, Cout]
    backend.incRef(mm.dataId);
    mm.dispose();
    return { dataId: mm.dataId, shape: filterShape.slice(), dtype: 'float32' };
  } finally {
    backend.disposeData(cols.dataId);
  }
}

/** cols[(a·FW + b)·Cin + ci, (m·OH + i)·OW + j] = x[m, i + a − top, j + b − left, ci], 0 outside x. */
function im2colT(
  xv: Float32Array,
  cv: Float32Array,
  g: { n: number; h: number; w: number; cin: number; fh: number; fw: number; oh: number; ow: number; top: number; left: number },
): void {
  const { n, h, w, cin, fh, fw, oh, ow, top, left } = g;
  const np = n * oh * ow;
  for (let a = 0; a < fh; a++) {
    for (let b = 0; b < fw; b++) {
      // Columns j whose tap q = j + b − left lies inside [0, w).
      const j0 = Math.max(0, left - b);
      const j1 = Math.min(ow, w + left - b);
      for (let ci = 0; ci < cin; ci++) {
        const row = ((a * fw + b) * cin + ci) * np;
        for (let m = 0; m < n; m++) {
          for (let i = 0; i < oh; i++) {
            const base = row + (m * oh + i) * ow;
            const r = i + a - top;
            if (r < 0 || r >= h || j0 >= j1) {
              cv.fill(0, base, base + ow);
              continue;
            }
            if (j0 > 0) cv.fill(0, base, base + j0);
            let src = ((m * h + r) * w + (j0 + b - left)) * cin + ci;
            for (let j = j0; j < j1; j++, src += cin) cv[base + j] = xv[src];
            if (j1 < ow) cv.fill(0, base + j1, base + ow);
          }
        }
      }
    }
  }
}

export const conv2DBackpropFilterWasmConfig: KernelConfig = {
  kernelName: Conv2DBackpropFilter,
  backendName: 'wasm',
  kernelFunc: conv2DBackpropFilterWasm as unknown as KernelFunc,
};
