import { z } from 'zod';
import type { Registry } from '@tfkd/engine';

interface OptionRow {
  name: string;
  type: string;
  default?: unknown;
  describe?: string;
}

/** The options of a zod object schema with their types, defaults and descriptions. */
export function optionRows(schema: z.ZodType): OptionRow[] {
  let json: Record<string, unknown>;
  try {
    json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  } catch {
    return [];
  }
  const props = (json.properties ?? {}) as Record<string, Record<string, unknown>>;
  return Object.entries(props).map(([name, p]) => ({
    name,
    type: typeOf(p),
    ...(p.default !== undefined ? { default: p.default } : {}),
    ...(typeof p.description === 'string' ? { describe: p.description } : {}),
  }));
}

function typeOf(p: Record<string, unknown>): string {
  if (Array.isArray(p.enum)) return p.enum.map((v) => JSON.stringify(v)).join(' | ');
  if (Array.isArray(p.anyOf)) return (p.anyOf as Record<string, unknown>[]).map(typeOf).join(' | ');
  if (p.type === 'array') return `${typeOf((p.items ?? {}) as Record<string, unknown>)}[]`;
  return String(p.type ?? 'any');
}

/** `kd list`: installed plugins (with options and defaults), models and datasets. */
export function listText(registry: Registry, opts: { json?: boolean } = {}): string {
  const plugins = registry
    .plugins()
    .map((d) => ({
      id: d.id,
      kind: d.kind,
      describe: d.describe,
      options: optionRows(d.options),
      ...(d.tasks ? { tasks: [...d.tasks] } : {}),
      // A plugin that trains a player (spec `players:`): its model's options (`players.<name>.options`).
      ...(d.player ? { playerOptions: d.player.options ? optionRows(d.player.options) : [] } : {}),
    }))
    .sort((a, b) => a.id.localeCompare(b.id));
  const models = registry.models().map((m) => ({ id: m.id, describe: m.describe, taps: m.taps, ...(m.tasks ? { tasks: [...m.tasks] } : {}) }));
  const datasets = registry.datasets().map((d) => ({ id: d.id, describe: d.describe, options: optionRows(d.options), ...(d.tasks ? { tasks: [...d.tasks] } : {}) }));
  // What is not classification-only says which run tasks (spec `task:`) it serves.
  const tasks = (x: { tasks?: string[] }) => (x.tasks ? `; tasks: ${x.tasks.join(', ')}` : '');
  if (opts.json) return JSON.stringify({ plugins, models, datasets }, null, 2);
  const lines: string[] = ['Plugins'];
  for (const p of plugins) {
    lines.push(`  ${p.id}  (${p.kind}${tasks(p)}) — ${p.describe}`);
    for (const o of p.options) {
      const def = o.default !== undefined ? ` = ${JSON.stringify(o.default)}` : '';
      lines.push(`      ${o.name}: ${o.type}${def}${o.describe ? `  — ${o.describe}` : ''}`);
    }
    if (p.playerOptions) {
      lines.push('      its player (spec players.<name>.options):');
      for (const o of p.playerOptions) lines.push(`        ${o.name}: ${o.type}${o.default !== undefined ? ` = ${JSON.stringify(o.default)}` : ''}${o.describe ? `  — ${o.describe}` : ''}`);
    }
  }
  lines.push('', 'Models');
  for (const m of models) lines.push(`  ${m.id} — ${m.describe}`, `      taps: ${m.taps.join(', ')}${tasks(m)}`);
  lines.push('', 'Datasets');
  for (const d of datasets) {
    lines.push(`  ${d.id}${d.tasks ? ` (tasks: ${d.tasks.join(', ')})` : ''} — ${d.describe}`);
    for (const o of d.options) lines.push(`      ${o.name}: ${o.type}${o.default !== undefined ? ` = ${JSON.stringify(o.default)}` : ''}`);
  }
  return lines.join('\n');
}
