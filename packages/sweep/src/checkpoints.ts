import * as fs from 'fs';
import * as path from 'path';
import type { CheckpointSummary } from '@tfkd/engine';
import { peekCheckpoint, readCheckpoint, teacherCheckpointDirs, teacherPartialDir } from '@tfkd/engine/node';
import { isKdError, type KdError } from '@tfkd/kd-core';
import type { Redis } from 'ioredis';
import { folderError, redisError } from './errors';
import { KEYS, execOrThrow, getFolder } from './queue';

// A job's checkpoint travels through Redis like its result: the worker running a cell, or training a
// teacher, uploads its newest checkpoint whenever a new one is saved (every epoch end, and the stop
// checkpoint of an interrupted run), and a worker that takes the job up without a newer checkpoint on
// its own disk (on another machine) downloads it and resumes. One checkpoint per job, at most
// `maxBytes`; deleted when the job's result is stored.

/** Default bound of a shipped checkpoint (`kd worker --checkpoint-max-mb`). */
export const CHECKPOINT_MAX_MB = 64;

/** What the Redis copy of a cell's checkpoint is (`KEYS.checkpointMeta`). */
export interface ShippedCheckpoint {
  step: number;
  /** Where the run continues from it: epoch (1-based) and batch. */
  epoch: number;
  batchIndex: number;
  epochsDone: number;
  bytes: number;
  /** `host:pid` of the worker that uploaded it. */
  worker: string;
  at: string;
}

/** Where a job's checkpoints are: a cell's run, or a teacher's training. */
export interface CheckpointSite {
  /** The job's checkpoint in Redis: `KEYS.checkpoint(id)`. */
  id: string;
  /** How log lines name the job (`c-…`, `teacher <key>`), and what it is. */
  label: string;
  what: 'cell' | 'teacher';
  /** The Redis key of the job's result: once it exists, no checkpoint is stored any more. */
  result: string;
  /** The checkpoint folders on this disk (each also read from its `.old` copy). */
  dirs(): string[];
  /** Where a checkpoint fetched from Redis goes, and the folders the local attempt it replaces leaves to clear. */
  fetchTo: string;
  replaced: string[];
}

const stagingOf = (outDir: string) => `${outDir}.incomplete`;

/** A cell's run into `outDir`: `kd run` keeps its checkpoint in the staging folder while it runs, in the run folder once interrupted. */
export function cellSite(id: string, outDir: string): CheckpointSite {
  const fetchTo = path.join(stagingOf(outDir), 'checkpoint');
  return { id, label: id, what: 'cell', result: KEYS.run(id), dirs: () => [fetchTo, path.join(outDir, 'checkpoint')], fetchTo, replaced: [outDir, stagingOf(outDir)] };
}

/**
 * Teacher `key` trained into the cache `cacheDir`: its checkpoints are the folders of
 * `<cacheDir>/teachers/<key>.partial/` (one per process that trained it); one fetched from Redis goes
 * in as `redis`, which the engine reads if it is the latest and removes once it writes a later one.
 */
export function teacherSite(key: string, cacheDir: string): CheckpointSite {
  const root = teacherPartialDir(cacheDir, key);
  const fetchTo = path.join(root, 'redis');
  return { id: `teacher-${key}`, label: `teacher ${key}`, what: 'teacher', result: KEYS.teacher(key), dirs: () => teacherCheckpointDirs(cacheDir, key), fetchTo, replaced: [fetchTo, `${fetchTo}.old`, `${fetchTo}.tmp`] };
}

/** The newest readable checkpoint of a site on this disk (a folder's `.old` copy after a crash between renames), or null. */
export function localCheckpoint(site: CheckpointSite): CheckpointSummary | null {
  let best: CheckpointSummary | null = null;
  for (const d of site.dirs()) {
    let c: CheckpointSummary | null = null;
    try {
      c = peekCheckpoint(d);
    } catch {
      c = null; // unreadable (half-written by a killed process): not a checkpoint to resume
    }
    if (c && (!best || c.step > best.step)) best = c;
  }
  return best;
}

/** The checkpoint of a job (`CheckpointSite.id`) stored in Redis, or null. */
export async function remoteCheckpoint(redis: Redis, id: string): Promise<ShippedCheckpoint | null> {
  let m: Record<string, string>;
  try {
    m = await redis.hgetall(KEYS.checkpointMeta(id));
  } catch (e) {
    throw redisError(e, KEYS.checkpointMeta(id), 'read');
  }
  if (!m.step) return null;
  return { step: Number(m.step), epoch: Number(m.epoch), batchIndex: Number(m.batchIndex), epochsDone: Number(m.epochsDone), bytes: Number(m.bytes), worker: m.worker, at: m.at };
}

/** Forget a job's checkpoint in Redis (its result is stored). */
export async function dropCheckpoint(redis: Redis, id: string): Promise<void> {
  try {
    await redis.del(KEYS.checkpoint(id), KEYS.checkpointMeta(id));
  } catch (e) {
    throw redisError(e, KEYS.checkpoint(id), 'delete');
  }
}

// Replace the stored checkpoint only by a later one of the same job, and never once the job has a
// result: a worker wrongly taken for stalled that still runs cannot put an older state back.
// KEYS: the uploaded copy (tmp), the checkpoint, its meta, the job's result. ARGV: step, meta pairs.
const STORE_LATER = `
if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('DEL', KEYS[1]) return 0 end
local current = tonumber(redis.call('HGET', KEYS[3], 'step') or '-1')
if current >= tonumber(ARGV[1]) then redis.call('DEL', KEYS[1]) return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('PERSIST', KEYS[2])
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], unpack(ARGV, 2))
return 1`;

/** The files of a checkpoint folder, read as one consistent state (its `checkpoint.json` unchanged meanwhile), or null. */
function snapshot(dir: string): [string, Buffer][] | null {
  const head = path.join(dir, 'checkpoint.json');
  const before = fs.readFileSync(head);
  const files: [string, Buffer][] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isFile()) files.push([e.name, fs.readFileSync(path.join(dir, e.name))]);
  return before.equals(fs.readFileSync(head)) ? files : null;
}

/**
 * Upload a checkpoint folder as the job's checkpoint: `stored`, `stale` (Redis has a later one, or the
 * job's result), `too-big` (over `maxBytes`: not shipped; another machine would start the job over),
 * or `changed` (rewritten while being read: try again).
 */
export async function uploadCheckpoint(redis: Redis, site: CheckpointSite, c: CheckpointSummary, o: { maxBytes: number; worker: string }): Promise<'stored' | 'stale' | 'too-big' | 'changed'> {
  const { id } = site;
  let files: [string, Buffer][] | null;
  try {
    const sizes = fs.readdirSync(c.dir, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => fs.statSync(path.join(c.dir, e.name)).size);
    if (sizes.reduce((a, b) => a + b, 0) > o.maxBytes) return 'too-big';
    files = snapshot(c.dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'changed'; // replaced by the next one meanwhile
    throw folderError(e, c.dir, 'read', '--dir');
  }
  if (!files) return 'changed';
  const bytes = files.reduce((a, [, b]) => a + b.byteLength, 0);
  const tmp = `${KEYS.checkpoint(id)}:tmp:${o.worker}`;
  const multi = redis.multi().del(tmp);
  for (const [name, buf] of files) multi.hset(tmp, name, buf);
  // A worker killed between the upload and the swap leaves no garbage for long.
  await execOrThrow(multi.pexpire(tmp, 600_000), KEYS.checkpoint(id), 'store');
  const meta = { step: c.step, epoch: c.next.epoch, batchIndex: c.next.batchIndex, epochsDone: c.epochsDone, bytes, worker: o.worker, at: new Date().toISOString() };
  try {
    const r = await redis.eval(STORE_LATER, 4, tmp, KEYS.checkpoint(id), KEYS.checkpointMeta(id), site.result, String(c.step), ...Object.entries(meta).flatMap(([k, v]) => [k, String(v)]));
    return r === 1 ? 'stored' : 'stale';
  } catch (e) {
    throw redisError(e, KEYS.checkpoint(id), 'store');
  }
}

export interface CheckpointShipper {
  /** Ship the newest checkpoint now (an interrupted run's stop checkpoint), then stop watching. */
  stop(): Promise<void>;
}

/**
 * Watch a site's checkpoint folders (every `pollMs`: a `stat` of each `checkpoint.json`) and upload
 * each new checkpoint. A failed upload is a warning — training goes on, the next checkpoint tries
 * again; a checkpoint over `maxBytes` is not shipped (said once).
 */
export function shipCheckpoints(redis: Redis, site: CheckpointSite, o: { maxBytes: number; worker: string; pollMs?: number; log: (line: string) => void }): CheckpointShipper {
  const { label } = site;
  let seen = '';
  let shipped = -1;
  let saidTooBig = false;
  let lastWarning = '';
  let running: Promise<void> | null = null;
  const heads = () =>
    site
      .dirs()
      .flatMap((d) => [d, `${d}.old`])
      .map((d) => {
        const s = fs.statSync(path.join(d, 'checkpoint.json'), { throwIfNoEntry: false });
        return s ? `${s.mtimeMs}:${s.size}` : '-';
      })
      .join('|');
  const once = async () => {
    const now = heads();
    if (now === seen) return;
    const c = localCheckpoint(site);
    if (!c || c.step <= shipped) {
      seen = now;
      return;
    }
    const r = await uploadCheckpoint(redis, site, c, o);
    if (r === 'changed') return; // read again at the next tick
    seen = now;
    shipped = c.step;
    if (r === 'stored') o.log(`${label}: checkpoint at epoch ${c.next.epoch}, batch ${c.next.batchIndex} (step ${c.step}) shipped to Redis`);
    if (r === 'too-big' && !saidTooBig) {
      saidTooBig = true;
      o.log(`${label}: warning: its checkpoint is over ${Math.round(o.maxBytes / 2 ** 20)} MB (--checkpoint-max-mb) and is not shipped: a worker on another machine would start this ${site.what} over`);
    }
  };
  const tick = (): Promise<void> => {
    running ??= once()
      .catch((e) => {
        const text = isKdError(e) ? (e as KdError).format() : String(e);
        if (text !== lastWarning) o.log(`${label}: warning: checkpoint not shipped (training goes on; the next one tries again): ${text}`);
        lastWarning = text;
      })
      .finally(() => {
        running = null;
      });
    return running;
  };
  const timer = setInterval(() => void tick(), o.pollMs ?? 1000);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
      await tick();
    },
  };
}

/**
 * Before a job runs: if Redis holds a later checkpoint of it than this worker's disk (`localStep`;
 * −1 for none), download it to `site.fetchTo` (a cell's: the run's staging folder, where
 * `kd run --resume` finds it), replacing the local attempt. Returns its summary, or null. A download
 * that is no checkpoint (damaged) is dropped, here and in Redis, with a warning: the job starts over.
 */
export async function fetchCheckpoint(redis: Redis, site: CheckpointSite, localStep: number, warn: (line: string) => void): Promise<{ summary: CheckpointSummary; remote: ShippedCheckpoint } | null> {
  const { id } = site;
  const remote = await remoteCheckpoint(redis, id);
  if (!remote || remote.step <= localStep) return null;
  const clear = () => {
    for (const d of site.replaced) {
      try {
        fs.rmSync(d, { recursive: true, force: true });
      } catch (e) {
        throw folderError(e, d, 'clear', '--dir');
      }
    }
  };
  clear();
  const dest = site.fetchTo;
  if (!(await getFolder(redis, KEYS.checkpoint(id), dest, { kind: 'checkpoint', flag: '--dir' }))) return null; // the job completed meanwhile
  let summary: CheckpointSummary | null = null;
  let why = 'no checkpoint.json';
  try {
    summary = peekCheckpoint(dest);
    if (summary) readCheckpoint(dest); // every file it names is there, whole
  } catch (e) {
    summary = null;
    why = isKdError(e) ? (e as KdError).format() : String(e);
  }
  if (!summary) {
    warn(`${site.label}: warning: the checkpoint fetched from Redis (${KEYS.checkpoint(id)}) is not usable, so it is deleted and the ${site.what} starts over: ${why}`);
    clear();
    await dropCheckpoint(redis, id);
    return null;
  }
  return { summary, remote };
}
