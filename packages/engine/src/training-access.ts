import * as tf from '@tensorflow/tfjs-core';
import { viewFor } from './context';
import { batchTensors, type CostLedger, type Dataset, epochBatches, KdError, type TrainingAccess } from '@tfkd/kd-core';
import type { RoleRuntime } from './roles';

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
