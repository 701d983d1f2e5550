import * as tf from '@tensorflow/tfjs-core';
import type { Tensor } from '@tensorflow/tfjs-core';

/**
 * The teacher-output cache: a frozen teacher in eval mode maps a training sample to the same outputs
 * every epoch, so plain KD need not recompute it. Rows are stored per sample index (logits and any
 * taps, as float32), filled on first sight and served when every sample of a batch is present.
 * The engine enables it only for runs whose batches no sampler transforms (`transformsBatch`).
 */
export class OutputCache {
  private readonly rows: Float32Array[];
  private readonly sizes: number[];
  private readonly filled: Uint8Array;
  /** Bumped on every `put`: a checkpoint reuses the previous file when the version is unchanged. */
  private version = 0;

  /** `shapes`: per output, the shape of one sample's output (logits `[K]`, a tap `[h, w, c]`). */
  constructor(
    readonly n: number,
    readonly shapes: number[][],
  ) {
    this.sizes = shapes.map((s) => s.reduce((a, b) => a * b, 1));
    this.rows = this.sizes.map((size) => new Float32Array(n * size));
    this.filled = new Uint8Array(n);
  }

  /** Bytes a cache for `n` samples of these shapes would hold. */
  static bytes(n: number, shapes: number[][]): number {
    return 4 * n * shapes.reduce((s, shape) => s + shape.reduce((a, b) => a * b, 1), 0);
  }

  has(indices: ArrayLike<number>): boolean {
    for (let i = 0; i < indices.length; i++) if (!this.filled[indices[i]]) return false;
    return true;
  }

  /** The cached outputs of these samples, as new tensors `[b, ...shape]`. */
  get(indices: ArrayLike<number>): Tensor[] {
    const b = indices.length;
    return this.rows.map((rows, o) => {
      const size = this.sizes[o];
      const out = new Float32Array(b * size);
      for (let i = 0; i < b; i++) out.set(rows.subarray(indices[i] * size, (indices[i] + 1) * size), i * size);
      return tf.tensor(out, [b, ...this.shapes[o]], 'float32');
    });
  }

  put(indices: ArrayLike<number>, outputs: readonly Tensor[]): void {
    outputs.forEach((t, o) => {
      const size = this.sizes[o];
      const values = t.dataSync() as Float32Array;
      for (let i = 0; i < indices.length; i++) this.rows[o].set(values.subarray(i * size, (i + 1) * size), indices[i] * size);
    });
    for (let i = 0; i < indices.length; i++) this.filled[indices[i]] = 1;
    this.version++;
  }

  /** The cache's contents for a checkpoint (the arrays themselves, not copies: write them before the next step). */
  state(): { shapes: number[][]; rows: Float32Array[]; filled: Uint8Array; version: number } {
    return { shapes: this.shapes, rows: this.rows, filled: this.filled, version: this.version };
  }

  /** Restore contents saved by `state()` (same sample count and output shapes). */
  restore(s: { shapes: number[][]; rows: Float32Array[]; filled: Uint8Array; version: number }): void {
    if (JSON.stringify(s.shapes) !== JSON.stringify(this.shapes) || s.filled.length !== this.n) {
      throw new Error(`teacher-output cache: saved shapes ${JSON.stringify(s.shapes)} × ${s.filled.length} do not match ${JSON.stringify(this.shapes)} × ${this.n}`);
    }
    s.rows.forEach((r, o) => this.rows[o].set(r));
    this.filled.set(s.filled);
    this.version = s.version;
  }
}
