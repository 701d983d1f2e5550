import type { Tensor } from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';

// The types of `EngineOptions.teacherForward` (teacher-forward.ts has the logic; node/teacher-worker.ts
// the Node source). Kept apart from types.ts so that the step's context can import them without a circle.

/**
 * A frozen teacher's outputs computed elsewhere, ahead of the step that needs them (a worker thread:
 * `teacherWorkerSource` in `@tfkd/engine/node`). Batches are named by their training-sample indices.
 */
export interface TeacherSource {
  /** Start computing the outputs of these samples (returns at once; at most two requests outstanding). */
  prefetch(indices: ArrayLike<number>): void;
  /** True when a request for exactly these samples is outstanding. */
  has(indices: ArrayLike<number>): boolean;
  /** The outputs of a prefetched batch, in the model's output order, as new tensors (waits if needed). */
  takeTensors(indices: ArrayLike<number>): Tensor[];
  /** Drop every outstanding request but those for these batches. */
  retain(keep: readonly ArrayLike<number>[]): void;
  /** Stop (a worker thread is terminated); outstanding requests are dropped. */
  close(): Promise<void>;
}

/** What a {@link TeacherSourceFactory} is asked to serve. */
export interface TeacherSourceRequest {
  role: string;
  /** The frozen forward to run: every output of this model, in order (the teacher's tapped model, folded when asked). */
  model: LayersModel;
  /** Every training image, flattened (`[n, ...sampleShape]`). */
  images: Float32Array;
  /** One sample as the model takes it (the data's image shape, or the model's flat input). */
  sampleShape: number[];
  /** Largest batch that will be requested. */
  maxBatch: number;
  /** The run's backend name (`wasm`, `cpu`). */
  backend: string;
}
export type TeacherSourceFactory = (request: TeacherSourceRequest) => Promise<TeacherSource>;

/** `EngineOptions.teacherForward`. */
export interface TeacherForwardOptions {
  /** Compute frozen teachers' outputs one batch ahead in a teacher source (Node: `teacherWorkerSource`). */
  worker?: TeacherSourceFactory;
  /**
   * Batch-norm folding for the frozen forward (teacher-output cache fill, the worker, the step's own
   * forward; not the teachers' evaluation): `foldBatchNorm` from `@tfkd/models`, or any function
   * returning an inference-only model with the same outputs in the same order.
   */
  foldBatchNorm?: (model: LayersModel) => Promise<{ model: LayersModel; folds: readonly unknown[] }>;
}

/** A teacher's fast forward during a run: its folded model and/or its source (teacher-forward.ts). */
export interface FastTeacher {
  /** The folded model (null: the teacher's own tapped model). */
  model: LayersModel | null;
  /** Outputs computed ahead (null: none). */
  source: TeacherSource | null;
}
