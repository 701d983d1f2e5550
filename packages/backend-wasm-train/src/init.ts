/** One call to get a training-capable wasm backend. */
import { findBackend, getBackend, setBackend } from '@tensorflow/tfjs-core';
import { registerWasmTrainingKernels } from './register';
import { disableThreads, prepareNodeThreads } from './threads';

export interface InitWasmOptions {
  /**
   * XNNPACK threads. Default 1 (the plain SIMD build; always works). Values > 1 try the threaded
   * build through worker_threads (experimental in Node, see README); if that fails we fall back to
   * one thread. Only effective if the wasm backend has not been initialised yet in this process.
   */
  threads?: number;
  /** Use the one-kernel ReLU gradient (see `RegisterOptions.fusedReluGradient`); unchanged when absent. */
  fusedReluGradient?: boolean;
}

let lastThreads = 0;

/** Threads the wasm backend runs with, as reported by tfjs-backend-wasm (0 before init). */
export function wasmThreadsCount(): number {
  return lastThreads;
}

async function trySetWasm(): Promise<boolean> {
  try {
    return (await setBackend('wasm')) && getBackend() === 'wasm';
  } catch {
    return false;
  }
}

/**
 * Loads `@tensorflow/tfjs-backend-wasm`, registers this package's kernels and makes 'wasm' the
 * active backend. Resolves false (never throws) when the backend package is missing or wasm cannot
 * initialise; the previously active backend then stays active.
 */
export async function initWasmBackend(opts: InitWasmOptions = {}): Promise<boolean> {
  let wasm: typeof import('@tensorflow/tfjs-backend-wasm');
  try {
    wasm = await import('@tensorflow/tfjs-backend-wasm');
  } catch {
    return false;
  }
  registerWasmTrainingKernels(opts.fusedReluGradient != null ? { fusedReluGradient: opts.fusedReluGradient } : {});
  const threads = Math.max(1, Math.floor(opts.threads ?? 1));
  const fresh = findBackend('wasm') == null;
  const restore = fresh && threads > 1 ? prepareNodeThreads(wasm, threads) : null;
  let ok: boolean;
  try {
    ok = await trySetWasm();
  } finally {
    restore?.();
  }
  if (!ok && restore != null) {
    disableThreads(wasm);
    ok = await trySetWasm();
  }
  if (ok) {
    try {
      lastThreads = wasm.getThreadsCount();
    } catch {
      lastThreads = 1;
    }
  }
  return ok;
}
