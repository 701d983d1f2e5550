/**
 * Opt-in multi-threading of the tfjs wasm backend under Node (experimental).
 *
 * tfjs-backend-wasm 4.22 never uses threads in Node: its WASM_HAS_MULTITHREAD_SUPPORT flag is
 * hard-wired to false there (tfjs issue #3830). Forcing the flag is not enough, because
 *  1. the emscripten pthread worker is started from a `blob:` URL, which node's worker_threads
 *     refuses, and the worker then loads the main script from a Blob it cannot import; and
 *  2. the C++ side caps the pool at (logical cores / 2), i.e. 1 thread on a 2-core machine.
 * While the backend initialises we therefore (1) hand emscripten a worker file written to the temp
 * dir (the package's own worker source, with the Blob import replaced by a `require` of the
 * threaded factory) and (2) report 2*n logical cores. Both patches are undone afterwards.
 */
import { env } from '@tensorflow/tfjs-core';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { wasmApi, type WasmMemory, type WasmMemoryDescriptor } from './wasm-api';

// The live module object (not an import-star copy): emscripten reads `require('os').cpus()`.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const os = require('os') as typeof import('os');

const BLOB_IMPORT =
  'if(typeof e.data.urlOrBlob=="string"){importScripts(e.data.urlOrBlob)}else{var objectUrl=URL.createObjectURL(e.data.urlOrBlob);importScripts(objectUrl);URL.revokeObjectURL(objectUrl)}';

export interface ThreadsModule {
  setThreadsCount(n: number): void;
}

function isNode(): boolean {
  return typeof process === 'object' && typeof process.versions?.node === 'string';
}

/** Writes the patched pthread worker script once per process; null if the package layout differs. */
function writeWorkerFile(): string | null {
  let wasmOut: string;
  try {
    wasmOut = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'wasm-out');
  } catch {
    return null;
  }
  const workerModule = path.join(wasmOut, 'tfjs-backend-wasm-threaded-simd.worker.js');
  const factory = path.join(wasmOut, 'tfjs-backend-wasm-threaded-simd.js');
  if (!fs.existsSync(workerModule) || !fs.existsSync(factory)) return null;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { wasmWorkerContents } = require(workerModule) as { wasmWorkerContents: string };
  if (!wasmWorkerContents.includes(BLOB_IMPORT)) return null;
  const load = `var WasmBackendModuleThreadedSimd=require(${JSON.stringify(factory)});`;
  // The worker source is a JS string literal in the package: its newlines are escapes in the file.
  const src = wasmWorkerContents.replace(BLOB_IMPORT, load).replace(/\n/g, '\\n');
  // Content-addressed, so repeated runs reuse one file instead of littering the temp dir.
  const hash = createHash('sha1').update(src).digest('hex').slice(0, 12);
  const file = path.join(os.tmpdir(), `tfkd-wasm-pthread-worker-${hash}.js`);
  if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== src) fs.writeFileSync(file, src);
  return file;
}

/**
 * Prepares the next wasm backend initialisation to run `threads` XNNPACK threads. Returns a function
 * that undoes the temporary patches (call it once `setBackend('wasm')` settled), or null when
 * threads cannot be attempted here (not Node, no SharedArrayBuffer, unknown package layout).
 */
export function prepareNodeThreads(wasm: ThreadsModule, threads: number): (() => void) | null {
  if (!isNode() || typeof SharedArrayBuffer === 'undefined' || threads < 2) return null;
  const workerFile = writeWorkerFile();
  if (workerFile == null) return null;
  const origCreate = URL.createObjectURL;
  const origCpus = os.cpus;
  URL.createObjectURL = (obj: Blob) =>
    obj instanceof Blob && obj.type === 'application/javascript' ? workerFile : origCreate(obj);
  // The backend caps its pool at cores/2 (it assumes hyper-threading); report enough cores.
  const real = origCpus();
  os.cpus = () => Array.from({ length: 2 * threads }, (_, i) => real[i % real.length]);
  env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  wasm.setThreadsCount(threads);
  const restoreMemory = captureSharedMemory();
  return () => {
    URL.createObjectURL = origCreate;
    os.cpus = origCpus;
    restoreMemory();
  };
}

let sharedMemory: WasmMemory | null = null;

/**
 * The shared WebAssembly.Memory the threaded build created while the backend initialised (null before,
 * or single-threaded). The threaded emscripten module does not expose its memory (it imports it), but
 * this package's SIMD loops (simd.ts) must be instantiated on it.
 */
export function capturedSharedMemory(): WasmMemory | null {
  return sharedMemory;
}

/** Until the returned undo runs, records every shared memory created (emscripten makes one, in the factory). */
function captureSharedMemory(): () => void {
  const wa = wasmApi();
  if (wa == null) return () => undefined;
  const Original = wa.Memory;
  const Capturing = function (descriptor: WasmMemoryDescriptor) {
    const memory = new Original(descriptor);
    if (descriptor?.shared) sharedMemory = memory;
    return memory;
  } as unknown as WasmApiMemory;
  Capturing.prototype = Original.prototype;
  wa.Memory = Capturing;
  return () => {
    if (wa.Memory === Capturing) wa.Memory = Original;
  };
}
type WasmApiMemory = NonNullable<ReturnType<typeof wasmApi>>['Memory'];

/** Undo of {@link prepareNodeThreads} after a failed initialisation: back to single-threaded. */
export function disableThreads(wasm: ThreadsModule): void {
  env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  wasm.setThreadsCount(1);
}
