import * as tf from '@tensorflow/tfjs-core';

// What the optimizers of optim.ts and dot-optimizer.ts share.

/** applyGradients' argument: a map of gradients by variable name, or (name, tensor) pairs (tfjs's `NamedTensor[]`). */
export type VariableGradients = Parameters<tf.AdamOptimizer['applyGradients']>[0];

/** The tfjs argument of applyGradients as (variable, gradient) pairs, in tfjs's order (slots are by position). */
export function variablePairs(variableGradients: VariableGradients): Array<[tf.Variable, tf.Tensor | null]> {
  const registered = tf.engine().registeredVariables;
  if (Array.isArray(variableGradients))
    return variableGradients.map((v) => [registered[v.name], v.tensor ?? null]);
  return Object.keys(variableGradients).map((name) => [registered[name], variableGradients[name] ?? null]);
}

export interface OptimizerVariable {
  originalName: string;
  variable: tf.Variable;
}
