import type { Scalar, Tensor, Variable } from '@tensorflow/tfjs-core';
import {
  KdError,
  parseTap,
  stopGradient,
  type Plugin,
  type PluginDefinition,
  type PluginDeps,
  type RunStartInfo,
  type StepContext,
} from '@tfkd/kd-core';
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

/** A named term: logged as `<plugin name>:<key>`, weighted by the spec weight × `weight`. */
export interface NamedTerm {
  key: string;
  value: Scalar;
  weight?: number;
}

/** What a feature loss builds at start-up: its per-step compute and any trainable state. */
export interface FeatureLossInstance {
  compute(ctx: StepContext): Scalar | NamedTerm[];
  /** Trainable adapters / heads, trained with the first student (kd-core `Plugin.variables`). */
  variables?: Variable[];
  /** Untrained tensor state (FT's frozen paraphraser, CRD's memory bank): kd-core `Plugin.buffers`. */
  buffers?: Variable[];
  /** Awaited on `runStart`, before the first step: a pre-training stage (FT's paraphraser). */
  runStart?(info: RunStartInfo): Promise<void>;
  /** JSON state (kd-core `Plugin.getState` / `setState`), saved with the adapters. */
  getState?(): unknown;
  setState?(state: unknown): void;
}

export interface FeatureLossDefinition<S extends z.ZodType> {
  id: string;
  describe: string;
  options: S;
  /** Every tap the loss reads (declared in `requires().taps`, so the engine taps them). */
  taps(options: z.output<S>): string[];
  /** Start-up: check the tap shapes (deps.tapShape), build adapters. Throw KdErrors here. */
  create(options: z.output<S>, deps: PluginDeps): FeatureLossInstance;
}

/**
 * A loss plugin over taps. Like kd-core's `defineLoss`, plus a start-up `create` (shape checks and
 * trainable adapters, returned by `variables()` and disposed with the plugin) and named terms with
 * their own weight multiplier (RKD's w_d, w_a), so that logged terms stay unweighted.
 */
export function defineFeatureLoss<S extends z.ZodType>(def: FeatureLossDefinition<S>): PluginDefinition<S> {
  return {
    id: def.id,
    kind: 'loss',
    describe: def.describe,
    options: def.options,
    stage: 'default',
    requires: (o) => ({ taps: [...new Set(def.taps(o))] }),
    create(options, deps): Plugin {
      const inst = def.create(options, deps);
      const vars = inst.variables ?? [];
      const buffers = inst.buffers ?? [];
      return {
        name: deps.name,
        register(bus) {
          if (inst.runStart) bus.on('runStart', (info) => (inst.runStart as (i: RunStartInfo) => Promise<void>)(info));
          bus.on('loss', (ctx) => {
            const out = inst.compute(ctx);
            if (Array.isArray(out)) {
              for (const t of out) ctx.addLoss({ name: `${deps.name}:${t.key}`, value: t.value, weight: t.weight ?? 1 });
            } else {
              ctx.addLoss({ name: deps.name, value: out });
            }
          });
        },
        ...(vars.length > 0 ? { variables: () => vars } : {}),
        ...(buffers.length > 0 ? { buffers: () => buffers } : {}),
        ...(vars.length + buffers.length > 0 ? { dispose: () => [...vars, ...buffers].forEach((v) => v.dispose()) } : {}),
        ...(inst.getState ? { getState: () => (inst.getState as () => unknown)() } : {}),
        ...(inst.setState ? { setState: (s: unknown) => (inst.setState as (s: unknown) => void)(s) } : {}),
      };
    },
  };
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
  const info = ctx.roles.find((r) => r.name === role);
  return target && info?.kind === 'student' ? stopGradient(t) : t;
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
