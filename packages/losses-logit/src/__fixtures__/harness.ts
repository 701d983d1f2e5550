import * as tf from '@tensorflow/tfjs-core';
import type { PluginDefinition, RoleInfo } from '@tfkd/kd-core';
import { lossTerms, stubOutputs } from '@tfkd/kd-core/testing';

export const TWO_ROLES: RoleInfo[] = [
  { name: 'teacher', kind: 'teacher', trainable: false },
  { name: 'student', kind: 'student', trainable: true },
];

/**
 * Create a plugin from its definition (validating `options` with its schema), call its `loss`
 * handler once on a stub step context and return the value of every term it added, by name
 * (weighted). kd-core's `lossTerms` does the work.
 */
export function runLossOnce(
  def: PluginDefinition,
  options: Record<string, unknown>,
  step: { logits: Record<string, tf.Tensor>; y?: number[]; epoch?: number; roles?: RoleInfo[] },
): Record<string, number> {
  const terms: Record<string, number> = {};
  tf.tidy(() => {
    for (const t of lossTerms(def, options, { roles: step.roles ?? TWO_ROLES, outputs: stubOutputs(step.logits), y: step.y ?? [0], epoch: step.epoch })) {
      terms[t.name] = t.value.dataSync()[0] * t.weight;
    }
  });
  return terms;
}
