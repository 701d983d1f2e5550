import * as tf from '@tensorflow/tfjs-core';
import type { LossTerm, PluginDefinition, PluginDeps, RoleInfo, StepContext } from '@tfkd/kd-core';
import { Rng } from '@tfkd/kd-core';

export const TWO_ROLES: RoleInfo[] = [
  { name: 'teacher', kind: 'teacher', trainable: false },
  { name: 'student', kind: 'student', trainable: true },
];

/** Deps as the engine would pass them (only what the losses read is meaningful). */
export function fakeDeps(name: string, roles: RoleInfo[] = TWO_ROLES): PluginDeps {
  return {
    name,
    weight: 1,
    numClasses: 3,
    inputShape: [4, 4, 1],
    roles,
    tapShape: () => [],
    rng: new Rng(1),
    specPath: 'plugins[0]',
  };
}

/**
 * Create a plugin from its definition (validating `options` with its schema), call its `loss`
 * handler once on a stub step context and return the value of every term it added, by name.
 */
export function runLossOnce(
  def: PluginDefinition,
  options: Record<string, unknown>,
  step: { logits: Record<string, tf.Tensor>; y?: number[]; epoch?: number; roles?: RoleInfo[] },
): Record<string, number> {
  const roles = step.roles ?? TWO_ROLES;
  const plugin = def.create(def.options.parse(options), fakeDeps(def.id, roles));
  let handler: ((ctx: StepContext) => void) | undefined;
  plugin.register({
    on(hook: string, h: unknown) {
      if (hook === 'loss') handler = h as (ctx: StepContext) => void;
    },
  } as never);
  if (!handler) throw new Error(`${def.id} registered no loss handler`);
  const terms: Record<string, number> = {};
  tf.tidy(() => {
    const y = tf.tensor1d(step.y ?? [0], 'int32');
    const ctx = {
      epoch: step.epoch ?? 1,
      roles,
      batch: { x: tf.zeros([y.shape[0], 1]), y, indices: null, size: y.shape[0] },
      outputs(role: string) {
        const logits = step.logits[role];
        if (!logits) throw new Error(`no role '${role}'`);
        return { logits, taps: {} };
      },
      addLoss(term: LossTerm) {
        terms[term.name ?? def.id] = term.value.dataSync()[0] * (term.weight ?? 1);
      },
    } as unknown as StepContext;
    (handler as (ctx: StepContext) => void)(ctx);
  });
  return terms;
}
