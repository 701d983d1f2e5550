import { type DataSplits, KdError, type PluginEntry, type RunSpec } from '@tfkd/kd-core';
import { sha256Hex } from './hash';
import type { Registry } from './registry';
import { resolvePlugins } from './resolve';

/** The plugin entry that asked for generations, and how many. */
export interface GenerationPlan {
  count: number;
  /** Index of the entry in `spec.plugins`. */
  index: number;
  id: string;
}

/**
 * Whether `spec` asks for several generations (a plugin with `generations(options)`, e.g.
 * `self/born-again`): the plan, or null for an ordinary one-engine run. Loads the spec's packages.
 */
export async function generationPlan(spec: RunSpec, registry: Registry, specDir = '.'): Promise<GenerationPlan | null> {
  await registry.loadPackages(spec.packages, specDir);
  const planned = resolvePlugins(spec, registry).filter((p) => p.def.generations && p.specPath.startsWith('plugins['));
  if (planned.length === 0) return null;
  if (planned.length > 1) {
    throw new KdError('KD_SPEC_INVALID', `${planned.map((p) => `'${p.def.id}'`).join(' and ')} both train generations; a run can follow one of them`, {
      path: planned[1].specPath,
      fix: 'keep one multi-generation plugin in `plugins:`',
    });
  }
  const p = planned[0];
  const count = (p.def.generations as (o: unknown) => number)(p.options);
  if (!Number.isInteger(count) || count < 1) {
    throw new KdError('KD_PLUGIN_OPTIONS', `'${p.def.id}' asked for ${count} generations`, { path: `${p.specPath}.with.generations`, fix: 'give a whole number ≥ 1' });
  }
  return { count, index: p.index, id: p.def.id };
}

/** A spec the generations driver can run: one `student`, no `teacher` (generation g − 1 is generation g's). */
export function checkGenerationSpec(spec: RunSpec, plan: GenerationPlan): void {
  if (spec.teacher) {
    throw new KdError('KD_SPEC_INVALID', `'${plan.id}' trains its own teachers (generation g − 1 teaches generation g), and the spec has a teacher`, {
      path: 'teacher',
      fix: 'remove `teacher:`; generation 1 learns from the labels',
    });
  }
  if (!spec.student || spec.students) {
    throw new KdError('KD_SPEC_INVALID', `'${plan.id}' trains one student per generation`, { path: 'students', fix: 'give `student:` (one model), not `students:`' });
  }
}

/**
 * The spec of generation g: the student with its own initialisation seed (base + g − 1, base = the
 * student's `seed` or what a plain run gives it, `seed·1000`), the planned entry's option
 * `generation: g`, and from g = 2 on the previous generation (saved in `teacherDir`) as `teacher`.
 */
export function generationSpec(spec: RunSpec, plan: GenerationPlan, g: number, teacherDir: string | null): RunSpec {
  const student = spec.student as NonNullable<RunSpec['student']>;
  const plugins: PluginEntry[] = spec.plugins.map((p, i) => (i === plan.index ? { ...p, with: { ...p.with, generation: g } } : p));
  const { teacher: _ignored, ...rest } = spec;
  void _ignored;
  return {
    ...rest,
    student: { ...student, seed: (student.seed ?? spec.seed * 1000) + g - 1 },
    plugins,
    ...(g > 1 ? { teacher: { load: teacherDir as string, options: {} } as NonNullable<RunSpec['teacher']> } : {}),
  };
}

/**
 * Cache key of generation g: everything that decides its training — the run's seed, data, student,
 * optimizer recipe, plugins (the planned entry without its `generations` count, so asking for more
 * generations later reuses the first ones), packages, held-out split, stages, players, task — and the key of generation
 * g − 1, whose model is its teacher. A chain of hashes: the key names the whole lineage.
 */
export function generationKey(spec: RunSpec, plan: GenerationPlan, g: number, parent: string | null, data: DataSplits): { key: string; keyObj: unknown } {
  const gs = generationSpec(spec, plan, g, null);
  const plugins = gs.plugins.map((p, i) => {
    if (i !== plan.index) return p;
    const { generations: _n, ...w } = p.with;
    void _n;
    return { ...p, with: w };
  });
  const keyObj = {
    v: 1,
    kind: 'generation',
    method: plan.id,
    generation: g,
    parent,
    seed: gs.seed,
    data: gs.data,
    student: gs.student,
    train: gs.train,
    plugins,
    packages: gs.packages,
    nonFinite: gs.nonFinite,
    inputShape: data.train.shape,
    numClasses: data.train.numClasses,
    ...(gs.calibrate ? { calibrate: gs.calibrate } : {}),
    // Absent from most specs, and then absent here (their keys are unchanged): stages before the main
    // phase, other trainable players, a dense task — each changes what a generation learns.
    ...(gs.stages ? { stages: gs.stages } : {}),
    ...(gs.players ? { players: gs.players } : {}),
    ...(gs.task ? { task: gs.task } : {}),
  };
  return { key: sha256Hex(JSON.stringify(keyObj)).slice(0, 16), keyObj };
}

