import { KdError, type PluginDefinition, type PluginEntry, type PluginRequirements, Rng, type RoleInfo, type RunSpec, runTask, type Stage, supportedTasks, TASK_DEFAULTS, taskMismatch, validate } from '@tfkd/kd-core';
import type { Registry } from './registry';

/** A spec entry matched to its definition, with validated options and its own generator. */
export interface ResolvedPlugin {
  index: number;
  specPath: string;
  entry: PluginEntry;
  def: PluginDefinition;
  options: unknown;
  name: string;
  stage: Stage;
  requirements: PluginRequirements;
  rng: Rng;
  requiresRole(info: RoleInfo): boolean;
}

/** Metrics always computed by the engine itself (no plugin needed). */
export const BUILTIN_METRICS = ['accuracy', 'nll'];

/**
 * Resolve `plugins:` and the metric plugins named in `eval:`, validating every option. A detection or
 * segmentation run always evaluates its task's metric (`metric/map`, `metric/miou`: added at the
 * end, spec path `task`, when neither `eval:` nor `plugins:` names it); the built-ins `accuracy` and `nll` are
 * classification's and are not computed there.
 */
export function resolvePlugins(spec: RunSpec, registry: Registry): ResolvedPlugin[] {
  const entries: { entry: PluginEntry; specPath: string }[] = spec.plugins.map((entry, i) => ({ entry, specPath: `plugins[${i}]` }));
  const metricId = (m: string) => (m.includes('/') ? m : `metric/${m}`);
  spec.eval.forEach((m, i) => {
    if (!BUILTIN_METRICS.includes(m)) {
      entries.push({ entry: { use: metricId(m), with: {}, weight: 1 }, specPath: `eval[${i}]` });
    }
  });
  const taskMetric = TASK_DEFAULTS[runTask(spec)].metric;
  if (taskMetric && !spec.eval.some((m) => metricId(m) === taskMetric) && !spec.plugins.some((p) => p.use === taskMetric)) entries.push({ entry: { use: taskMetric, with: {}, weight: 1 }, specPath: 'task' });
  const names = new Set<string>();
  const seedRng = new Rng(spec.seed ^ 0x2545f491);
  return entries.map(({ entry, specPath }, index) => {
    const resolved = resolvePlugin(spec, registry, entry, specPath, index, seedRng.fork(index));
    if (names.has(resolved.name)) {
      throw new KdError('KD_SPEC_INVALID', `two plugins are named '${resolved.name}'`, {
        path: `${specPath}.name`,
        fix: 'give one of them a distinct `name:` (term names and logs use it)',
      });
    }
    names.add(resolved.name);
    return resolved;
  });
}

/**
 * One plugin entry: its definition, validated options, name and generator. `rng` defaults to the
 * generator the `index`-th entry gets in `resolvePlugins` (the same fork sequence), so instances
 * added after the main list (declared stages) continue it without changing the main ones.
 */
export function resolvePlugin(spec: RunSpec, registry: Registry, entry: PluginEntry, specPath: string, index: number, rng?: Rng): ResolvedPlugin {
  if (!rng) {
    const seedRng = new Rng(spec.seed ^ 0x2545f491);
    for (let i = 0; i < index; i++) seedRng.fork(i);
    rng = seedRng.fork(index);
  }
  const usePath = specPath.startsWith('eval') || specPath === 'task' ? specPath : `${specPath}.use`;
  const def = registry.plugin(entry.use, usePath);
  const task = runTask(spec);
  if (!supportedTasks(def).includes(task)) {
    const fitting = registry.plugins().filter((d) => d.kind === def.kind && supportedTasks(d).includes(task)).map((d) => d.id);
    throw taskMismatch(`'${def.id}'`, supportedTasks(def), task, usePath, fitting);
  }
  const options = validate(def.options, entry.with, {
    code: 'KD_PLUGIN_OPTIONS',
    prefix: `${specPath}.with`,
  });
  const name = entry.name ?? def.id;
  const requirements = def.requires?.(options) ?? {};
  const tapRoles = (requirements.taps ?? []).map((t) => t.slice(0, t.lastIndexOf('.')));
  return {
    index,
    specPath,
    entry,
    def,
    options,
    name,
    stage: def.stage ?? (def.kind === 'sampler' ? 'sample' : def.kind === 'metric' || def.kind === 'observer' ? 'observe' : 'default'),
    requirements,
    rng,
    requiresRole(info: RoleInfo) {
      const wanted = [...(requirements.roles ?? []), ...tapRoles];
      return wanted.includes(info.name);
    },
  };
}
