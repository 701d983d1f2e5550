import * as fs from 'fs';
import * as path from 'path';
import { FlowProducer, Queue, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { folderError, malformedError, redisError, type FolderFlag, type StoredKind } from './errors';
import type { PlannedCell, SweepPlan } from './plan';
import { readFolder } from './folders';
import { releaseJobId, teacherJobId } from './job-ids';

export { readFolder } from './folders';

/** One queue for every sweep: two sweeps that share a cell share its job and its result. */
export const QUEUE = 'kd-sweep';
/** Redis keys outside BullMQ's: results, teachers, sweep manifests. */
export const KEYS = {
  /** Hash: a finished run folder, file path → bytes (`metrics.json`, `history.jsonl`, `student/…`, …). */
  run: (id: string) => `tfkd:run:${id}`,
  /** Hash: a teacher's cache folder (`model.json`, `weights.bin`, `teacher.json`). */
  teacher: (key: string) => `tfkd:teacher:${key}`,
  /** Hash: a saved model a cell `load:`s (its folder's files), by content hash (`m-…`). */
  model: (hash: string) => `tfkd:model:${hash}`,
  /** String: a sweep's plan (JSON), so `status`/`table` work from any machine. */
  sweep: (id: string) => `tfkd:sweep:${id}`,
  /** List: a cell id per run completed and stored (the exactly-once ledger tests read). */
  completions: 'tfkd:completions',
  /** Hash: cell id → seconds of its last completed run (ETA). */
  seconds: 'tfkd:seconds',
  /**
   * Hash: the latest checkpoint of a cell's run (file → bytes), uploaded by the worker running it at
   * every checkpoint save, so a worker on another machine resumes it; deleted when the cell completes.
   */
  checkpoint: (id: string) => `tfkd:checkpoint:${id}`,
  /** Hash: what `checkpoint` holds (step, epoch, batchIndex, bytes, worker): only a later step replaces it. */
  checkpointMeta: (id: string) => `tfkd:checkpoint:${id}:meta`,
  /** Set: cells taken out of the queue by `kd sweep cancel` (submitting them again puts them back). */
  cancelled: 'tfkd:cancelled',
};

/** Retries: a job failing three times is failed, with its error. */
export const JOB_OPTIONS: JobsOptions = { attempts: 3, backoff: { type: 'fixed', delay: 500 }, removeOnComplete: false, removeOnFail: false };

/** What a cell job carries to a worker (no path of the submitting machine is needed). */
export interface CellJob {
  kind: 'cell';
  id: string;
  specName: string;
  specText: string;
  teachers: string[];
  /** Content hashes of the saved models the spec `load:`s (`models/<hash>`), fetched from Redis. */
  models?: string[];
}
export interface TeacherJob {
  kind: 'teacher';
  key: string;
  specName: string;
  specText: string;
  models?: string[];
}
export interface ReleaseJob {
  kind: 'release';
  key: string;
  /** Released to the front of the queue, in this order, when the teacher is trained (worker.ts). */
  cells: CellJob[];
}

export const cellJob = (c: PlannedCell): CellJob => ({
  kind: 'cell',
  id: c.id,
  specName: c.specName,
  specText: c.specText,
  teachers: c.teachers,
  ...(Object.keys(c.models ?? {}).length > 0 ? { models: Object.keys(c.models) } : {}),
});

export interface SubmitResult {
  sweep: string;
  cells: number;
  /** Jobs added now: cells and, per teacher not yet trained, its teacher job and the release job that enqueues its cells. */
  enqueued: number;
  /** Cells already finished (here or by another sweep sharing them). */
  done: number;
  /** Cells already waiting or running. */
  pending: number;
  /** Failed cells given three more attempts. */
  retried: number;
}

/**
 * Enqueue a planned sweep. Cell jobs are keyed by their spec hash, so what is queued, running or
 * finished is never added again. Cells that need a teacher not yet in Redis wait behind it as a
 * BullMQ flow: the teacher job is the child (BullMQ runs children first) of a `release` job that
 * enqueues those cells once the teacher is stored — trained once, whatever the number of cells.
 */
export async function submitSweep(plan: SweepPlan, redis: Redis, opts: { cacheUpload?: boolean; first?: boolean } = {}): Promise<SubmitResult> {
  const queue = new Queue(QUEUE, { connection: redis });
  const flows = new FlowProducer({ connection: redis });
  const out: SubmitResult = { sweep: plan.id, cells: 0, enqueued: 0, done: 0, pending: 0, retried: 0 };
  try {
    await redis.set(KEYS.sweep(plan.id), JSON.stringify(plan));
    // Teachers this machine has cached already travel through Redis: no worker trains them again.
    if (opts.cacheUpload !== false) {
      for (const [key, t] of Object.entries(plan.teachers)) {
        if (t.cached && !(await redis.exists(KEYS.teacher(key)))) await putFolder(redis, KEYS.teacher(key), t.cached, undefined, '--cache-dir');
      }
    }
    // Saved models the cells load travel through Redis too (content-addressed: stored once).
    for (const c of plan.cells) {
      for (const [hash, dir] of Object.entries(c.models ?? {})) {
        if (!(await redis.exists(KEYS.model(hash)))) await putFolder(redis, KEYS.model(hash), dir, undefined, '--dir');
      }
    }
    const unique = [...new Map(plan.cells.map((c) => [c.id, c])).values()];
    out.cells = unique.length;
    // Submitting a cell again is how a cancelled cell goes back into the queue.
    if (unique.length) await redis.srem(KEYS.cancelled, ...unique.map((c) => c.id));
    const behind = new Map<string, CellJob[]>();
    const ready: CellJob[] = [];
    for (const c of unique) {
      if (await redis.exists(KEYS.run(c.id))) {
        out.done++;
        continue;
      }
      const job = await queue.getJob(c.id);
      if (job) {
        const state = await job.getState();
        if (state === 'failed') {
          await job.retry('failed', { resetAttemptsMade: true });
          out.retried++;
        } else if (state === 'completed') out.done++;
        else out.pending++;
        continue;
      }
      let missing: string | null = null;
      for (const k of c.teachers) if (!missing && !(await redis.exists(KEYS.teacher(k)))) missing = k;
      if (missing) {
        behind.set(missing, [...(behind.get(missing) ?? []), cellJob(c)]);
        continue;
      }
      ready.push(cellJob(c));
    }
    await addCells(queue, ready, opts.first === true);
    out.enqueued += ready.length;
    for (const [key, cells] of behind) {
      const releaseId = releaseJobId(key, plan.id);
      const release = await queue.getJob(releaseId);
      if (release) {
        // Its teacher is still being trained. Cells `kd sweep cancel` took out of this release go back
        // into it (they were dropped from its data; the job stays for the cells it still holds).
        const data = release.data as ReleaseJob;
        // Its teacher job failed (an error, or stalled too often — killed workers): tried again, or
        // the release and the cells it holds would wait forever.
        const teacherJob = await queue.getJob(teacherJobId(key, plan.id));
        if (teacherJob && (await teacherJob.getState()) === 'failed') {
          await teacherJob.retry('failed', { resetAttemptsMade: true });
          out.retried++;
        }
        const held = new Set(data.cells.map((c) => c.id));
        const back = cells.filter((c) => !held.has(c.id));
        if (back.length) await release.updateData({ ...data, cells: [...data.cells, ...back] });
        out.pending += cells.length - back.length;
        out.enqueued += back.length;
        continue;
      }
      const first = plan.cells.find((c) => c.id === cells[0].id) as PlannedCell;
      const teacher: TeacherJob = { kind: 'teacher', key, specName: first.specName, specText: first.specText, ...(cellJob(first).models ? { models: cellJob(first).models } : {}) };
      await flows.add({
        name: 'release',
        queueName: QUEUE,
        data: { kind: 'release', key, cells } satisfies ReleaseJob,
        opts: { ...JOB_OPTIONS, jobId: releaseId },
        children: [{ name: 'teacher', queueName: QUEUE, data: teacher, opts: { ...JOB_OPTIONS, jobId: teacherJobId(key, plan.id), ...(opts.first ? { lifo: true } : {}) } }],
      });
      out.enqueued += cells.length + 2;
    }
    return out;
  } finally {
    await flows.close();
    await queue.close();
  }
}

/**
 * Enqueue cell jobs in order: at the end of the queue (first in, first out), or with `first` at its
 * front — pushed last to first (BullMQ `lifo`), so that they still run in the order given.
 */
export async function addCells(queue: Queue, cells: readonly CellJob[], first: boolean): Promise<void> {
  const order = first ? [...cells].reverse() : cells;
  for (const c of order) await queue.add('cell', c, { ...JOB_OPTIONS, jobId: c.id, ...(first ? { lifo: true } : {}) });
}

/** Store a folder in a Redis hash (relative path → bytes), written beside and renamed into place: whole or not at all. */
export async function putFolder(redis: Redis, key: string, dir: string, skip: (rel: string) => boolean = () => false, flag: FolderFlag = '--dir'): Promise<number> {
  const files = readFolder(dir, skip, flag);
  const tmp = `${key}:tmp:${process.pid}`;
  const multi = redis.multi().del(tmp);
  for (const [rel, buf] of files) multi.hset(tmp, rel, buf);
  await execOrThrow(multi.rename(tmp, key), key, 'store');
  return files.length;
}

/** `multi.exec()` whose failure — or a failed command inside it (OOM, …) — is a coded error. */
export async function execOrThrow(multi: ReturnType<Redis['multi']>, key: string, what: string): Promise<void> {
  let replies: [Error | null, unknown][] | null;
  try {
    replies = await multi.exec();
  } catch (e) {
    throw redisError(e, key, what);
  }
  const failed = replies?.find(([err]) => err !== null)?.[0];
  if (failed) throw redisError(failed, key, what);
  if (replies === null) throw redisError(new Error('the transaction was aborted'), key, what);
}

// Store-once: the first finished attempt's folder is the result; a later one (a job wrongly taken for
// stalled while its worker still ran) is dropped, and the completion is counted once.
const STORE_ONCE = `
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('DEL', KEYS[1]) return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('RPUSH', KEYS[3], ARGV[1])
return 1`;

/** Store a finished run folder as the cell's result, once; returns false if a result was already there. */
export async function storeRun(redis: Redis, id: string, dir: string): Promise<boolean> {
  const files = readFolder(dir, (rel) => rel === 'checkpoint' || rel.startsWith('checkpoint.'));
  const tmp = `${KEYS.run(id)}:tmp:${process.pid}`;
  const multi = redis.multi().del(tmp);
  for (const [rel, buf] of files) multi.hset(tmp, rel, buf);
  await execOrThrow(multi, KEYS.run(id), 'store');
  try {
    return (await redis.eval(STORE_ONCE, 3, tmp, KEYS.run(id), KEYS.completions, id)) === 1;
  } catch (e) {
    throw redisError(e, KEYS.run(id), 'store');
  }
}

/** A stored file name that stays inside its folder once written back (no absolute path, no `..`). */
function safeRelative(rel: string): boolean {
  const parts = rel.split('/');
  return rel.length > 0 && !rel.includes('\\') && !rel.includes('\0') && !path.isAbsolute(rel) && parts.every((p) => p !== '' && p !== '.' && p !== '..');
}

export interface GetFolderOptions {
  /** What the folder is (the code of a malformed one); default `run`. */
  kind?: StoredKind;
  /** The flag naming the folder written into (the fix of a write failure); default `--dir`. */
  flag?: FolderFlag;
}

/**
 * Write a stored folder to `dir` (through `dir.tmp-<pid>`, renamed into place). False if Redis has no
 * such key. Every failure is coded: Redis (`KD_REDIS_UNAVAILABLE`), the disk (`KD_OUTPUT_WRITE`
 * naming `flag`), a stored file name outside the folder (by `kind`: `KD_MODEL_LOAD`, `KD_CHECKPOINT_INVALID`, …).
 */
export async function getFolder(redis: Redis, key: string, dir: string, opts: GetFolderOptions = {}): Promise<boolean> {
  const flag = opts.flag ?? '--dir';
  let files: Record<string, Buffer>;
  try {
    files = await redis.hgetallBuffer(key);
  } catch (e) {
    throw redisError(e, key, 'read');
  }
  if (Object.keys(files).length === 0) return false;
  const bad = Object.keys(files).find((rel) => !safeRelative(rel));
  if (bad !== undefined) throw malformedError(opts.kind ?? 'run', key, `it names the file ${JSON.stringify(bad)}, outside its folder`);
  const tmp = `${dir}.tmp-${process.pid}`;
  try {
    fs.rmSync(tmp, { recursive: true, force: true });
    for (const [rel, buf] of Object.entries(files)) {
      const f = path.join(tmp, ...rel.split('/'));
      fs.mkdirSync(path.dirname(f), { recursive: true });
      fs.writeFileSync(f, buf);
    }
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(tmp, dir);
  } catch (e) {
    try {
      fs.rmSync(tmp, { recursive: true, force: true });
    } catch {
      // the write's own error is the one to report
    }
    throw folderError(e, dir, `write ${key} into`, flag);
  }
  return true;
}

/**
 * A private Redis just started on a sweep folder's data (no client but this one): the jobs it lists as
 * running were held by workers of a previous `kd sweep` that died with it (SIGKILL, power loss). Their
 * locks are dropped and the jobs marked stalled, so the first worker's start-up check (BullMQ's own
 * script) puts them back at once instead of after the lock runs out; the stall is not counted against
 * the job (`stc`). Returns their ids. Never for a shared Redis, where live workers hold locks.
 */
export async function releaseOrphanedJobs(redis: Redis): Promise<string[]> {
  const prefix = `bull:${QUEUE}:`;
  const active = await redis.lrange(`${prefix}active`, 0, -1);
  if (active.length === 0) return [];
  const multi = redis.multi();
  for (const id of active) {
    multi.del(`${prefix}${id}:lock`);
    multi.sadd(`${prefix}stalled`, id);
    multi.hincrby(`${prefix}${id}`, 'stc', -1);
  }
  multi.del(`${prefix}stalled-check`);
  await execOrThrow(multi, `${prefix}active`, 'release the running jobs of');
  return active;
}
