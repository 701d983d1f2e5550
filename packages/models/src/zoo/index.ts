import { didYouMean, KdError, type ModelDefinition } from '@tfkd/kd-core';
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

/**
 * The zoo entry with this id. `zoo` defaults to {@link MODEL_ZOO}; pass the definitions bound in a
 * container to include third-party models. Unknown id → KdError KD_MODEL_UNKNOWN listing the ids.
 */
export function getModelDefinition(id: string, zoo: readonly ModelDefinition[] = MODEL_ZOO): ModelDefinition {
  const found = zoo.find((d) => d.id === id);
  if (found) return found;
  const known = zoo.map((d) => d.id);
  const hint = didYouMean(String(id), known);
  throw new KdError('KD_MODEL_UNKNOWN', `unknown model '${id}'; known models: ${known.join(', ')}`, {
    fix: `${hint}use one of: ${known.join(', ')} (or load a saved model folder)`,
  });
}
