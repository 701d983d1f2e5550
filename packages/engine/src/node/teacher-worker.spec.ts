/**
 * The frozen teacher in a worker thread: its outputs for batch i+1, computed while the caller works
 * on batch i, are bit-identical to the caller's own forward on the same backend, and a KD training
 * loop fed from the worker gives bit-identical losses to the sequential loop.
 */
import * as tf from '@tensorflow/tfjs';
import { TeacherWorker } from './teacher-worker';

const H = 8;
const N = 48;
const B = 16;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0) / 4294967296) * 2 - 1;
}
function images(seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: N * H * H }, () => (r() + 1) / 2);
}
/** Teacher with two outputs (logits and a tap), deterministic weights. */
function teacher(): tf.LayersModel {
  const input = tf.input({ shape: [H, H, 1] });
  const conv = tf.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) });
  const tap = tf.layers.maxPooling2d({ poolSize: 2 }).apply(conv.apply(input)) as tf.SymbolicTensor;
  const logits = tf.layers.dense({ units: 5, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }).apply(tf.layers.flatten().apply(tap)) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: [logits, tap] });
}
function gather(all: Float32Array, idx: Int32Array): tf.Tensor4D {
  const per = H * H;
  const xs = new Float32Array(idx.length * per);
  idx.forEach((k, i) => xs.set(all.subarray(k * per, (k + 1) * per), i * per));
  return tf.tensor4d(xs, [idx.length, H, H, 1]);
}
const order = [0, 1, 2, 0, 1, 2].map((e) => Int32Array.from({ length: B }, (_, i) => (i * 7 + e * 5) % N));
const bytes = (v: Float32Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);

let wasmOk = false;
beforeAll(async () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  wasmOk = await (require('@tfkd/backend-wasm-train') as typeof import('@tfkd/backend-wasm-train')).initWasmBackend();
  if (!wasmOk) await tf.setBackend('cpu');
}, 60_000);

describe('TeacherWorker', () => {
  it('outputs of prefetched batches are bit-identical to the caller forward on the same backend', async () => {
    const model = teacher();
    const data = images(3);
    const worker = await TeacherWorker.start({ model, images: data, sampleShape: [H, H, 1], maxBatch: B });
    try {
      expect(worker.backend).toBe(tf.getBackend());
      expect(worker.outputShapes).toEqual([[5], [4, 4, 6]]);
      const before = tf.memory().numTensors;
      worker.prefetch(order[0]);
      for (let i = 0; i < order.length; i++) {
        if (i + 1 < order.length) worker.prefetch(order[i + 1]);
        const got = worker.take(order[i]);
        const want = tf.tidy(() => (model.apply(gather(data, order[i]), { training: false }) as tf.Tensor[]).map((t) => t.dataSync() as Float32Array));
        expect(got.map((v) => v.length)).toEqual(want.map((v) => v.length));
        got.forEach((v, k) => expect(bytes(v).equals(bytes(want[k]))).toBe(true));
      }
      expect(tf.memory().numTensors).toBe(before);
      expect(() => worker.take(order[0])).toThrow(/not prefetched/);
    } finally {
      await worker.close();
      model.dispose();
    }
  }, 60_000);

  it('a KD loop fed from the worker (teacher one batch ahead) gives the sequential losses bit for bit', async () => {
    const model = teacher();
    const data = images(4);
    const run = async (worker: TeacherWorker | null): Promise<number[]> => {
      const student = tf.sequential({
        layers: [
          tf.layers.conv2d({ inputShape: [H, H, 1], filters: 3, kernelSize: 3, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 5 }) }),
          tf.layers.flatten(),
          tf.layers.dense({ units: 5, kernelInitializer: tf.initializers.glorotUniform({ seed: 6 }) }),
        ],
      });
      const opt = tf.train.adam(1e-2);
      const losses: number[] = [];
      worker?.prefetch(order[0]);
      for (let i = 0; i < order.length; i++) {
        if (worker && i + 1 < order.length) worker.prefetch(order[i + 1]);
        const t = worker ? worker.takeTensors(order[i])[0] : tf.tidy(() => (model.apply(gather(data, order[i]), { training: false }) as tf.Tensor[])[0]);
        const x = gather(data, order[i]);
        const loss = opt.minimize(() => {
          const s = student.apply(x, { training: true }) as tf.Tensor;
          return tf.losses.softmaxCrossEntropy(tf.softmax(t), s) as tf.Scalar;
        }, true) as tf.Scalar;
        losses.push(loss.dataSync()[0]);
        tf.dispose([t, x, loss]);
      }
      opt.dispose();
      student.dispose();
      return losses;
    };
    const sequential = await run(null);
    const worker = await TeacherWorker.start({ model, images: data, sampleShape: [H, H, 1], maxBatch: B });
    try {
      const overlapped = await run(worker);
      expect(Float64Array.from(overlapped)).toEqual(Float64Array.from(sequential));
      expect(new Set(sequential).size).toBeGreaterThan(1);
    } finally {
      await worker.close();
      model.dispose();
    }
  }, 60_000);
});
