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
      for (let i = 0; i < b; i++)
        out.set(rows.subarray(indices[i] * size, (indices[i] + 1) * size), i * size);
      return tf.tensor(out, [b, ...this.shapes[o]], 'float32');
    });
  }

  put(indices: ArrayLike<number>, outputs: readonly Tensor[]): void {
    outputs.forEach((t, o) => {
      const size = this.sizes[o];
      const values = t.dataSync() as Float32Array;
      for (let i = 0; i < indices.length; i++)
        this.rows[o].set(values.subarray(i * size, (i + 1) * size), indices[i] * size);
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
      throw new Error(
        `teacher-output cache: saved shapes ${JSON.stringify(s.shapes)} × ${s.filled.length} do not match ${JSON.stringify(this.shapes)} × ${this.n}`,
      );
    }
    s.rows.forEach((r, o) => this.rows[o].set(r));
    this.filled.set(s.filled);
    this.version = s.version;
  }
}

/** One teacher's outputs as the step forwards them: the logits (first), then its taps; shapes per sample. */
export interface CachedOutputs {
  role: string;
  outputs: { name: string; shape: readonly (number | null | undefined)[] }[];
}

/**
 * The teacher-output caches of a run within `budgetMB` (spec `teacherCacheMB`, MiB): n samples × every
 * output a teacher forwards (logits and taps) × 4 bytes, for all teachers together, allocated up front.
 * A teacher whose outputs do not fit in what is left (dense per-pixel logits can be hundreds of MiB),
 * have no fixed per-sample shape, or cannot be allocated gets no cache: it is forwarded at every step,
 * with the same outputs, and `log` says so once with the numbers and the setting that would cache it.
 */
export function outputCaches(
  teachers: readonly CachedOutputs[],
  n: number,
  budgetMB: number,
  log: (line: string) => void,
): Map<string, OutputCache> {
  const caches = new Map<string, OutputCache>();
  const budget = budgetMB * 2 ** 20;
  let used = 0;
  for (const t of teachers) {
    const not = (why: string, fix = '') =>
      log(`teacher '${t.role}': outputs not cached: ${why}; the teacher is forwarded at every step${fix}`);
    const loose = t.outputs.find((o) => !o.shape.every((d) => Number.isInteger(d) && (d as number) > 0));
    if (loose) {
      not(`${loose.name} has no fixed per-sample shape [${loose.shape.map((d) => d ?? 'null').join(', ')}]`);
      continue;
    }
    const shapes = t.outputs.map((o) => o.shape as number[]);
    const bytes = OutputCache.bytes(n, shapes);
    if (used + bytes > budget) {
      const what = t.outputs.map((o) => `${o.name} [${o.shape.join(', ')}]`).join(', ');
      const left = used > 0 ? `the ${formatBytes(budget - used)} left of ` : '';
      not(
        `${n} sample${n === 1 ? '' : 's'} × ${formatBytes(bytes / n)} (${what}) = ${formatBytes(bytes)}, more than ${left}teacherCacheMB: ${budgetMB}`,
        ` (set teacherCacheMB: ${roundUpMB((used + bytes) / 2 ** 20)} or more to cache them)`,
      );
      continue;
    }
    try {
      caches.set(t.role, new OutputCache(n, shapes));
      used += bytes;
    } catch (e) {
      not(`${formatBytes(bytes)} could not be allocated (${(e as Error)?.message ?? String(e)})`);
    }
  }
  return caches;
}

/** `768 B`, `1.75 KiB`, `859 MiB`: three significant digits in the largest binary unit below the size. */
function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let u = 0;
  while (bytes >= 1024 && u < units.length - 1) {
    bytes /= 1024;
    u++;
  }
  return `${bytes >= 1000 ? Math.round(bytes) : +bytes.toPrecision(3)} ${units[u]}`;
}

/** A `teacherCacheMB` at least `mb`, as one would write it: whole MiB from 1 up, two significant digits below. */
function roundUpMB(mb: number): number {
  if (mb >= 1) return Math.ceil(mb);
  const step = 10 ** (Math.floor(Math.log10(mb)) - 1);
  return +(Math.ceil(mb / step) * step).toPrecision(2);
}
