import type { RoleOutputs } from './hooks';

/**
 * Off-step access to the training set and to a role's tapped forward, for plugins with a stage of
 * their own before distillation (FT's paraphraser is pre-trained on the teacher's features) or
 * state sized by the training set (CRD's memory bank, its class-aware negatives). `PluginDeps`
 * carries it as `training`; a plugin keeps it and uses it on a number hook (`runStart`), which the
 * engine awaits, never inside a step.
 */
export interface TrainingAccess {
  /** Number of training samples (the memory bank's rows; a batch's `indices` index into it). */
  readonly size: number;
  /** Class label of every training sample (read-only). */
  readonly labels: Int32Array;
  /** The run's `train.batchSize`. */
  readonly batchSize: number;
  /**
   * The batches (training-sample indices) of a pre-training epoch (1-based): a seeded permutation
   * on a stream of its own (not the distillation epochs' order), the run's batch size, and at most
   * `train.maxBatches` batches when the spec sets it.
   */
  batches(epoch: number): Int32Array[];
  /**
   * Outputs (logits and declared taps) of `role` on the given training samples, in inference mode,
   * through the role's view. Counted in the cost ledger as forward images. Nothing is recorded for
   * gradients of the role's weights (a teacher's are frozen; call it outside any gradient tape).
   * The caller owns the tensors: call it inside `tf.tidy`.
   */
  forward(role: string, indices: Int32Array): RoleOutputs;
  /** A progress line for the run's log (stderr in the CLI). */
  log(line: string): void;
}
