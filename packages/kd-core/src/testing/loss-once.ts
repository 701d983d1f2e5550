import * as tf from '@tensorflow/tfjs-core';
import type { LossTerm, RoleInfo, RoleOutputs, StepContext } from '../hooks';
import type { PluginDefinition } from '../plugin';
import { fakePluginDeps } from './fixtures';

/** A term a plugin added on its `loss` hook: name, weight and the (unweighted) value tensor. */
export interface RecordedTerm {
  name: string;
  weight: number;
  value: tf.Scalar;
}

/** A stub step for `lossTerms`: the roles, each role's outputs, the labels. */
export interface StubStep {
  roles: RoleInfo[];
  outputs: (role: string) => RoleOutputs;
  y: number[];
  epoch?: number;
  /** Shapes `deps.tapShape` answers (without batch); default: none. */
  tapShapes?: Record<string, number[]>;
}

/**
 * Creates a plugin from its definition (options validated by its schema, deps from
 * `fakePluginDeps`), calls its `loss` handler once on a stub step and returns the terms it added.
 * The values are tensors: call inside `tf.tidy` (or `tf.variableGrads`).
 */
export function lossTerms(def: PluginDefinition, options: Record<string, unknown>, step: StubStep): RecordedTerm[] {
  const plugin = def.create(def.options.parse(options), fakePluginDeps(def.id, step.roles, step.tapShapes));
  let handler: ((ctx: StepContext) => void) | undefined;
  plugin.register({
    on(hook: string, h: unknown) {
      if (hook === 'loss') handler = h as (ctx: StepContext) => void;
    },
  } as never);
  if (!handler) throw new Error(`${def.id} registered no loss handler`);
  const terms: RecordedTerm[] = [];
  const y = tf.tensor1d(step.y, 'int32');
  const ctx = {
    epoch: step.epoch ?? 1,
    roles: step.roles,
    numClasses: 3,
    batch: { x: tf.zeros([step.y.length, 1]), y, indices: null, size: step.y.length },
    outputs: step.outputs,
    addLoss(term: LossTerm) {
      terms.push({ name: term.name ?? def.id, weight: term.weight ?? 1, value: term.value });
    },
  } as unknown as StepContext;
  handler(ctx);
  return terms;
}

/** `outputs` for a stub step from logits (and taps) per role; an unknown role throws. */
export function stubOutputs(logits: Record<string, tf.Tensor>, taps: Record<string, Record<string, tf.Tensor>> = {}): (role: string) => RoleOutputs {
  return (role) => {
    const l = logits[role];
    if (!l) throw new Error(`no role '${role}'`);
    return { logits: l, taps: taps[role] ?? {} } as RoleOutputs;
  };
}

/** Tap shapes (without batch) of stub taps, keyed `role.layer`, for `StubStep.tapShapes`. */
export function stubTapShapes(taps: Record<string, Record<string, tf.Tensor>> = {}): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [role, layers] of Object.entries(taps)) for (const [k, t] of Object.entries(layers)) out[`${role}.${k}`] = t.shape.slice(1);
  return out;
}
