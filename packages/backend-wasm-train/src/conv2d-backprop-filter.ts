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
import { adopt, assertChannelsLast, assertFloat, disposeAll, padOrCrop, pair, run, type ConvBackpropAttrs } from './kernel-utils';

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
    return adopt(backend, smallCinFilterGrad(x, dy, fh, fw, oh, ow, top, left, bottom, right));
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
 */
const SMALL_CIN = 4;
/** The im2col matrix is built whole: at most 16 M floats (64 MB); larger inputs take the conv path. */
const MAX_COLS = 16 * 1024 * 1024;

function smallCinFilterGrad(
  x: TensorInfo,
  dy: TensorInfo,
  fh: number,
  fw: number,
  oh: number,
  ow: number,
  top: number,
  left: number,
  bottom: number,
  right: number,
): Tensor {
  const [n, , , cin] = x.shape;
  const cout = dy.shape[3];
  const np = n * oh * ow;
  const owned: Tensor[] = [];
  try {
    const xp = padOrCrop(x, [[0, 0], [top, bottom], [left, right], [0, 0]]); // [N, OH+FH-1, OW+FW-1, Cin]
    owned.push(xp);
    const xt = run('Transpose', { x: xp }, { perm: [3, 0, 1, 2] }); // [Cin, N, Hp, Wp]
    owned.push(xt);
    const taps: Tensor[] = [];
    for (let a = 0; a < fh; a++) {
      for (let b = 0; b < fw; b++) {
        const s = run('Slice', { x: xt }, { begin: [0, 0, a, b], size: [cin, n, oh, ow] });
        owned.push(s);
        const r = run('Reshape', { x: s }, { shape: [cin, np] });
        owned.push(r);
        taps.push(r);
      }
    }
    const cols = run('Concat', taps as unknown as Record<string, TensorInfo>, { axis: 0 }); // [FH·FW·Cin, NP]
    owned.push(cols);
    const a3 = run('Reshape', { x: cols }, { shape: [1, fh * fw * cin, np] });
    owned.push(a3);
    const b3 = run('Reshape', { x: dy }, { shape: [1, np, cout] });
    owned.push(b3);
    const mm = run('BatchMatMul', { a: a3, b: b3 }, { transposeA: false, transposeB: false });
    owned.push(mm);
    return run('Reshape', { x: mm }, { shape: [fh, fw, cin, cout] });
  } finally {
    disposeAll(...owned);
  }
}

export const conv2DBackpropFilterWasmConfig: KernelConfig = {
  kernelName: Conv2DBackpropFilter,
  backendName: 'wasm',
  kernelFunc: conv2DBackpropFilterWasm as unknown as KernelFunc,
};
