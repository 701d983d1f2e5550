import * as tf from '@tensorflow/tfjs-core';
import { fakePluginDeps, lossTerms, stubOutputs, stubTapShapes } from '@tfkd/kd-core/testing';
import { type PluginDefinition, type PluginDeps, type RoleInfo } from '@tfkd/kd-core';

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
  const terms: Record<string, RecordedTerm> = {};
  tf.tidy(() => {
    const stub = { roles: step.roles ?? ROLES, outputs: stubOutputs(step.logits, step.taps), y: step.y, tapShapes: stubTapShapes(step.taps) };
    for (const t of lossTerms(def, options, stub)) terms[t.name] = { value: t.value.dataSync()[0], weight: t.weight };
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
