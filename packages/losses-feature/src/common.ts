import type { Tensor } from '@tensorflow/tfjs-core';
import { KdError, asTarget, parseTap, type PluginDeps, type StepContext } from '@tfkd/kd-core';
import { z } from 'zod';

/** A tap as written in a spec: `role.layer` (`student.block2`, `teacher.block3`). */
export const tapString = z.string().regex(/^.+\..+$/, 'a tap is <role>.<layerName>, e.g. student.block2');

/** `pairs: [[student.block2, teacher.block3], …]`: (trained tap, target tap) pairs, loss summed over pairs. */
const tapPair = z.tuple([tapString, tapString]);

export function pairsOption(example: string): z.ZodArray<typeof tapPair> {
  return z
    .array(tapPair)
    .min(1)
    .describe(`(trained tap, target tap) pairs as role.layer, loss summed over the pairs, e.g. ${example}`);
}

export type TapPair = [string, string];

/** The taps of `pairs`, each once: what a pair loss declares in `requires().taps`. */
export function pairTaps(pairs: readonly (readonly string[])[]): string[] {
  return [...new Set(pairs.flat())];
}

/** The role of a tap, given the run's roles. */
export function tapRole(tap: string, roles: readonly { name: string }[], path: string): string {
  return parseTap(tap, roles.map((r) => r.name), path).role;
}

/**
 * A tap's tensor for the current step. `target` taps are gradient-stopped when their role is a
 * student (a DML peer); the engine already stops a teacher's.
 */
export function readTap(ctx: StepContext, tap: string, target: boolean): Tensor {
  const { role, layer } = parseTap(tap, ctx.roles.map((r) => r.name), 'plugins');
  const t = ctx.outputs(role).taps[layer];
  if (!t) throw new KdError('KD_TAP_UNKNOWN', `tap '${tap}' was not computed (declare it in requires().taps)`);
  return target ? asTarget(ctx, role, t) : t;
}

const fmt = (s: number[]) => `[${s.join(',')}]`;

/**
 * KD_SHAPE_MISMATCH for a pair, at start-up: both taps with their shapes, why they cannot be
 * matched, and the layers of the target role whose shapes would fit (all its layers when the
 * engine lists them, `deps.layerShapes`; else the declared taps).
 */
export function pairMismatch(
  deps: PluginDeps,
  where: string,
  pair: TapPair,
  why: string,
  fits: (studentShape: number[], targetShape: number[]) => boolean,
  declared: readonly string[],
): KdError {
  const [s, t] = pair;
  const ss = deps.tapShape(s);
  const ts = deps.tapShape(t);
  const tRole = tapRole(t, deps.roles, `${deps.specPath}.with`);
  // Every hidden layer of the target role when the engine lists them (else the declared taps, whose
  // shapes are the only ones known).
  const all = deps.layerShapes?.(tRole);
  const pool = all
    ? all.map((l) => ({ tap: `${tRole}.${l.layer}`, shape: l.shape }))
    : [...new Set(declared)].filter((d) => d.startsWith(`${tRole}.`)).map((d) => ({ tap: d, shape: deps.tapShape(d) }));
  const candidates = pool.filter((c) => c.tap !== t && fits(ss, c.shape));
  const hint =
    candidates.length > 0
      ? `pair ${s} with ${candidates.map((c) => `${c.tap} ${fmt(c.shape)}`).join(' or ')}`
      : `no layer of '${tRole}' fits ${s} ${fmt(ss)}: tap another ${tapRole(s, deps.roles, `${deps.specPath}.with`)} layer`;
  return new KdError('KD_SHAPE_MISMATCH', `'${deps.name}': ${s} ${fmt(ss)} and ${t} ${fmt(ts)} ${why}`, {
    path: `${deps.specPath}.with.${where}`,
    fix: `${hint} (kd list --models shows each model's taps)`,
  });
}

/** Rank check: `ranks` lists the accepted ranks of a tap's shape with the batch axis (4 = NHWC). */
export function requireRank(deps: PluginDeps, where: string, tap: string, ranks: number[], what: string): number[] {
  const shape = deps.tapShape(tap);
  if (!ranks.includes(shape.length + 1)) {
    throw new KdError('KD_SHAPE_MISMATCH', `'${deps.name}': ${tap} ${fmt(shape)} is not ${what}`, {
      path: `${deps.specPath}.with.${where}`,
      fix: `tap a layer whose output is ${what}`,
    });
  }
  return shape;
}
