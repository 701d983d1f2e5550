import type { RunSpec, Storage } from '@tfkd/kd-core';
import type { LoadedPackage, Registry } from './registry';
import { playerTrainers } from './players';
import { resolvePlugins } from './resolve';
import { roleSpecs } from './roles';

/**
 * A spec as a complete, re-runnable record of a run: every plugin's options with their defaults
 * filled in, and every path (`packages:`, roles' `load:`, the dataset's path options) absolute — so
 * the record runs the same from any folder. Parsing it gives the options the run used.
 */
export function resolvedSpec(spec: RunSpec, registry: Registry, specDir: string, storage: Storage): RunSpec {
  const abs = (p: string) => storage.resolve(specDir, p);
  const isPath = (p: string) => p.startsWith('.') || p.startsWith('/');
  const plugins = resolvePlugins(spec, registry);
  const options = new Map(plugins.map((p) => [p.specPath, p.options as Record<string, unknown>]));
  const out: RunSpec = structuredClone(spec);
  out.plugins = spec.plugins.map((p, i) => ({ ...p, with: defined(options.get(`plugins[${i}]`) ?? p.with) }));
  // A player's model options with their defaults, by the schema of the (main-list) plugin that trains it.
  for (const [name, trainer] of playerTrainers(plugins)) {
    const player = out.players?.[name];
    const parsed = player && trainer.def.player?.options?.safeParse(player.options);
    if (player && parsed?.success) player.options = defined(parsed.data as Record<string, unknown>);
  }
  out.packages = spec.packages.map((p) => (isPath(p) ? abs(p) : p));
  for (const r of roleSpecs(out)) if (r.spec.load) r.spec.load = abs(r.spec.load);
  const data = registry.datasets().find((d) => d.id === spec.data.name);
  for (const key of data?.pathOptions ?? []) {
    const v = (out.data as Record<string, unknown>)[key];
    if (typeof v === 'string') (out.data as Record<string, unknown>)[key] = abs(v);
  }
  return out;
}

/** YAML comment lines naming each loaded package (name@version, content hash, file) for the record's head. */
export function packageLines(packages: readonly LoadedPackage[]): string[] {
  return packages.map((p) => `# package ${p.spec}: ${p.name}@${p.version} sha256:${p.hash} (${p.path})`);
}

/** Without the keys whose value is undefined (optional options left out), at every level. */
function defined(o: Record<string, unknown>): Record<string, unknown> {
  const walk = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(walk) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => [k, walk(x)])) : v;
  return walk(o) as Record<string, unknown>;
}
