/**
 * A frozen teacher's forward pass in a worker thread (Node only: worker_threads, SharedArrayBuffer,
 * Atomics), so that on a multi-core machine the teacher forward of batch i+1 runs while the student
 * trains on batch i. The batch order is known in advance, so the caller asks for the next batch
 * (`prefetch`) before stepping the current one and collects it with `take`, which blocks (Atomics.wait)
 * only if the worker is not done yet — synchronous, so it fits a synchronous training step.
 *
 * The worker gets its own tfjs backend (the same backend name as the caller's, with
 * `@tfkd/backend-wasm-train` when it is installed), the teacher's topology and weights once
 * (serialised through `model.save`), and the training images once (copied into shared memory). It
 * gathers a batch's rows exactly as `batchTensors` does and runs `model.apply(x, { training: false })`,
 * so on the same backend its outputs are bit-identical to the caller's own forward (tested in
 * teacher-worker.spec.ts). Counting stays the caller's job: one forward per batch, as if run inline.
 *
 * In a run: `EngineOptions.teacherForward.worker = teacherWorkerSource` (`kd run --teacher-worker`);
 * the engine's `TeacherForward` (teacher-forward.ts) asks one batch ahead and drops stale requests
 * (`retain`), and closes the worker when the run ends, fails or stops.
 *
 * Protocol: two slots (double buffering). Per slot, an Int32 state (0 idle, 1 requested, 2 done,
 * 3 failed) and length in `ctrl`, the sample indices in `idx`, the outputs (each flattened, in model
 * output order) in `out`. The request itself is a message carrying the slot number.
 */
import type { LayersModel } from '@tensorflow/tfjs-layers';
import * as tf from '@tensorflow/tfjs-core';
import * as fs from 'fs';
import { createRequire } from 'module';
import * as path from 'path';
import { Worker } from 'worker_threads';
import type { TeacherSource, TeacherSourceFactory } from '../teacher-source';

export interface TeacherWorkerOptions {
  /** The frozen teacher (or its tapped view: every output is returned, in order). Its weights are copied once. */
  model: LayersModel;
  /** All training images, `[n, ...sampleShape]` flattened (copied once into shared memory). */
  images: Float32Array;
  sampleShape: number[];
  /** Largest batch that will be requested. */
  maxBatch: number;
  /**
   * Backend of the worker: default the caller's `tf.getBackend()`. 'wasm' loads
   * `@tfkd/backend-wasm-train` (single thread) when it resolves, else `@tensorflow/tfjs-backend-wasm`.
   */
  backend?: 'wasm' | 'cpu';
}

const SLOTS = 2;
const IDLE = 0;
const REQUESTED = 1;
const DONE = 2;
const FAILED = 3;
/** A forward that takes longer than this means the worker is gone (it cannot tell us while we block). */
const WAIT_LIMIT_MS = 10 * 60 * 1000;

/**
 * The CommonJS entry (package.json `main`) a worker can require, found from the cwd, then from here.
 * Resolving `<name>/package.json` rather than `<name>` keeps test runners' module mappings (which
 * point workspace packages at their TypeScript sources) out of it.
 */
function resolveFrom(name: string): string | null {
  for (const base of [path.join(process.cwd(), 'noop.js'), __filename]) {
    try {
      const manifest = createRequire(base).resolve(`${name}/package.json`);
      const main = (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { main?: string }).main ?? 'index.js';
      const entry = path.join(path.dirname(manifest), main);
      if (fs.existsSync(entry)) return entry;
    } catch {
      // next base
    }
  }
  return null;
}

/** The worker's source (CommonJS, evaluated): paths of the modules it loads come in workerData. */
const WORKER_SOURCE = `
const { parentPort, workerData: d } = require('worker_threads');
const tf = require(d.paths.core);
const layers = require(d.paths.layers);
(async () => {
  let ok = false;
  if (d.backend === 'wasm') {
    if (d.paths.wasmTrain) ok = await require(d.paths.wasmTrain).initWasmBackend();
    if (!ok && d.paths.wasm) { require(d.paths.wasm); ok = await tf.setBackend('wasm'); }
  } else {
    require(d.paths.cpu);
    ok = await tf.setBackend('cpu');
  }
  if (!ok) throw new Error('teacher worker: backend ' + d.backend + ' failed to initialise');
  if (d.paths.models) { try { require(d.paths.models); } catch (e) { /* custom layers are optional */ } }
  const model = await layers.loadLayersModel(tf.io.fromMemory(d.artifacts));
  const images = new Float32Array(d.images);
  const ctrl = new Int32Array(d.ctrl);
  const idx = new Int32Array(d.idx);
  const out = new Float32Array(d.out);
  const per = d.sampleShape.reduce((a, b) => a * b, 1);
  const slotFloats = d.maxBatch * d.outPerSample.reduce((a, b) => a + b, 0);
  parentPort.postMessage({ ready: true, backend: tf.getBackend() });
  parentPort.on('message', ({ slot }) => {
    try {
      const n = ctrl[slot * 4 + 1];
      const xs = new Float32Array(n * per);
      for (let i = 0; i < n; i++) { const k = idx[slot * d.maxBatch + i]; xs.set(images.subarray(k * per, (k + 1) * per), i * per); }
      const values = tf.tidy(() => {
        const raw = model.apply(tf.tensor(xs, [n, ...d.sampleShape]), { training: false });
        return (Array.isArray(raw) ? raw : [raw]).map((t) => t.dataSync());
      });
      let at = slot * slotFloats;
      for (const v of values) { out.set(v, at); at += v.length; }
      Atomics.store(ctrl, slot * 4, ${DONE});
    } catch (e) {
      parentPort.postMessage({ error: String(e && e.stack || e) });
      Atomics.store(ctrl, slot * 4, ${FAILED});
    }
    Atomics.notify(ctrl, slot * 4);
  });
})().catch((e) => { parentPort.postMessage({ error: String(e && e.stack || e) + ' (paths ' + JSON.stringify(d.paths) + ')' }); });
`;

async function artifactsOf(model: LayersModel): Promise<tf.io.ModelArtifacts> {
  let saved: tf.io.ModelArtifacts | null = null;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      saved = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (!saved) throw new Error('teacher worker: the model could not be serialised');
  return saved;
}

export class TeacherWorker implements TeacherSource {
  private readonly ctrl: Int32Array;
  private readonly idx: Int32Array;
  private readonly out: Float32Array;
  private readonly pending: (Int32Array | null)[] = new Array(SLOTS).fill(null);
  private next = 0;
  private lastError: string | null = null;
  private closed = false;
  private exited = false;

  private constructor(
    private readonly worker: Worker,
    buffers: { ctrl: SharedArrayBuffer; idx: SharedArrayBuffer; out: SharedArrayBuffer },
    private readonly maxBatch: number,
    /** Per output: its shape for one sample. */
    readonly outputShapes: number[][],
    /** The worker's backend. */
    readonly backend: string,
  ) {
    this.ctrl = new Int32Array(buffers.ctrl);
    this.idx = new Int32Array(buffers.idx);
    this.out = new Float32Array(buffers.out);
    worker.on('message', (m: { error?: string }) => {
      if (m.error) this.lastError = m.error;
    });
    worker.once('exit', () => (this.exited = true));
  }

  /** True while the worker thread runs (false once `close()` has terminated it, or it died). */
  get alive(): boolean {
    return !this.exited;
  }

  /** Starts the worker and waits until it has its backend and the teacher. */
  static async start(opts: TeacherWorkerOptions): Promise<TeacherWorker> {
    const backend = opts.backend ?? (tf.getBackend() === 'wasm' ? 'wasm' : 'cpu');
    const paths = {
      core: resolveFrom('@tensorflow/tfjs-core'),
      layers: resolveFrom('@tensorflow/tfjs-layers'),
      cpu: resolveFrom('@tensorflow/tfjs-backend-cpu'),
      wasm: resolveFrom('@tensorflow/tfjs-backend-wasm'),
      wasmTrain: resolveFrom('@tfkd/backend-wasm-train'),
      models: resolveFrom('@tfkd/models'),
    };
    if (!paths.core || !paths.layers) throw new Error('teacher worker: @tensorflow/tfjs-core and tfjs-layers must resolve');
    const outputShapes = opts.model.outputs.map((o) => o.shape.slice(1) as number[]);
    const outPerSample = outputShapes.map((s) => s.reduce((a, b) => a * b, 1));
    const perSlot = opts.maxBatch * outPerSample.reduce((a, b) => a + b, 0);
    const images = new SharedArrayBuffer(opts.images.byteLength);
    new Float32Array(images).set(opts.images);
    const buffers = {
      ctrl: new SharedArrayBuffer(4 * 4 * SLOTS),
      idx: new SharedArrayBuffer(4 * opts.maxBatch * SLOTS),
      out: new SharedArrayBuffer(4 * perSlot * SLOTS),
    };
    const workerData = {
      paths,
      backend,
      artifacts: await artifactsOf(opts.model),
      images,
      ...buffers,
      sampleShape: opts.sampleShape,
      maxBatch: opts.maxBatch,
      outPerSample,
    };
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData });
    const ready = await new Promise<{ backend: string }>((resolve, reject) => {
      const onMessage = (m: { ready?: boolean; backend: string; error?: string }) => {
        if (m.ready) resolve(m);
        else if (m.error) reject(new Error(`teacher worker failed to start: ${m.error}`));
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`teacher worker exited (${code}) before it was ready`)));
    });
    worker.removeAllListeners('message');
    worker.removeAllListeners('error');
    worker.removeAllListeners('exit');
    worker.on('error', () => undefined);
    // Never the reason the process stays alive (take() blocks with Atomics, not the event loop).
    worker.unref();
    return new TeacherWorker(worker, buffers, opts.maxBatch, outputShapes, ready.backend);
  }

  /** Asks the worker for the outputs of these samples (returns at once). At most two requests outstanding. */
  prefetch(indices: ArrayLike<number>): void {
    if (this.closed) throw new Error('teacher worker: closed');
    if (indices.length > this.maxBatch) throw new Error(`teacher worker: batch ${indices.length} > maxBatch ${this.maxBatch}`);
    const slot = this.next;
    if (this.pending[slot] != null) throw new Error('teacher worker: two requests are already outstanding; take() one first');
    this.next = (slot + 1) % SLOTS;
    const ids = Int32Array.from(indices);
    this.idx.set(ids, slot * this.maxBatch);
    Atomics.store(this.ctrl, slot * 4 + 1, ids.length);
    Atomics.store(this.ctrl, slot * 4, REQUESTED);
    this.pending[slot] = ids;
    this.worker.postMessage({ slot });
  }

  /** True when a request for exactly these samples is outstanding. */
  has(indices: ArrayLike<number>): boolean {
    return this.slotOf(indices) >= 0;
  }

  /**
   * The outputs for a prefetched batch, in model output order (each `[b, ...shape]` flattened),
   * waiting for the worker if needed. Throws if these samples were not prefetched.
   */
  take(indices: ArrayLike<number>): Float32Array[] {
    const slot = this.slotOf(indices);
    if (slot < 0) throw new Error('teacher worker: take() of a batch that was not prefetched');
    const at = slot * 4;
    const deadline = Date.now() + WAIT_LIMIT_MS;
    while (Atomics.load(this.ctrl, at) === REQUESTED) {
      if (Date.now() > deadline) throw new Error(`teacher worker: no answer within ${WAIT_LIMIT_MS / 1000} s (did the worker die?)`);
      Atomics.wait(this.ctrl, at, REQUESTED, 1000);
    }
    const state = Atomics.load(this.ctrl, at);
    this.pending[slot] = null;
    Atomics.store(this.ctrl, at, IDLE);
    if (state !== DONE) throw new Error(`teacher worker: forward failed: ${this.lastError ?? 'unknown error'}`);
    const n = indices.length;
    const perSlot = this.maxBatch * this.outputShapes.reduce((s, sh) => s + sh.reduce((a, b) => a * b, 1), 0);
    let off = slot * perSlot;
    return this.outputShapes.map((shape) => {
      const size = n * shape.reduce((a, b) => a * b, 1);
      const v = this.out.slice(off, off + size);
      off += size;
      return v;
    });
  }

  /** As {@link take}, as tensors `[b, ...shape]` (owned by the caller). */
  takeTensors(indices: ArrayLike<number>): tf.Tensor[] {
    const n = indices.length;
    return this.take(indices).map((v, i) => tf.tensor(v, [n, ...this.outputShapes[i]], 'float32'));
  }

  /**
   * Drops every outstanding request except those for the batches in `keep` (a request being computed
   * is waited for first: its slot is written until the worker is done with it).
   */
  retain(keep: readonly ArrayLike<number>[]): void {
    for (let s = 0; s < SLOTS; s++) {
      const p = this.pending[s];
      if (p == null || keep.some((k) => sameIndices(p, k))) continue;
      const at = s * 4;
      const deadline = Date.now() + WAIT_LIMIT_MS;
      while (Atomics.load(this.ctrl, at) === REQUESTED && Date.now() <= deadline) Atomics.wait(this.ctrl, at, REQUESTED, 1000);
      this.pending[s] = null;
      Atomics.store(this.ctrl, at, IDLE);
    }
  }

  /** Stops the worker (outstanding requests are dropped); resolves once the thread has exited. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.worker.terminate();
    this.exited = true;
  }

  private slotOf(indices: ArrayLike<number>): number {
    for (let s = 0; s < SLOTS; s++) {
      const p = this.pending[s];
      if (p != null && sameIndices(p, indices)) return s;
    }
    return -1;
  }
}

function sameIndices(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The Node host's teacher source for `EngineOptions.teacherForward.worker` (`kd run --teacher-worker`):
 * a {@link TeacherWorker} on the run's backend (wasm, or cpu), one batch ahead of the student.
 */
export const teacherWorkerSource: TeacherSourceFactory = (request) =>
  TeacherWorker.start({
    model: request.model,
    images: request.images,
    sampleShape: request.sampleShape,
    maxBatch: request.maxBatch,
    backend: request.backend === 'wasm' ? 'wasm' : 'cpu',
  });
