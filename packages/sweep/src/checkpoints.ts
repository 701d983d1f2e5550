import * as fs from 'fs';
import * as path from 'path';
import type { CheckpointSummary } from '@tfkd/engine';
import { peekCheckpoint, readCheckpoint } from '@tfkd/engine/node';
import { isKdError, type KdError } from '@tfkd/kd-core';
import type { Redis } from 'ioredis';
import { folderError, redisError } from './errors';
import { KEYS, execOrThrow, getFolder } from './queue';

// A cell's run checkpoint travels through Redis like its result: the worker running the cell uploads
// its newest checkpoint whenever a new one is saved (every epoch end, and the stop checkpoint of an
// interrupted run), and a worker that takes the job up without a newer checkpoint on its own disk (on
// another machine) downloads it and resumes. One checkpoint per cell, at most `maxBytes`; deleted when
// the cell completes.

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

const stagingOf = (outDir: string) => `${outDir}.incomplete`;
/** Where a `kd run` into `outDir` keeps its checkpoint: the staging folder while it runs, the run folder once interrupted. */
const checkpointDirs = (outDir: string) => [path.join(stagingOf(outDir), 'checkpoint'), path.join(outDir, 'checkpoint')];

/** The newest readable checkpoint of a run into `outDir` (its `.old` copy after a crash between renames), or null. */
export function localCheckpoint(outDir: string): CheckpointSummary | null {
  let best: CheckpointSummary | null = null;
  for (const d of checkpointDirs(outDir)) {
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

/** The checkpoint of a cell stored in Redis, or null. */
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

/** Forget a cell's checkpoint in Redis (the cell completed). */
export async function dropCheckpoint(redis: Redis, id: string): Promise<void> {
  try {
    await redis.del(KEYS.checkpoint(id), KEYS.checkpointMeta(id));
  } catch (e) {
    throw redisError(e, KEYS.checkpoint(id), 'delete');
  }
}

// Replace the stored checkpoint only by a later one of the same cell, and never once the cell has a
// result: a worker wrongly taken for stalled that still runs cannot put an older state back.
// KEYS: the uploaded copy (tmp), the checkpoint, its meta, the cell's result. ARGV: step, meta pairs.
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
 * Upload a checkpoint folder as the cell's checkpoint: `stored`, `stale` (Redis has a later one, or the
 * cell's result), `too-big` (over `maxBytes`: not shipped; another machine would start the cell over),
 * or `changed` (rewritten while being read: try again).
 */
export async function uploadCheckpoint(redis: Redis, id: string, c: CheckpointSummary, o: { maxBytes: number; worker: string }): Promise<'stored' | 'stale' | 'too-big' | 'changed'> {
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
    const r = await redis.eval(STORE_LATER, 4, tmp, KEYS.checkpoint(id), KEYS.checkpointMeta(id), KEYS.run(id), String(c.step), ...Object.entries(meta).flatMap(([k, v]) => [k, String(v)]));
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
 * Watch the checkpoints of a run into `outDir` (every `pollMs`: a `stat` of each `checkpoint.json`)
 * and upload each new one. A failed upload is a warning — training goes on, the next checkpoint
 * tries again; a checkpoint over `maxBytes` is not shipped (said once).
 */
export function shipCheckpoints(redis: Redis, id: string, outDir: string, o: { maxBytes: number; worker: string; pollMs?: number; log: (line: string) => void }): CheckpointShipper {
  let seen = '';
  let shipped = -1;
  let saidTooBig = false;
  let lastWarning = '';
  let running: Promise<void> | null = null;
  const heads = () =>
    checkpointDirs(outDir)
      .flatMap((d) => [d, `${d}.old`])
      .map((d) => {
        const s = fs.statSync(path.join(d, 'checkpoint.json'), { throwIfNoEntry: false });
        return s ? `${s.mtimeMs}:${s.size}` : '-';
      })
      .join('|');
  const once = async () => {
    const now = heads();
    if (now === seen) return;
    const c = localCheckpoint(outDir);
    if (!c || c.step <= shipped) {
      seen = now;
      return;
    }
    const r = await uploadCheckpoint(redis, id, c, o);
    if (r === 'changed') return; // read again at the next tick
    seen = now;
    shipped = c.step;
    if (r === 'stored') o.log(`${id}: checkpoint at epoch ${c.next.epoch}, batch ${c.next.batchIndex} (step ${c.step}) shipped to Redis`);
    if (r === 'too-big' && !saidTooBig) {
      saidTooBig = true;
      o.log(`${id}: warning: its checkpoint is over ${Math.round(o.maxBytes / 2 ** 20)} MB (--checkpoint-max-mb) and is not shipped: a worker on another machine would start this cell over`);
    }
  };
  const tick = (): Promise<void> => {
    running ??= once()
      .catch((e) => {
        const text = isKdError(e) ? (e as KdError).format() : String(e);
        if (text !== lastWarning) o.log(`${id}: warning: checkpoint not shipped (training goes on; the next one tries again): ${text}`);
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
 * Before a cell runs: if Redis holds a later checkpoint of it than this worker's disk (`localStep`;
 * −1 for none), download it into the run's staging folder (`<outDir>.incomplete/checkpoint`, where
 * `kd run --resume` finds it), replacing the local attempt. Returns its summary, or null. A download
 * that is no checkpoint (damaged) is dropped, here and in Redis, with a warning: the cell starts over.
 */
export async function fetchCheckpoint(redis: Redis, id: string, outDir: string, localStep: number, warn: (line: string) => void): Promise<{ summary: CheckpointSummary; remote: ShippedCheckpoint } | null> {
  const remote = await remoteCheckpoint(redis, id);
  if (!remote || remote.step <= localStep) return null;
  const staging = stagingOf(outDir);
  const clear = () => {
    for (const d of [outDir, staging]) {
      try {
        fs.rmSync(d, { recursive: true, force: true });
      } catch (e) {
        throw folderError(e, d, 'clear', '--dir');
      }
    }
  };
  clear();
  const dest = path.join(staging, 'checkpoint');
  if (!(await getFolder(redis, KEYS.checkpoint(id), dest, { kind: 'checkpoint', flag: '--dir' }))) return null; // the cell completed meanwhile
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
    warn(`${id}: warning: the checkpoint fetched from Redis (${KEYS.checkpoint(id)}) is not usable, so it is deleted and the cell starts over: ${why}`);
    clear();
    await dropCheckpoint(redis, id);
    return null;
  }
  return { summary, remote };
}
