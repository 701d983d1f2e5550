import * as fs from 'fs';
import * as path from 'path';
import { planRun, sha256Hex, specHash, type Registry } from '@tfkd/engine';
import { KdError, isKdError, parseSpec, stringifySpec } from '@tfkd/kd-core';
import { modelFolderHash } from './folders';
import { baselineOf, type Sweep, type SweepCell } from './sweep-file';

/** A cell, planned: its resolved spec (what travels to a worker) and the teachers it trains from labels. */
export interface PlannedCell extends SweepCell {
  /** Job id: `c-` + the hash of the resolved spec (`specHash`). Same spec, same job, same result. */
  id: string;
  /** Base name of its spec file (the run folder's plots are titled with it). */
  specName: string;
  /** The resolved spec as YAML: a worker runs exactly this. */
  specText: string;
  /** Cache keys of the teachers the cell trains from labels (hash of each teacher's recipe). */
  teachers: string[];
  /**
   * Saved models the cell `load:`s (a pre-trained teacher, a student to fine-tune), by content hash →
   * the folder on the submitting machine. In `specText` each such `load:` reads `models/<hash>`, relative
   * to the worker's copy of the spec, where the worker puts the folder it fetches from Redis.
   */
  models: Record<string, string>;
  /** The equivalent one-off command. */
  command: string;
}

/** The whole sweep, checked: every cell planned, the teachers they share, the table's rows. */
export interface SweepPlan {
  name: string;
  file: string;
  /** `s-` + hash of the sorted cell ids: the same grid is the same sweep, wherever it is submitted from. */
  id: string;
  metric: string;
  role?: string;
  rows: { label: string; axes: Record<string, string>; baseline: string | null }[];
  cells: PlannedCell[];
  /** Teachers trained from labels, by cache key: which cells need each, and whether this machine's cache has it. */
  teachers: Record<string, { cells: string[]; cached: string | null }>;
}

export interface CellError {
  row: string;
  seed: number;
  axes: Record<string, string>;
  code: string;
  path?: string;
  message: string;
  fix?: string;
}

export interface SweepPlanOptions {
  /** A fresh registry per cell (the CLI's `defaultRegistry`). */
  registry: () => Registry;
  /** Teacher cache of this machine: cached teachers are noted (and uploaded at submit). */
  cacheDir?: string;
  /** One line per planned cell. */
  log?: (line: string) => void;
}

/**
 * Plan every cell of a sweep with `planRun` (validated with untrained models; nothing trains). Any
 * invalid cell refuses the whole sweep: one `KD_SWEEP_INVALID` listing each bad cell with its axis
 * values and its own coded error (`cells` on the error carries them), and nothing is enqueued.
 */
export async function planSweep(sweep: Sweep, opts: SweepPlanOptions): Promise<SweepPlan> {
  const cells: PlannedCell[] = [];
  const errors: CellError[] = [];
  const teachers: SweepPlan['teachers'] = {};
  for (const cell of sweep.cells) {
    const where = `${cell.row} seed ${cell.seed}`;
    try {
      if (!fs.existsSync(cell.specFile)) {
        throw new KdError('KD_SPEC_INVALID', `spec file ${cell.specFile} does not exist`, { path: cell.specFile, fix: 'spec paths in a sweep file are relative to the sweep file' });
      }
      const spec = parseSpec(fs.readFileSync(cell.specFile, 'utf8'), cell.specFile, cell.sets);
      const plan = await planRun(spec, { registry: opts.registry(), specDir: path.dirname(cell.specFile), cacheDir: opts.cacheDir });
      const models = contentAddressLoads(spec, path.dirname(cell.specFile));
      const id = `c-${specHash(spec)}`;
      for (const t of plan.teachers) {
        teachers[t.key] ??= { cells: [], cached: null };
        if (!teachers[t.key].cells.includes(id)) teachers[t.key].cells.push(id);
        if (t.cached && t.dir) teachers[t.key].cached = t.dir;
      }
      const quote = (s: string) => (/^[\w.=[\]/,:-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
      cells.push({
        ...cell,
        id,
        specName: path.basename(cell.specFile, path.extname(cell.specFile)),
        specText: stringifySpec(spec),
        teachers: plan.teachers.map((t) => t.key),
        models,
        command: `kd run ${path.relative(process.cwd(), cell.specFile)} ${cell.sets.map((s) => `--set ${quote(s)}`).join(' ')}`,
      });
      opts.log?.(`planned ${where}: ${id}${plan.teachers.length ? ` (teacher ${plan.teachers.map((t) => t.key).join(', ')})` : ''}`);
    } catch (e) {
      if (!isKdError(e)) throw e;
      const k = e as KdError;
      errors.push({ row: cell.row, seed: cell.seed, axes: cell.axes, code: k.code, ...(k.path !== undefined ? { path: k.path } : {}), message: k.message, ...(k.fix ? { fix: k.fix } : {}) });
      opts.log?.(`invalid ${where}: ${k.code}${k.path ? ` at ${k.path}` : ''}`);
    }
  }
  if (errors.length > 0) {
    const lines = errors.map((c) => `  cell ${Object.entries(c.axes).map(([a, v]) => `${a}=${v}`).join(' ')} seed=${c.seed}: ${c.code}${c.path ? ` at ${c.path}` : ''}: ${c.message}${c.fix ? `\n    fix: ${c.fix}` : ''}`);
    const err = new KdError('KD_SWEEP_INVALID', `${errors.length} of ${sweep.cells.length} cells of ${sweep.file} are invalid; nothing was enqueued:\n${lines.join('\n')}`, {
      path: sweep.file,
      fix: 'correct the axis values (or the base spec) of the cells listed; `kd run SPEC --set … --plan` checks one cell',
    });
    throw Object.assign(err, { cells: errors });
  }
  const ids = [...new Set(cells.map((c) => c.id))].sort();
  return {
    name: sweep.name,
    file: sweep.file,
    id: `s-${sha256Hex(JSON.stringify(ids)).slice(0, 16)}`,
    metric: sweep.def.metric,
    ...(sweep.def.role ? { role: sweep.def.role } : {}),
    rows: sweep.rows.map((r) => ({ ...r, baseline: baselineOf(sweep, r.label) })),
    cells,
    teachers,
  };
}

/** Where a spec's roles `load:` saved models: the teacher, the student, each of `students`. */
function loadingRoles(spec: ReturnType<typeof parseSpec>): { load?: string }[] {
  return [spec.teacher, spec.student, ...(spec.students ?? [])].filter((r): r is NonNullable<typeof r> => r !== undefined);
}


/**
 * Content-address the spec's `load:` folders, in place: each becomes `models/<hash of its files>`
 * (resolved by the worker against its copy of the spec, where it fetches the folder from Redis).
 * The cell's id then names the weights, not a path of this machine: two machines submitting the same
 * teacher share the cell, and retrained weights make a new cell. Returns hash → the folder here.
 */
function contentAddressLoads(spec: ReturnType<typeof parseSpec>, specDir: string): Record<string, string> {
  const models: Record<string, string> = {};
  for (const role of loadingRoles(spec)) {
    if (!role.load) continue;
    const dir = path.resolve(specDir, role.load);
    const hash = modelFolderHash(dir);
    models[hash] = dir;
    role.load = `models/${hash}`;
  }
  return models;
}
