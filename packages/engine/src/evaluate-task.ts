import * as tf from '@tensorflow/tfjs-core';
import { batchTensors, type Dataset, type EvalReport, type LifecycleBus, type Task } from '@tfkd/kd-core';
import { viewFor } from './context';
import type { RoleRuntime } from './roles';
import { evalReport, evaluate } from './step';

type EvalMeta = Parameters<typeof evaluate>[3];

/**
 * A run's evaluation of `roles` on the test split: classification through `evaluate` (accuracy and
 * NLL computed by the engine, metric plugins beside them), the dense tasks through `evaluateDense`.
 */
export function evaluateRoles(task: Task, bus: LifecycleBus, roles: RoleRuntime[], test: Dataset, meta: EvalMeta): Promise<EvalReport> {
  return task === 'classification' ? evaluate(bus, roles, test, meta) : evaluateDense(bus, roles, test, meta);
}

/**
 * Detection and segmentation: every test batch goes to the metric plugins (`evalBatch`) with the
 * model's outputs by name (`heads`) and the batch's targets (`objects` or `masks`); the numbers are
 * the plugins' (`metric/map`, `metric/miou`: the task's metric is always among them). The engine
 * computes no accuracy here and keeps no test logits (they are maps, not class scores). Smaller
 * batches than classification's: a dense model's activations are per pixel.
 */
export async function evaluateDense(bus: LifecycleBus, roles: RoleRuntime[], test: Dataset, meta: EvalMeta): Promise<EvalReport> {
  const { report } = evalReport(meta);
  const n = test.labels.length;
  const bs = meta.batchSize ?? 100;
  for (const r of roles) {
    for (let s = 0; s < n; s += bs) {
      const idx = Int32Array.from({ length: Math.min(bs, n - s) }, (_, i) => s + i);
      tf.tidy(() => {
        const { x, y, objects, masks } = batchTensors(test, idx);
        const raw = r.model.apply(viewFor(r, x), { training: false }) as tf.Tensor | tf.Tensor[];
        const list = Array.isArray(raw) ? raw : [raw];
        const heads = Object.fromEntries(r.model.outputNames.map((name, i) => [name, list[i]]));
        const outputs = list.length > 1 ? Object.fromEntries(r.model.outputNames.slice(1).map((name, i) => [name, list[i + 1]])) : undefined;
        bus.emit('evalBatch', {
          phase: meta.phase, epoch: meta.epoch, role: r.info.name, logits: list[0], labels: y, heads,
          ...(outputs ? { outputs } : {}), ...(objects ? { objects } : {}), ...(masks ? { masks } : {}),
        });
      });
    }
  }
  await bus.emitAsync('evalEnd', report);
  return report;
}
