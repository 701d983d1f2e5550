/**
 * Plumbing shared by the kernels: running other (native wasm) kernels on TensorInfos from inside a
 * kernel function, and handing a result back to the engine with the reference counts right.
 */
import {
  backend_util,
  engine,
  KernelBackend,
  NamedAttrMap,
  NamedTensorMap,
  Tensor,
  TensorInfo,
} from '@tensorflow/tfjs-core';
import { KdError } from '@tfkd/kd-core';

/** The subset of `BackendWasm` the JS-loop kernels use (kept structural: no runtime import). */
export interface WasmHeapBackend extends KernelBackend {
  makeOutput(shape: number[], dtype: 'float32' | 'int32' | 'bool'): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): Float32Array | Int32Array | Uint8Array;
}

/**
 * Runs a registered kernel of the active backend on TensorInfos. Inside a kernel function the
 * engine's kernel depth is > 0, so nothing is recorded on a gradient tape. The returned Tensor is
 * owned by the caller: dispose it, or pass it to {@link adopt}.
 */
export function run(kernelName: string, inputs: Record<string, TensorInfo>, attrs: object = {}): Tensor {
  return engine().runKernel<Tensor>(kernelName, inputs as unknown as NamedTensorMap, attrs as NamedAttrMap);
}

/**
 * Turns a Tensor produced inside a kernel into the kernel's return value. The engine wraps the
 * returned dataId in a new Tensor without taking a reference, so we take one for it (incRef) and
 * release the inner wrapper: net effect one live Tensor, one data buffer, refCount unchanged.
 */
export function adopt(backend: KernelBackend, t: Tensor): TensorInfo {
  backend.incRef(t.dataId);
  const info: TensorInfo = { dataId: t.dataId, shape: t.shape.slice(), dtype: t.dtype };
  t.dispose();
  return info;
}

/** Disposes every intermediate Tensor (null entries are skipped). */
export function disposeAll(...ts: Array<Tensor | null | undefined>): void {
  for (const t of ts) t?.dispose();
}

/** Slices where a pad is negative and pads where it is positive, per axis: `[before, after]`. */
export function padOrCrop(x: TensorInfo, pads: Array<[number, number]>): Tensor {
  const needsCrop = pads.some(([b, a]) => b < 0 || a < 0);
  const needsPad = pads.some(([b, a]) => b > 0 || a > 0);
  let cur: Tensor | null = null;
  let src: TensorInfo = x;
  if (needsCrop) {
    const begin = pads.map(([b]) => Math.max(0, -b));
    const size = pads.map(([b, a], i) => x.shape[i] - Math.max(0, -b) - Math.max(0, -a));
    cur = run('Slice', { x }, { begin, size });
    src = cur;
  }
  if (needsPad || !needsCrop) {
    const paddings = pads.map(([b, a]) => [Math.max(0, b), Math.max(0, a)]);
    const padded: Tensor = run('PadV2', { x: src }, { paddings, constantValue: 0 });
    cur?.dispose();
    cur = padded;
  }
  return cur as Tensor;
}

/** Normalises a `number | [number, number]` conv attribute. */
export function pair(v: number | [number, number] | number[] | undefined, dflt = 1): [number, number] {
  if (v == null) return [dflt, dflt];
  if (typeof v === 'number') return [v, v];
  return [v[0], v[1]];
}

/** NCHW is refused up front: the wasm conv kernels we build on are channels-last only. */
export function assertChannelsLast(kernelName: string, dataFormat: string | undefined): void {
  if (dataFormat != null && dataFormat !== 'NHWC' && dataFormat !== 'channelsLast') {
    throw new KdError(
      'KD_BACKEND_UNAVAILABLE',
      `${kernelName} on the wasm backend supports only NHWC (channels-last) data, got dataFormat '${dataFormat}'`,
      {
        fix: "Use dataFormat 'NHWC' (the tfjs-layers default 'channelsLast'), or transpose NCHW input with tf.transpose(x, [0, 2, 3, 1]) first",
      },
    );
  }
}

/** Inputs of a kernel must be float32 for the conv kernels (as on cpu). */
export function assertFloat(kernelName: string, ...infos: TensorInfo[]): void {
  for (const t of infos) {
    if (t.dtype !== 'float32') {
      throw new KdError('KD_BACKEND_UNAVAILABLE', `${kernelName} on the wasm backend needs float32 inputs, got ${t.dtype}`, {
        fix: 'Cast the input with tf.cast(x, "float32") before the op',
      });
    }
  }
}

/**
 * Inserts (stride - 1) zeros after every spatial position of an NHWC tensor (the input side of a
 * transposed convolution): [N,H,W,C] -> [N,H*sh,W*sw,C]. Returns null when both strides are 1.
 */
export function dilateSpatial(x: TensorInfo, sh: number, sw: number): Tensor | null {
  if (sh === 1 && sw === 1) return null;
  const [n, h, w, c] = x.shape;
  const r6 = run('Reshape', { x }, { shape: [n, h, 1, w, 1, c] });
  try {
    const paddings = [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]];
    const p6 = run('PadV2', { x: r6 }, { paddings, constantValue: 0 });
    const out = run('Reshape', { x: p6 }, { shape: [n, h * sh, w * sw, c] });
    p6.dispose();
    return out;
  } finally {
    r6.dispose();
  }
}

/** Attributes shared by the conv backprop kernels (the tfjs kernel contract, plus `dilations`). */
export interface ConvBackpropAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
  dataFormat?: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  /**
   * Not part of the tfjs kernel contract (tfjs's conv2d gradient refuses dilations > 1), but
   * accepted here so dilated convolutions can be differentiated by calling the kernels directly.
   */
  dilations?: number | [number, number];
}
