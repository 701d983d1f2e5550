// A sweep's results on disk: each finished cell's run folder under `<out>/runs/<row>-seed<N>/`, marked
// with the cell it is the result of (cell.json), copied from Redis (collectRuns) and back (restoreRuns).
import * as fs from 'fs';
import * as path from 'path';
import type { Redis } from 'ioredis';
import { folderError } from './errors';
import type { PlannedCell, SweepPlan } from './plan';
import { KEYS, getFolder, storeRun } from './queue';

/** The folder of a cell's run inside a sweep folder: `<row>-seed<N>` (as protocol runs were named). */
export const runFolderName = (c: Pick<PlannedCell, 'row' | 'seed'>) => `${c.row.replace(/[^A-Za-z0-9._=,+-]/g, '_')}-seed${c.seed}`;

/**
 * Copy every finished cell's run folder from Redis into `<out>/runs/`; returns how many are there.
 * Each teacher the cells trained from labels leaves its record there too, `<out>/teachers/<key>.json`
 * (the cache's `teacher.json`: its recipe, its evaluation, its training seconds) — the teacher's cost,
 * which no cell's metrics hold, kept with the results.
 */
export async function collectRuns(plan: Pick<SweepPlan, 'cells'>, redis: Redis, out: string): Promise<number> {
  for (const key of new Set(plan.cells.flatMap((c) => c.teachers))) {
    const file = path.join(out, 'teachers', `${key}.json`);
    if (fs.existsSync(file)) continue;
    const meta = await redis.hgetBuffer(KEYS.teacher(key), 'teacher.json');
    if (!meta) continue;
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, meta);
    } catch (e) {
      throw folderError(e, file, 'write', '--out');
    }
  }
  let n = 0;
  for (const c of plan.cells) {
    const dir = path.join(out, 'runs', runFolderName(c));
    if (collectedRun(out, c)) {
      n++;
      continue;
    }
    // A folder of another cell of the same row and seed (its spec has changed since) gives way to
    // this cell's result once there is one; until then it stays, and no table reads it.
    if (!(await redis.exists(KEYS.run(c.id)))) continue;
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch (e) {
      throw folderError(e, dir, 'clear', '--out');
    }
    if (await getFolder(redis, KEYS.run(c.id), dir, { kind: 'run', flag: '--out' })) {
      writeCellMark(dir, c.id);
      n++;
    }
  }
  return n;
}

/**
 * The folder of a cell's collected run, `<out>/runs/<row>-seed<N>`, if it is that cell's — its
 * `cell.json` names the cell's id (the hash of its resolved spec) and it has its `metrics.json` —
 * else null: a row's folder left from an earlier version of its spec is not this cell's result.
 */
export function collectedRun(out: string, c: Pick<PlannedCell, 'row' | 'seed' | 'id'>): string | null {
  const dir = path.join(out, 'runs', runFolderName(c));
  return readJsonFile<{ id?: string }>(path.join(dir, CELL_MARK))?.id === c.id && fs.existsSync(path.join(dir, 'metrics.json')) ? dir : null;
}

/** `cell.json` in a collected run folder: which cell (spec hash) the folder is the result of. */
export const CELL_MARK = 'cell.json';

function writeCellMark(dir: string, id: string): void {
  try {
    fs.writeFileSync(path.join(dir, CELL_MARK), `${JSON.stringify({ id })}\n`);
  } catch (e) {
    throw folderError(e, dir, 'write', '--out');
  }
}

/**
 * Results kept in `<out>/runs/` (committed with the repository, say) go back into a Redis that lacks
 * them — a new machine, a fresh private server — so submitting the sweep there does not run them
 * again. Only folders whose `cell.json` names the cell's id (its spec hash) and whose run completed
 * count; what travels is what the folder holds (without the student's weights if they were not kept).
 */
export async function restoreRuns(plan: Pick<SweepPlan, 'cells'>, redis: Redis, out: string): Promise<number> {
  let n = 0;
  for (const c of plan.cells) {
    const dir = collectedRun(out, c);
    if (!dir || readJsonFile<{ status?: string }>(path.join(dir, 'metrics.json'))?.status !== 'completed') continue;
    if (await redis.exists(KEYS.run(c.id))) continue;
    if (await storeRun(redis, c.id, dir)) n++;
  }
  return n;
}

function readJsonFile<T>(file: string): T | null {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch {
    return null;
  }
}
