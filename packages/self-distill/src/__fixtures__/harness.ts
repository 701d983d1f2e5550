import * as tf from '@tensorflow/tfjs-core';
import { fakePluginDeps } from '@tfkd/kd-core/testing';
import { type LossTerm, type PluginDefinition, type PluginDeps, type RoleInfo, type StepContext } from '@tfkd/kd-core';

export const ROLES: RoleInfo[] = [
  { name: 'teacher', kind: 'teacher', trainable: false },
  { name: 'student', kind: 'student', trainable: true },
];

/** Deps as the engine passes them (tap shapes from the given taps). */
export function fakeDeps(name: string, roles: RoleInfo[] = ROLES, tapShapes: Record<string, number[]> = {}): PluginDeps {
  return fakePluginDeps(name, roles, tapShapes);
}

export interface RecordedTerm {
  value: number;
  weight: number;
}

/**
 * Create a plugin (options validated by its schema), call its `loss` handler once on a stub step
 * (logits and taps per role, labels) and return every term it added: unweighted value and weight.
 */
export function runLossOnce(
  def: PluginDefinition,
  options: Record<string, unknown>,
  step: { logits: Record<string, tf.Tensor>; taps?: Record<string, Record<string, tf.Tensor>>; y: number[]; roles?: RoleInfo[] },
): Record<string, RecordedTerm> {
  const roles = step.roles ?? ROLES;
  const tapShapes: Record<string, number[]> = {};
  for (const [role, taps] of Object.entries(step.taps ?? {})) for (const [k, t] of Object.entries(taps)) tapShapes[`${role}.${k}`] = t.shape.slice(1);
  const plugin = def.create(def.options.parse(options), fakeDeps(def.id, roles, tapShapes));
  let handler: ((ctx: StepContext) => void) | undefined;
  plugin.register({
    on(hook: string, h: unknown) {
      if (hook === 'loss') handler = h as (ctx: StepContext) => void;
    },
  } as never);
  if (!handler) throw new Error(`${def.id} registered no loss handler`);
  const terms: Record<string, RecordedTerm> = {};
  tf.tidy(() => {
    const y = tf.tensor1d(step.y, 'int32');
    const ctx = {
      epoch: 1,
      roles,
      batch: { x: tf.zeros([step.y.length, 1]), y, indices: null, size: step.y.length },
      outputs(role: string) {
        const logits = step.logits[role];
        if (!logits) throw new Error(`no role '${role}'`);
        return { logits, taps: step.taps?.[role] ?? {} };
      },
      addLoss(term: LossTerm) {
        terms[term.name ?? def.id] = { value: term.value.dataSync()[0], weight: term.weight ?? 1 };
      },
    } as unknown as StepContext;
    (handler as (ctx: StepContext) => void)(ctx);
  });
  return terms;
}

/** |a − b| ≤ tol·max(1, |b|). */
export function expectClose(a: number, b: number, tol = 1e-5): void {
  if (!(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)))) throw new Error(`expected ${a} to be within ${tol} of ${b}`);
}

/** Plain float64 references for the hand computations. */
export function softmax(v: number[], t = 1): number[] {
  const m = Math.max(...v.map((x) => x / t));
  const e = v.map((x) => Math.exp(x / t - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

export function kl(p: number[], q: number[]): number {
  return p.reduce((s, pi, i) => s + (pi > 0 ? pi * (Math.log(pi) - Math.log(q[i])) : 0), 0);
}
