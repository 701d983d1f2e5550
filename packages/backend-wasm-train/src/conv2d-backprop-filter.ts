/**
 * Conv2DBackpropFilter for the wasm backend (the gradient of conv2d w.r.t. its filter).
 *
 *   dW[a, b, ci, co] = sum_{n, i, j} x[n, i*sh + a*dh - top, j*sw + b*dw - left, ci] * dy[n, i, j, co]
 *
 * For each filter tap (a, b) this is a GEMM, dW[a, b] = Σ_p x_ab[p]ᵀ · dy[p], over the output pixels
 * p = (n, i, j), where x_ab[p] is the input pixel the tap reads (a strided view of x: no copy needed).
 * The kernel runs that GEMM as a wasm SIMD loop on the heap (simd-filter-grad.ts): register tiles of
 * 4 input × 8 output channels, the reduction over N·OH·OW blocked so that a block's x and dy stay in
 * cache, padding handled by each tap's valid pixel ranges — one kernel call, no im2col, no transposes,
 * at about the forward convolution's GFLOP/s (2–2.7x the previous composition on cnn-large's layers,
 * docs/benchmarks.md).
 *
 * Without wasm SIMD (or with `simd: false`) it takes the previous composition of native kernels
 * ({@link conv2DBackpropFilterComposed}): a convolution once the batch axis is treated as the channel
 * axis — X' = transpose(x) [Cin, H, W, N] as a batch of Cin images with N channels, F' = transpose(dy)
 * [OH, OW, N, Cout] as the filter, stride = the forward dilation and dilation = the forward stride,
 * giving [Cin, FH, FW, Cout]; padding explicit (`top`/`left` as in the forward conv, bottom/right so
 * the output is exactly FH x FW, negative amounts cropping rows the forward conv never read) — one
 * XNNPACK convolution; or, for ≤ 4 input channels at stride 1, im2colᵀ and one BatchMatMul.
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
import { simdKernels, type SimdKernels } from './simd';

export interface Conv2DBackpropFilterWasmAttrs extends ConvBackpropAttrs {
  filterShape: [number, number, number, number];
}

/** The conv geometry the gradient needs (validated against x, dy and filterShape). */
interface FilterGradGeometry {
  n: number;
  h: number;
  w: number;
  cin: number;
  oh: number;
  ow: number;
  cout: number;
  fh: number;
  fw: number;
  sh: number;
  sw: number;
  dh: number;
  dw: number;
  top: number;
  left: number;
}

type FilterGradArgs = {
  inputs: { x: TensorInfo; dy: TensorInfo };
  backend: KernelBackend;
  attrs: Conv2DBackpropFilterWasmAttrs;
};

function filterGradGeometry({ inputs, attrs }: FilterGradArgs): FilterGradGeometry {
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
  return {
    n,
    h: info.inHeight,
    w: info.inWidth,
    cin,
    oh,
    ow,
    cout,
    fh,
    fw,
    sh: info.strideHeight,
    sw: info.strideWidth,
    dh: info.dilationHeight,
    dw: info.dilationWidth,
    top: info.padInfo.top,
    left: info.padInfo.left,
  };
}

/**
 * The kernel: the wasm SIMD GEMM (below) where the SIMD loops are available, otherwise the
 * composition of native kernels ({@link conv2DBackpropFilterComposed}).
 */
export function conv2DBackpropFilterWasm(args: FilterGradArgs): TensorInfo {
  const g = filterGradGeometry(args);
  const simd = simdKernels(args.backend);
  if (simd) return gemmFilterGrad(args.backend as WasmHeapBackend, simd, args.inputs.x, args.inputs.dy, args.attrs.filterShape, g);
  return composedFilterGrad(args.backend, args.inputs.x, args.inputs.dy, args.attrs.filterShape, g);
}

/**
 * The previous implementation, from native kernels only (XNNPACK): the batch-as-channels convolution,
 * or for ≤ 4 input channels at stride 1 an im2colᵀ and one BatchMatMul. It is what the kernel runs
 * when the wasm SIMD loops are not available (or are switched off with `simd: false`), and it stays
 * exported for A/B measurements (tools/bench-backend.js --ab-kernels --dw registers it in place of
 * the kernel). Same results within float32 rounding (the sums run in another order).
 */
export function conv2DBackpropFilterComposed(args: FilterGradArgs): TensorInfo {
  return composedFilterGrad(args.backend, args.inputs.x, args.inputs.dy, args.attrs.filterShape, filterGradGeometry(args));
}

/**
 * dW as a register-blocked GEMM on the heap (simd-filter-grad.ts): for every block of output pixels
 * and every filter tap (a, b), one `dwTap` call adds Σ_p x[tap's input pixel of p]ᵀ · dy[p] into
 * dW[a, b] — x and dy are read in place (the tap's valid rows and columns give the pixel ranges, so
 * padding costs nothing), no im2col, no transposes, one kernel call. The blocks (whole images, or a
 * range of rows of one image) are sized so that their x and dy stay in cache while the tiles of dW
 * sweep them.
 */
function gemmFilterGrad(
  backend: WasmHeapBackend,
  simd: SimdKernels,
  x: TensorInfo,
  dy: TensorInfo,
  filterShape: [number, number, number, number],
  g: FilterGradGeometry,
): TensorInfo {
  const { n, h, w, cin, oh, ow, cout, fh, fw, sh, sw, dh, dw, top, left } = g;
  const out = backend.makeOutput(filterShape.slice(), 'float32');
  const dwv = backend.typedArrayFromHeap(out) as Float32Array;
  dwv.fill(0);
  if (n * oh * ow === 0 || dwv.length === 0) return out;
  const X = (backend.typedArrayFromHeap(x) as Float32Array).byteOffset;
  const DY = (backend.typedArrayFromHeap(dy) as Float32Array).byteOffset;
  const DW = dwv.byteOffset;
  const F = 4;
  const [xImg, dyImg, xRow, dyRow, xCol, dyCol] = [h * w * cin * F, oh * ow * cout * F, sh * w * cin * F, ow * cout * F, sw * cin * F, cout * F];
  // Output columns j whose input column j·sw + b·dw − left lies in [0, w), per tap column b.
  const cols = Array.from({ length: fw }, (_, b) => [Math.max(0, Math.ceil((left - b * dw) / sw)), Math.min(ow, Math.floor((w - 1 + left - b * dw) / sw) + 1)]);
  // Blocks: rows of one image when an image holds at least two blocks, else whole images (one, or
  // as many as fit the target). E.g. at b128: 8 rows of 28 for cnn-large's first layer, 4 rows of
  // 28 for conv1b, 6 or 4 rows of 14 for conv2a/b, one 7x7 image for conv3a/b.
  const target = blockPixels((cin * sh * sw + cout) * F);
  const perImage = oh * ow;
  const rowBlocks = perImage >= 2 * target;
  const images = rowBlocks ? 1 : Math.max(1, Math.min(n, Math.floor(target / perImage)));
  const rows = rowBlocks ? Math.max(1, Math.floor(target / ow)) : oh;
  for (let n0 = 0; n0 < n; n0 += images) {
    const ni = Math.min(images, n - n0);
    for (let i0 = 0; i0 < oh; i0 += rows) {
      const i1 = Math.min(oh, i0 + rows);
      for (let a = 0; a < fh; a++) {
        // Output rows i whose input row i·sh + a·dh − top lies in [0, h).
        const iLo = Math.max(i0, Math.ceil((top - a * dh) / sh));
        const iHi = Math.min(i1, Math.floor((h - 1 + top - a * dh) / sh) + 1);
        if (iLo >= iHi) continue;
        const r = iLo * sh + a * dh - top;
        for (let b = 0; b < fw; b++) {
          const [jLo, jHi] = cols[b];
          if (jLo >= jHi) continue;
          const q = jLo * sw + b * dw - left;
          simd.dwTap(
            X + ((n0 * h + r) * w + q) * cin * F,
            DY + ((n0 * oh + iLo) * ow + jLo) * cout * F,
            DW + (a * fw + b) * cin * cout * F,
            cin,
            cout,
            ni,
            xImg,
            dyImg,
            iHi - iLo,
            xRow,
            dyRow,
            jHi - jLo,
            xCol,
            dyCol,
          );
        }
      }
    }
  }
  return out;
}

/** A block is at least this many output pixels (the tiles' fixed cost is amortised over them). */
const MIN_BLOCK_PIXELS = 32;
/** Target bytes of x and dy per block. */
const BLOCK_BYTES = 32 * 1024;
/**
 * Output pixels per block for `bytesPerPixel` of x and dy. The environment variable TFKD_DW_BLOCK_KB
 * overrides the byte target (and the minimum: down to 1 pixel), for tuning and for the tests of
 * block edges.
 */
function blockPixels(bytesPerPixel: number): number {
  const env = typeof process === 'object' ? process.env?.TFKD_DW_BLOCK_KB : undefined;
  const kb = env ? Number(env) : NaN;
  if (Number.isFinite(kb) && kb > 0) return Math.max(1, Math.floor((kb * 1024) / bytesPerPixel));
  return Math.max(MIN_BLOCK_PIXELS, Math.floor(BLOCK_BYTES / bytesPerPixel));
}

function composedFilterGrad(
  backend: KernelBackend,
  x: TensorInfo,
  dy: TensorInfo,
  filterShape: [number, number, number, number],
  g: FilterGradGeometry,
): TensorInfo {
  const { n, h, w, cin, oh, ow, fh, fw, sh, sw, dh, dw, top, left } = g;
  // Rows of (top-padded) x the gradient reads: the last one is (oh-1)*sh + (fh-1)*dh.
  const bottom = (fh - 1) * dh + (oh - 1) * sh + 1 - h - top;
  const right = (fw - 1) * dw + (ow - 1) * sw + 1 - w - left;

  if (sh === 1 && sw === 1 && dh === 1 && dw === 1 && cin <= SMALL_CIN && fh * fw * cin * n * oh * ow <= MAX_COLS) {
    return smallCinFilterGrad(backend as WasmHeapBackend, x, dy, filterShape, oh, ow, top, left);
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
