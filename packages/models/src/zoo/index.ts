import { KdError, type ModelDefinition } from '@tfkd/kd-core';
import { byotResnetDefinition } from './byot';
import { cnnLargeDefinition, cnnSmallDefinition } from './cnn';
import { mlpDefinition, mlpStudentDefinition, mlpTeacherDefinition } from './mlp';
import { resnetDefinition, resnetStudentDefinition, resnetTeacherDefinition } from './resnet';

export * from './byot';
export * from './cnn';
export * from './mlp';
export * from './resnet';
export { DEFAULT_SEED, layerSeed } from './common';

/** Every built-in model, in documentation order. */
export const MODEL_ZOO: readonly ModelDefinition[] = Object.freeze([
  mlpDefinition,
  mlpTeacherDefinition,
  mlpStudentDefinition,
  cnnSmallDefinition,
  cnnLargeDefinition,
  resnetDefinition,
  resnetStudentDefinition,
  resnetTeacherDefinition,
  byotResnetDefinition,
]);

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

/**
 * The zoo entry with this id. `zoo` defaults to {@link MODEL_ZOO}; pass the definitions bound in a
 * container to include third-party models. Unknown id → KdError KD_MODEL_UNKNOWN listing the ids.
 */
export function getModelDefinition(id: string, zoo: readonly ModelDefinition[] = MODEL_ZOO): ModelDefinition {
  const found = zoo.find((d) => d.id === id);
  if (found) return found;
  const known = zoo.map((d) => d.id);
  const near = known
    .map((k) => ({ k, d: editDistance(String(id).toLowerCase(), k) }))
    .filter((x) => x.d <= 3)
    .sort((a, b) => a.d - b.d)[0];
  const hint = near ? `did you mean '${near.k}'? ` : '';
  throw new KdError('KD_MODEL_UNKNOWN', `unknown model '${id}'; known models: ${known.join(', ')}`, {
    fix: `${hint}use one of: ${known.join(', ')} (or load a saved model folder)`,
  });
}
