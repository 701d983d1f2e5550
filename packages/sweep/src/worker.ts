import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DelayedError, Queue, Worker, type Job } from 'bullmq';
import { parseSpec } from '@tfkd/kd-core';
import { planRun, startPlan, type Registry } from '@tfkd/engine';
import type { Redis } from 'ioredis';
import { JOB_OPTIONS, KEYS, QUEUE, getFolder, putFolder, storeRun, type CellJob, type ReleaseJob, type TeacherJob } from './queue';

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
  /** BullMQ lock: a worker silent this long (killed) loses its job to the stalled-job check. */
  lockMs?: number;
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

/** A checkpoint to resume in the run folder or its staging folder (`<out>.incomplete`). */
function hasCheckpoint(outDir: string): boolean {
  return [`${outDir}.incomplete`, outDir].some((d) => ['checkpoint', 'checkpoint.old'].some((c) => fs.existsSync(path.join(d, c, 'checkpoint.json'))));
}

/**
 * A BullMQ worker (concurrency 1: one run uses one core) for the sweep queue. Jobs:
 * - `cell`: the cell's teachers fetched from Redis into the local cache, then `runCell` into
 *   `runs/<id>` — resumed when a checkpoint of an earlier attempt is there (a worker killed on
 *   this machine), started over otherwise — then the run folder stored in Redis.
 * - `teacher`: the teacher trained into the local cache (or found there), then stored in Redis.
 * - `release`: (after its teacher child) enqueues the cells waiting for that teacher.
 */
export function startWorker(opts: WorkerOptions): Worker {
  const { connection: redis } = opts;
  const dir = path.resolve(opts.dir);
  const cacheDir = path.resolve(opts.cacheDir ?? path.join(dir, '.kd-cache'));
  const log = opts.log ?? (() => undefined);
  const specFile = (name: string, text: string, id: string) => {
    const f = path.join(dir, 'specs', id, `${name}.yaml`);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, text);
    return f;
  };
  const fetchTeachers = async (keys: string[]) => {
    for (const key of keys) {
      const local = path.join(cacheDir, 'teachers', key);
      if (!fs.existsSync(path.join(local, 'model.json')) && (await getFolder(redis, KEYS.teacher(key), local))) log(`teacher ${key}: fetched from Redis`);
    }
  };
  const queue = new Queue(QUEUE, { connection: redis });

  const processCell = async (job: Job, token: string | undefined) => {
    const data = job.data as CellJob;
    if (await redis.exists(KEYS.run(data.id))) return { id: data.id, shared: true };
    const outDir = path.join(dir, 'runs', data.id);
    await fetchTeachers(data.teachers);
    if (!completedRun(outDir)) {
      const resume = hasCheckpoint(outDir);
      // An earlier attempt that left no checkpoint (killed before its first epoch end) starts over.
      if (!resume) for (const d of [outDir, `${outDir}.incomplete`]) fs.rmSync(d, { recursive: true, force: true });
      log(`${data.id}: ${resume ? 'resuming from its checkpoint' : 'running'} (attempt ${job.attemptsMade + 1})`);
      const started = Date.now();
      const r = await opts.runCell({
        specFile: specFile(data.specName, data.specText, data.id),
        outDir,
        cacheDir,
        resume,
        progress: (p) => void job.updateProgress(p).catch(() => undefined),
      });
      if (r.status === 'interrupted') {
        // Stopped by a signal: back to the queue (delayed, no attempt used); the checkpoint stays here.
        await job.moveToDelayed(Date.now() + 100, token);
        throw new DelayedError();
      }
      await redis.hset(KEYS.seconds, data.id, String((Date.now() - started) / 1000));
    }
    const stored = await storeRun(redis, data.id, outDir);
    const metrics = JSON.parse(fs.readFileSync(path.join(outDir, 'metrics.json'), 'utf8')) as { eval: unknown; wallSeconds: number };
    return { id: data.id, stored, eval: metrics.eval, wallSeconds: metrics.wallSeconds, worker: `${os.hostname()}:${process.pid}` };
  };

  const processTeacher = async (job: Job) => {
    const data = job.data as TeacherJob;
    if (await redis.exists(KEYS.teacher(data.key))) return { key: data.key, shared: true };
    const local = path.join(cacheDir, 'teachers', data.key);
    if (!fs.existsSync(path.join(local, 'model.json'))) {
      log(`teacher ${data.key}: training`);
      const file = specFile(data.specName, data.specText, `t-${data.key}`);
      const registry = opts.registry();
      const plan = await planRun(parseSpec(data.specText, file), { registry, specDir: path.dirname(file), cacheDir });
      // Trains (and caches) the plan's teachers, then prepares the main run, which is not needed here.
      (await startPlan(plan, { registry, log })).dispose();
    }
    await putFolder(redis, KEYS.teacher(data.key), local);
    return { key: data.key, trained: true };
  };

  const processRelease = async (job: Job) => {
    const data = job.data as ReleaseJob;
    let added = 0;
    for (const c of data.cells) {
      if ((await redis.exists(KEYS.run(c.id))) || (await queue.getJob(c.id))) continue;
      await queue.add('cell', c, { ...JOB_OPTIONS, jobId: c.id });
      added++;
    }
    return { key: data.key, added };
  };

  const lockMs = opts.lockMs ?? 30_000;
  const worker = new Worker(
    QUEUE,
    async (job, token) => {
      const kind = (job.data as { kind: string }).kind;
      if (kind === 'cell') return processCell(job, token);
      if (kind === 'teacher') return processTeacher(job);
      if (kind === 'release') return processRelease(job);
      throw new Error(`unknown job kind ${kind}`);
    },
    { connection: redis, concurrency: 1, lockDuration: lockMs, stalledInterval: lockMs, maxStalledCount: 2, autorun: true },
  );
  worker.on('closed', () => void queue.close());
  return worker;
}
