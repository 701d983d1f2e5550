import { runSpec } from '../execute';
import type { Registry } from '../registry';
import { DotOptimizer, type LossObjective, type LossTerm, type PluginBus, type PluginDefinition, type RunSpec, type StepContext } from '@tfkd/kd-core';

// Test helpers for plugin authors: DOT (`train.optimizer: { name: dot }`) in a real run: which gradient a plugin's terms land in. The
// engine differentiates the step's task terms and its distillation terms apart (engine `splitGrads`)
// and hands both to `DotOptimizer.applyDot`, where these helpers read them.

/**
 * `def` under the id `probe/<family>-<name>`: its loss terms reach the step only when `keep(term)`
 * (the term's key, e.g. `student.0:ce`); every term's own `objective` label is recorded in `labels`.
 * Its definition's `objective` is `def`'s.
 */
export function dotProbe(def: PluginDefinition, keep: (term: string) => boolean, labels: Record<string, LossObjective | undefined> = {}): PluginDefinition {
  return {
    ...def,
    id: `probe/${def.id.replace('/', '-')}`,
    create(options, deps) {
      const plugin = def.create(options, deps);
      const key = (term: LossTerm) => (term.name ?? deps.name).slice(deps.name.length + 1);
      return {
        ...plugin,
        register(bus: PluginBus) {
          plugin.register({
            on(hook, handler) {
              if (hook !== 'loss') return bus.on(hook, handler);
              bus.on('loss', (ctx) => {
                const view = Object.create(ctx) as StepContext;
                view.addLoss = (term: LossTerm) => {
                  labels[key(term)] = term.objective;
                  if (keep(key(term))) ctx.addLoss(term);
                };
                (handler as (c: StepContext) => void)(view);
              });
            },
          });
        },
      };
    },
  };
}

/** Per trainable role (in the order the engine steps them), per weight of that role: a gradient, or null. */
export type Grads = (Float32Array | null)[][];

/** The task and the distillation gradients DOT steps on in the run's first step. */
export interface DotStep {
  task: Grads;
  distill: Grads;
}

/** Runs `spec` (its optimizer `dot`, one step: `maxBatches: 1`, one epoch) and returns its DOT gradients. */
export async function firstDotStep(spec: RunSpec, registry: Registry): Promise<DotStep> {
  const step: DotStep = { task: [], distill: [] };
  const applyDot = DotOptimizer.prototype.applyDot;
  const read = (m: Record<string, { dataSync(): unknown }>, names: string[]) => names.map((n) => (m[n] ? Float32Array.from(m[n].dataSync() as Float32Array) : null));
  const spy = jest.spyOn(DotOptimizer.prototype, 'applyDot').mockImplementation(function (this: DotOptimizer, variables, task, distill) {
    const names = variables.map((v) => v.name);
    step.task.push(read(task, names));
    step.distill.push(read(distill, names));
    applyDot.call(this, variables, task, distill);
  });
  try {
    const result = await runSpec(spec, { registry, cacheDir: null });
    result.models.forEach((m) => m.dispose());
  } finally {
    spy.mockRestore();
  }
  return step;
}

/** Whether any weight has a gradient. */
export function any(g: Grads): boolean {
  return g.some((role) => role.some((w) => w !== null));
}

/** Same weights with a gradient, and max |a − b| ≤ tol · max |b| (float32 precision). */
export function expectGrads(actual: Grads, expected: Grads, tol = 1e-6): void {
  expect(actual.map((r) => r.map((w) => w !== null))).toEqual(expected.map((r) => r.map((w) => w !== null)));
  let gap = 0;
  let scale = 0;
  expected.forEach((r, i) =>
    r.forEach((w, j) =>
      w?.forEach((x, k) => {
        gap = Math.max(gap, Math.abs((actual[i][j] as Float32Array)[k] - x));
        scale = Math.max(scale, Math.abs(x));
      }),
    ),
  );
  expect(scale).toBeGreaterThan(0);
  expect(gap).toBeLessThanOrEqual(tol * scale);
}
