/**
 * Test harness: run the same kernel on cpu and on wasm from plain arrays, compare, count leaks.
 * (Not part of the build: __fixtures__ is excluded by tsconfig.lib.json.)
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { registerWasmTrainingKernels } from '../register';
import { tidyValue } from '@tfkd/kd-core/testing';

export { tf };

// IS_TEST silences tfjs's console advice and makes the engine check every kernel for leaked data ids.
tf.env().set('IS_TEST', true);

/** Plain data for one kernel input: created afresh on whichever backend is active. */
export interface Plain {
  values: Float32Array | Int32Array;
  shape: number[];
  dtype: 'float32' | 'int32';
}

export async function useBackend(name: 'cpu' | 'wasm'): Promise<void> {
  if (name === 'wasm') registerWasmTrainingKernels();
  const ok = await tf.setBackend(name);
  if (!ok || tf.getBackend() !== name) throw new Error(`backend ${name} failed to initialise`);
}

/** Runs `kernelName` on the given backend; returns the output values as float64 and its shape. */
export async function runOn(
  backend: 'cpu' | 'wasm',
  kernelName: string,
  inputs: Record<string, Plain> | Plain[],
  attrs: object,
): Promise<{ values: Float64Array; shape: number[] }> {
  await useBackend(backend);
  return tidyValue(() => {
    const make = (p: Plain): tf.Tensor => tf.tensor(p.values, p.shape, p.dtype);
    const ins = Array.isArray(inputs)
      ? inputs.map(make)
      : Object.fromEntries(Object.entries(inputs).map(([k, p]) => [k, make(p)]));
    const out = tf.engine().runKernel(kernelName, ins as unknown as tf.NamedTensorMap, attrs as tf.NamedAttrMap) as tf.Tensor;
    return { values: Float64Array.from(out.dataSync()), shape: out.shape };
  });
}

/** max |a-b| / max(1e-6, max |b|). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / Math.max(1e-6, scale);
}

/** Deterministic uniform(-1, 1) data. */
export function randomData(size: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

export function plain(shape: number[], seed: number): Plain {
  return { values: randomData(shape.reduce((a, b) => a * b, 1), seed), shape, dtype: 'float32' };
}


/** tf.memory() numbers that must not grow. */
export function memorySnapshot(): { numTensors: number; numDataBuffers: number; numBytes: number } {
  const m = tf.memory();
  return { numTensors: m.numTensors, numDataBuffers: m.numDataBuffers, numBytes: m.numBytes };
}

export const FC_SEED = 20240611;

export type PadSpec = 'same' | 'valid' | number | [number, number];

/** The padding attribute for a PadSpec ([t, b] pairs become explicit NHWC padding, same on both axes). */
export function padAttr(pad: PadSpec): 'same' | 'valid' | number | number[][] {
  return Array.isArray(pad) ? [[0, 0], pad, pad, [0, 0]] : pad;
}

/**
 * Conv geometry exactly as tfjs computes it (tfjs's own quirks included, e.g. a numeric pad sizes
 * both output dims from the filter height).
 */
export function geometryOf(
  xShape: [number, number, number, number],
  filterShape: [number, number, number, number],
  stride: number,
  dil: number,
  pad: PadSpec,
  depthwise: boolean,
): { oh: number; ow: number; top: number; left: number } {
  const info = tf.backend_util.computeConv2DInfo(xShape, filterShape, stride, dil, padAttr(pad) as 'same', undefined, depthwise);
  return { oh: info.outHeight, ow: info.outWidth, top: info.padInfo.top, left: info.padInfo.left };
}
