import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Queue, WaitingError, Worker, type Job } from 'bullmq';
import { isKdError, KdError, parseSpec } from '@tfkd/kd-core';
import { planRun, startPlan, type Registry } from '@tfkd/engine';
import { teacherCheckpointFiles } from '@tfkd/engine/node';
import type { Redis } from 'ioredis';
import { CHECKPOINT_MAX_MB, cellSite, dropCheckpoint, fetchCheckpoint, localCheckpoint, shipCheckpoints, teacherSite } from './checkpoints';
import { folderError, jobError, redisError } from './errors';
import { KEYS, QUEUE, addCells, getFolder, putFolder, storeRun, type CellJob, type ReleaseJob, type TeacherJob } from './queue';

/** What a worker does with one cell: `kd run` of its spec into `outDir` (the CLI passes `runCommand`). */
export type RunCell = (cell: {
  specFile: string;
  outDir: string;
  cacheDir: string;
  /** The run's last checkpoint is in `outDir` (or its staging folder): continue from it. */
  resume: boolean;
  progress: (p: { phase: string; epoch: number; epochs: number }) => void;
}) => Promise<{ status: 'completed' | 'interrupted' | 'planned' }>;

export interface WorkerOptions {
  connection: Redis;
  /** This worker's working folder: `specs/`, `runs/<cell id>` (with checkpoints), and the teacher cache. */
  dir: string;
  /** Teacher cache (default `<dir>/.kd-cache`); local workers of one sweep share one. */
  cacheDir?: string;
  registry: () => Registry;
  runCell: RunCell;
  /** BullMQ lock: a worker silent this long (killed) loses its job to the stalled-job check (run every `lockMs` too). */
  lockMs?: number;
  /**
   * Checkpoints travel: each new checkpoint of a running cell up to this size is uploaded to Redis, and
   * a worker taking the job up elsewhere resumes from it (default 64 MB; 0: they stay on this disk —
   * the local workers of a `kd sweep` on its private Redis share one folder).
   */
  checkpointMaxBytes?: number;
  /** How often a running cell's checkpoint folder is looked at for a new checkpoint (default 1000 ms). */
  checkpointPollMs?: number;
  /**
   * Asked between the steps of a teacher's training (a cell's `runCell` has its own): true once the
   * worker is told to stop — the teacher stops with its checkpoint, and its job goes back to the queue.
   */
  shouldStop?: () => boolean;
  log?: (line: string) => void;
}

/** Whether a run folder holds a finished run. */
function completedRun(dir: string): boolean {
  try {
    return (JSON.parse(fs.readFileSync(path.join(dir, 'metrics.json'), 'utf8')) as { status?: string }).status === 'completed';
  } catch {
    return false;
  }
}

/**
 * A BullMQ worker (concurrency 1: one run uses one core) for the sweep queue. Jobs:
 * - `cell`: the cell's teachers fetched from Redis into the local cache, then `runCell` into
 *   `runs/<id>` — resumed from the latest checkpoint of an earlier attempt: on this disk (a worker
 *   killed on this machine) or in Redis (one killed on another machine), started over otherwise;
 *   while it runs, each new checkpoint is uploaded — then the run folder stored in Redis, and the
 *   checkpoint there deleted. Failures are coded (`KD_…` with a fix) in the failed job.
 * - `teacher`: the teacher trained into the local cache (or found there), then stored in Redis; its
 *   checkpoints travel as a cell's do.
 * - `release`: (after its teacher child) enqueues the cells waiting for that teacher.
 */
export function startWorker(opts: WorkerOptions): Worker {
  const { connection: redis } = opts;
  const dir = path.resolve(opts.dir);
  const cacheDir = path.resolve(opts.cacheDir ?? path.join(dir, '.kd-cache'));
  const log = opts.log ?? (() => undefined);
  const me = `${os.hostname()}:${process.pid}`;
  const maxBytes = opts.checkpointMaxBytes ?? CHECKPOINT_MAX_MB * 2 ** 20;
  const exists = async (key: string) => {
    try {
      return (await redis.exists(key)) > 0;
    } catch (e) {
      throw redisError(e, key, 'look up');
    }
  };
  /** The saved models a spec `load:`s as `models/<hash>`, fetched from Redis beside the spec copy. */
  const fetchModels = async (hashes: readonly string[] | undefined, id: string) => {
    for (const hash of hashes ?? []) {
      const local = path.join(dir, 'specs', id, 'models', hash);
      if (fs.existsSync(local)) continue;
      if (!(await getFolder(redis, KEYS.model(hash), local, { kind: 'model', flag: '--dir' }))) {
        throw new KdError('KD_SWEEP_FAILED', `the saved model ${hash} this cell loads is not in Redis (${KEYS.model(hash)})`, {
          path: KEYS.model(hash),
          fix: 'submit the sweep again from a machine that has the `load:` folder: `kd sweep` uploads it',
        });
      }
      log(`model ${hash}: fetched from Redis`);
    }
  };
  const specFile = (name: string, text: string, id: string) => {
    const f = path.join(dir, 'specs', id, `${name}.yaml`);
    try {
      fs.mkdirSync(path.dirname(f), { recursive: true });
      fs.writeFileSync(f, text);
    } catch (e) {
      throw folderError(e, f, 'write the spec copy', '--dir');
    }
    return f;
  };
  const fetchTeachers = async (keys: string[]) => {
    for (const key of keys) {
      const local = path.join(cacheDir, 'teachers', key);
      if (!fs.existsSync(path.join(local, 'model.json')) && (await getFolder(redis, KEYS.teacher(key), local, { kind: 'teacher', flag: '--cache-dir' }))) log(`teacher ${key}: fetched from Redis`);
    }
  };
  const clear = (d: string) => {
    try {
      fs.rmSync(d, { recursive: true, force: true });
    } catch (e) {
      throw folderError(e, d, 'clear', '--dir');
    }
  };
  const queue = new Queue(QUEUE, { connection: redis });

  const processCell = async (job: Job, token: string | undefined) => {
    const data = job.data as CellJob;
    if (await exists(KEYS.run(data.id))) {
      await dropCheckpoint(redis, data.id);
      return { id: data.id, shared: true };
    }
    const outDir = path.join(dir, 'runs', data.id);
    const site = cellSite(data.id, outDir);
    await fetchTeachers(data.teachers);
    await fetchModels(data.models, data.id);
    if (!completedRun(outDir)) {
      const local = localCheckpoint(site);
      // A later checkpoint in Redis (the attempt of a worker on another machine) replaces this disk's.
      const fetched = maxBytes > 0 ? await fetchCheckpoint(redis, site, local?.step ?? -1, log) : null;
      const from = fetched?.summary ?? local;
      // An earlier attempt that left no checkpoint (killed before its first epoch end) starts over.
      if (!from) for (const d of site.replaced) clear(d);
      const where = fetched ? `the checkpoint fetched from Redis (written by ${fetched.remote.worker})` : 'its checkpoint';
      log(`${data.id}: ${from ? `resuming from ${where} at epoch ${from.next.epoch}, batch ${from.next.batchIndex} (step ${from.step})` : 'running'} (attempt ${job.attemptsMade + 1})`);
      const started = Date.now();
      const shipper = maxBytes > 0 ? shipCheckpoints(redis, site, { maxBytes, worker: me, pollMs: opts.checkpointPollMs, log }) : null;
      let r: Awaited<ReturnType<RunCell>>;
      try {
        r = await opts.runCell({
          specFile: specFile(data.specName, data.specText, data.id),
          outDir,
          cacheDir,
          resume: from !== null,
          progress: (p) => void job.updateProgress(p).catch(() => undefined),
        });
      } finally {
        // The newest checkpoint (an interrupted run's stop checkpoint, or a failed attempt's last one) goes too.
        await shipper?.stop();
      }
      if (r.status === 'interrupted') {
        // Stopped by a signal: back to the head of the queue (no attempt used), so it is the next cell
        // taken; the checkpoint stays here (and in Redis).
        await job.moveToWait(token);
        throw new WaitingError();
      }
      await redis.hset(KEYS.seconds, data.id, String((Date.now() - started) / 1000));
    }
    const stored = await storeRun(redis, data.id, outDir);
    await dropCheckpoint(redis, data.id);
    let metrics: { eval: unknown; wallSeconds: number };
    try {
      metrics = JSON.parse(fs.readFileSync(path.join(outDir, 'metrics.json'), 'utf8')) as typeof metrics;
    } catch (e) {
      throw folderError(e, path.join(outDir, 'metrics.json'), 'read', '--dir');
    }
    return { id: data.id, stored, eval: metrics.eval, wallSeconds: metrics.wallSeconds, worker: me };
  };

  const processTeacher = async (job: Job, token: string | undefined) => {
    const data = job.data as TeacherJob;
    const site = teacherSite(data.key, cacheDir);
    if (await exists(KEYS.teacher(data.key))) {
      await dropCheckpoint(redis, site.id);
      return { key: data.key, shared: true };
    }
    const local = path.join(cacheDir, 'teachers', data.key);
    if (!fs.existsSync(path.join(local, 'model.json'))) {
      log(`teacher ${data.key}: training`);
      await fetchModels(data.models, `t-${data.key}`);
      const file = specFile(data.specName, data.specText, `t-${data.key}`);
      const registry = opts.registry();
      const plan = await planRun(parseSpec(data.specText, file), { registry, specDir: path.dirname(file), cacheDir });
      // A teacher checkpoints every epoch into the cache: an attempt after a stopped or killed one
      // resumes it, from this disk or, if Redis has a later one (a worker on another machine), from Redis.
      if (maxBytes > 0) {
        const fetched = await fetchCheckpoint(redis, site, localCheckpoint(site)?.step ?? -1, log);
        if (fetched) log(`teacher ${data.key}: checkpoint at epoch ${fetched.summary.next.epoch}, batch ${fetched.summary.next.batchIndex} (step ${fetched.summary.step}) fetched from Redis (written by ${fetched.remote.worker})`);
      }
      const shipper = maxBytes > 0 ? shipCheckpoints(redis, site, { maxBytes, worker: me, pollMs: opts.checkpointPollMs, log }) : null;
      let stopped = false;
      try {
        // Trains (and caches) the plan's teachers, then prepares the main run, which is not needed here.
        (await startPlan(plan, { registry, log, teacherCheckpoints: teacherCheckpointFiles(cacheDir), shouldStop: opts.shouldStop })).dispose();
      } catch (e) {
        if (!(isKdError(e) && e.code === 'KD_INTERRUPTED')) throw e;
        log(`teacher ${data.key}: stopped (${e.message})`);
        stopped = true;
      } finally {
        // The newest checkpoint (the stop checkpoint, or a failed attempt's last one) goes too.
        await shipper?.stop();
      }
      if (stopped) {
        // Back to the head of the queue (no attempt used), as a cell; its checkpoint is here and in Redis.
        await job.moveToWait(token);
        throw new WaitingError();
      }
    }
    await putFolder(redis, KEYS.teacher(data.key), local, undefined, '--cache-dir');
    await dropCheckpoint(redis, site.id);
    return { key: data.key, trained: true };
  };

  const processRelease = async (job: Job) => {
    const data = job.data as ReleaseJob;
    const todo: CellJob[] = [];
    for (const c of data.cells) {
      if ((await redis.exists(KEYS.run(c.id))) || (await queue.getJob(c.id))) continue;
      todo.push(c);
    }
    // To the front, in sweep order: the sweep's turn came when its teacher job was taken, so sweeps
    // submitted after it do not go first (at the end, they would).
    await addCells(queue, todo, true);
    return { key: data.key, added: todo.length };
  };

  const lockMs = opts.lockMs ?? 30_000;
  const worker = new Worker(
    QUEUE,
    async (job, token) => {
      const kind = (job.data as { kind: string }).kind;
      try {
        if (kind === 'cell') return await processCell(job, token);
        if (kind === 'teacher') return await processTeacher(job, token);
        if (kind === 'release') return await processRelease(job);
      } catch (e) {
        if (e instanceof WaitingError) throw e;
        throw jobError(e);
      }
      throw new Error(`unknown job kind ${kind}`);
    },
    { connection: redis, concurrency: 1, lockDuration: lockMs, stalledInterval: lockMs, maxStalledCount: 2, autorun: true },
  );
  worker.on('closed', () => void queue.close());
  return worker;
}
