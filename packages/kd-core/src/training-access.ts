import * as tf from '@tensorflow/tfjs-core';
import { viewFor } from './context';
import { batchTensors, epochBatches } from './data';
import { KdError } from './errors';
import type { RoleOutputs } from './hooks';
import type { CostLedger } from './ledger';
import type { RoleRuntime } from './roles';
import type { Dataset } from './tokens';

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

/** The engine's implementation, built in `setup.ts` once the roles exist. */
export function trainingAccess(opts: {
  roles: Map<string, RoleRuntime>;
  train: Dataset;
  ledger: CostLedger;
  seed: number;
  batchSize: number;
  maxBatches?: number;
  log: (line: string) => void;
}): TrainingAccess {
  const n = opts.train.labels.length;
  return {
    size: n,
    labels: opts.train.labels,
    batchSize: opts.batchSize,
    batches(epoch) {
      const all = epochBatches(n, { batchSize: opts.batchSize, seed: (opts.seed ^ 0x3c6ef372) >>> 0, epoch });
      return opts.maxBatches ? all.slice(0, opts.maxBatches) : all;
    },
    forward(role, indices) {
      const r = opts.roles.get(role);
      if (!r) {
        throw new KdError('KD_PLUGIN_DEPENDENCY', `no role '${role}' in this run (roles: ${[...opts.roles.keys()].join(', ')})`, {
          fix: 'declare the role in the spec, and in the plugin requirements',
        });
      }
      const { x } = batchTensors(opts.train, indices);
      const raw = r.tapped.apply(viewFor(r, x), { training: false });
      const list = Array.isArray(raw) ? (raw as tf.Tensor[]) : [raw as tf.Tensor];
      opts.ledger.forward(role, indices.length);
      return { logits: list[0], taps: Object.fromEntries(r.tapNames.map((name, i) => [name, list[i + 1]])) };
    },
    log: opts.log,
  };
}
