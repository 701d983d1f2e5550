import { type EpochSummary, KdError, type RunSpec } from '@tfkd/kd-core';
import { canonical, sha256Hex } from './hash';

/**
 * Checkpoints: everything a run needs to continue exactly where it stopped, as one folder.
 *
 * ```
 * checkpoint/checkpoint.json   TrainingState without the tensors (written last: its presence marks a whole checkpoint)
 * checkpoint/tensors.bin       every tensor of the state, raw little-endian float32/int32, 4-byte aligned
 * checkpoint/cache-<i>.bin     teacher-output cache i: its rows, then its filled mask (hard-linked from
 *                              the previous checkpoint when unchanged since)
 * ```
 * `writeCheckpoint` writes `checkpoint.tmp/`, then renames the previous `checkpoint/` to
 * `checkpoint.old/`, the new one into place, and removes the old one. A failure at any point leaves
 * the previous checkpoint readable: `readCheckpoint` falls back to `checkpoint.old/` when a crash
 * fell between the two renames.
 */
export const CHECKPOINT_FORMAT = 'tfkd-checkpoint';
/** 2: `players` (a checkpoint of version 1 is read with `players: []`). */
export const CHECKPOINT_VERSION = 2;
export const CHECKPOINT_FILE = 'checkpoint.json';

export interface TensorData {
  /** The tfjs variable name when saved (informative only: names carry per-process counters; restore is by position). */
  name: string;
  dtype: 'float32' | 'int32';
  shape: number[];
  values: Float32Array | Int32Array;
}

export interface OptimizerState {
  /** tfjs class name: `Adam`, `Momentum`, `SGD`. */
  kind: string;
  /** tfjs iteration counter (steps applied). */
  iterations: number;
  /** `getWeights()` after the counter, in order: Adam m… then v…, Momentum its accumulations, SGD none. */
  slots: TensorData[];
  /** Adam's running β₁ᵗ and β₂ᵗ (float32), restored as they were rather than recomputed with pow(). */
  accBeta?: [number, number];
}

/** A step position: the next step to run is batch `batchIndex` (0-based) of epoch `epoch` (1-based). */
export interface RunPosition {
  epoch: number;
  batchIndex: number;
}

export interface TeacherCacheState {
  role: string;
  /** Per output, the shape of one sample's output. */
  shapes: number[][];
  rows: Float32Array[];
  filled: Uint8Array;
  /** Bumped on every write to the cache; equal versions mean equal contents (lets a checkpoint reuse the previous file). */
  version: number;
}

/** The training state a checkpoint holds; `Engine` produces it (`onCheckpoint`) and consumes it (`resume`). */
export interface TrainingState {
  /** `specHash(spec)`: a resumed run must have the same. */
  specHash: string;
  spec: RunSpec;
  phase: string;
  /**
   * Runs with `stages:`: the phase (a declared stage's name, or the main phase's) whose position
   * `next` is and whose optimizers `roles[].optimizer` hold. Absent in runs without stages.
   */
  stage?: string;
  backend: string;
  /** The next step to run. `batchIndex > 0`: stopped inside an epoch (an interrupted run). */
  next: RunPosition;
  /** Steps taken so far (the engine's global step counter). */
  step: number;
  /** Batches skipped so far by `nonFinite: skip-batch`. */
  skipped: number;
  /** Inside an epoch: the running sums of the epoch's loss terms so far, the counted batches and seconds. */
  epochProgress: { sums: Record<string, number>; counted: number; seconds: number } | null;
  history: EpochSummary[];
  /** Latest evaluation by role (teachers' from the start of the run). */
  eval: Record<string, Record<string, number>>;
  /** `CostLedger.getState()`. */
  ledger: unknown;
  /** Wall seconds of training so far, over every process of the run. */
  seconds: number;
  dataset: { name: string; train: number; test: number };
  /** Teacher role → fingerprint of its weights (a resumed run must distil from the same teacher). */
  teachers: Record<string, string>;
  /** Every student: all its weights (`model.weights` order, non-trainable included) and its optimizer. */
  roles: { name: string; weights: TensorData[]; optimizer: OptimizerState | null }[];
  /** Every player (spec `players:`): all its weights and its optimizer (the phase's); [] without players. */
  players: { name: string; weights: TensorData[]; optimizer: OptimizerState | null }[];
  /** Every plugin instance in spec order: variables, buffers, JSON state and its generator's state. */
  plugins: { name: string; variables: TensorData[]; buffers: TensorData[]; state?: unknown; rng: (number | null)[] }[];
  caches: TeacherCacheState[];
  /** How many times this run was resumed before this checkpoint. */
  resumes: number;
  createdAt: string;
}

/** What `peekCheckpoint` tells without reading tensors. */
export interface CheckpointSummary {
  dir: string;
  specHash: string;
  spec: RunSpec;
  next: RunPosition;
  step: number;
  epochsDone: number;
  createdAt: string;
}

/** Hash of a resolved spec (defaults filled in, key order irrelevant). */
export function specHash(spec: RunSpec): string {
  return sha256Hex(JSON.stringify(canonical(spec))).slice(0, 16);
}

/** Paths where two specs differ (`train.epochs`, `plugins[1].with.temperature`), at most `limit`. */
export function specDifferences(a: unknown, b: unknown, limit = 8): string[] {
  const out: string[] = [];
  const walk = (x: unknown, y: unknown, at: string): void => {
    if (out.length >= limit) return;
    const bothObjects = x && y && typeof x === 'object' && typeof y === 'object' && Array.isArray(x) === Array.isArray(y);
    if (!bothObjects) {
      if (JSON.stringify(canonical(x)) !== JSON.stringify(canonical(y))) out.push(at || '(root)');
      return;
    }
    if (Array.isArray(x)) {
      const ya = y as unknown[];
      if (x.length !== ya.length) {
        out.push(`${at || '(root)'} (${x.length} vs ${ya.length} entries)`);
        return;
      }
      x.forEach((v, i) => walk(v, ya[i], `${at}[${i}]`));
      return;
    }
    const xo = x as Record<string, unknown>;
    const yo = y as Record<string, unknown>;
    for (const k of [...new Set([...Object.keys(xo), ...Object.keys(yo)])].sort()) walk(xo[k], yo[k], at ? `${at}.${k}` : k);
  };
  walk(a, b, '');
  return out;
}

/** KD_RESUME_MISMATCH unless `spec` is the spec a checkpoint was written with. */
export function checkSameSpec(spec: RunSpec, saved: { specHash: string; spec: RunSpec }): void {
  const hash = specHash(spec);
  if (saved.specHash === hash) return;
  const diff = specDifferences(saved.spec, spec);
  throw new KdError('KD_RESUME_MISMATCH', `the spec differs from the checkpoint's at ${diff.join(', ') || 'an unknown path'} (hash ${hash}, checkpoint ${saved.specHash})`, {
    path: diff[0]?.split(' ')[0] ?? '(root)',
    fix: 'resume with the spec file and --set/--backend overrides of the interrupted run (its spec.resolved.yaml shows the values), or start a new run without --resume',
  });
}
