import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { nodeStorage } from '@tfkd/engine/node';
import { KdError, storageError } from '@tfkd/kd-core';
import { planSweep, type SweepPlan, type SweepPlanOptions } from './plan';
import { releaseOrphanedJobs, submitSweep, type SubmitResult } from './queue';
import { sweepStatus, type SweepStatus } from './status';
import { collectRuns, collectedRun, restoreRuns } from './runs';
import { connection, probeRedis, readJson, startEmbeddedRedis, type EmbeddedRedis } from './redis';
import { loadSweepFile } from './sweep-file';
import { sweepTable, tableCsv, tableMarkdown, tableSvg, type CellMetrics, type SweepTable } from './table';

export interface SweepOptions extends Omit<SweepPlanOptions, 'log'> {
  /** `redis://host:port` of a shared Redis; without it a private redis-server runs in `<out>/redis`. */
  redis?: string;
  /** Local worker processes (default: the number of cores without --redis, none with it). */
  workers?: number;
  /** The sweep folder (default `sweeps/<name>`). */
  out?: string;
  /** The command that starts one worker (`kd worker`), without its options. */
  workerCommand: string[];
  /** Extra options for local workers (e.g. `--lock-ms`). */
  workerArgs?: string[];
  /** Submit and return without waiting (with --redis). */
  detach?: boolean;
  /** Put the sweep's cells at the front of the queue, before cells already waiting (in sweep order). */
  first?: boolean;
  /** Check every cell and print the plan; enqueue nothing. */
  planOnly?: boolean;
  log?: (line: string) => void;
  /** Called about once a second while attached. */
  onStatus?: (s: SweepStatus) => void;
  /** Resolves when the user asks to stop (SIGINT): workers are stopped with a checkpoint. */
  stop?: Promise<unknown>;
}

export interface SweepOutcome {
  out: string;
  plan: SweepPlan;
  submitted: SubmitResult | null;
  status: SweepStatus | null;
  table: SweepTable | null;
  interrupted: boolean;
}

export const defaultSweepOut = (name: string) => path.join('sweeps', name);

/**
 * `kd sweep FILE`: plan every cell (any invalid cell refuses the sweep, nothing enqueued), connect to
 * Redis (or start a private one), submit, start local workers, wait while reporting status, copy
 * the results into `<out>/runs/` and write the table. Interrupted and started again, it continues.
 */
export async function runSweep(file: string, opts: SweepOptions): Promise<SweepOutcome> {
  const log = opts.log ?? (() => undefined);
  const sweep = loadSweepFile(file);
  const out = path.resolve(opts.out ?? defaultSweepOut(sweep.name));
  // Redis first when it is given: an unreachable one is an error before minutes of planning.
  if (opts.redis && !opts.planOnly) await probeRedis(opts.redis);
  // The sweep folder before minutes of planning: one that cannot be written is a coded error now.
  makeFolder(out);
  const plan = await planSweep(sweep, { ...opts, log });
  savePlan(out, plan, opts.redis ?? null);
  if (opts.planOnly) return { out, plan, submitted: null, status: null, table: null, interrupted: false };

  let embedded: EmbeddedRedis | null = null;
  const url = opts.redis ?? (embedded = await startEmbeddedRedis(path.join(out, 'redis'), { log })).url;
  const redis = connection(url);
  const workers: ChildProcess[] = [];
  let interrupted = false;
  try {
    // A private server started afresh on the folder's data: the cells its data lists as running were
    // run by workers that died with the previous `kd sweep` (SIGKILL, power loss): they go back now.
    if (embedded && !embedded.reused) {
      const orphans = await releaseOrphanedJobs(redis);
      if (orphans.length > 0) log(`${orphans.length === 1 ? '1 cell' : `${orphans.length} cells`} left running by a previous kd sweep ${orphans.length === 1 ? 'goes' : 'go'} back to the queue (resumed from ${orphans.length === 1 ? 'its checkpoint' : 'their checkpoints'} if any)`);
    }
    const restored = await restoreRuns(plan, redis, out);
    if (restored > 0) log(`${restored === 1 ? '1 result' : `${restored} results`} kept in ${path.join(out, 'runs')} ${restored === 1 ? 'goes' : 'go'} back to Redis (not run again)`);
    const submitted = await submitSweep(plan, redis, { first: opts.first });
    log(`sweep ${plan.id}: ${submitted.cells} cells — ${submitted.done} done, ${submitted.pending} pending, ${submitted.retried} retried, ${submitted.enqueued} jobs enqueued`);
    if (opts.detach) return { out, plan, submitted, status: await sweepStatus(plan, redis), table: null, interrupted: false };
    const n = opts.workers ?? (opts.redis ? 0 : os.cpus().length);
    const workDir = path.join(out, 'work');
    // The local workers share one folder, so checkpoints need not travel through a private Redis.
    const ship = embedded ? ['--checkpoint-max-mb', '0'] : [];
    for (let i = 0; i < n; i++) {
      const [cmd, ...args] = opts.workerCommand;
      const logFile = path.join(out, `worker-${i + 1}.log`);
      let fd: number;
      try {
        fd = fs.openSync(logFile, 'a');
      } catch (e) {
        throw storageError(e, logFile, 'write');
      }
      // Each worker in a process group of its own: a Ctrl-C at the terminal reaches `kd sweep` only,
      // which stops the workers with one SIGTERM each (a second signal would stop a run at once, without
      // its checkpoint). A worker whose `kd sweep` is gone (killed hard) stops by itself
      // (TFKD_SWEEP_PARENT: it checks every second), with a checkpoint, handing its cell back.
      const child = spawn(cmd, [...args, '--redis', url, '--dir', workDir, '--cache-dir', path.resolve(opts.cacheDir ?? '.kd-cache'), ...ship, ...(opts.workerArgs ?? [])], {
        stdio: ['ignore', 'ignore', fd],
        detached: true,
        env: { ...process.env, TFKD_SWEEP_PARENT: String(process.pid) },
      });
      fs.closeSync(fd);
      workers.push(child);
    }
    if (n > 0) writeOut(path.join(out, 'workers.json'), JSON.stringify(workers.map((w, i) => ({ pid: w.pid, log: `worker-${i + 1}.log` }))) + '\n');
    if (n > 0) log(`started ${n} local worker${n === 1 ? '' : 's'} (logs in ${out}/worker-*.log)`);
    let stopped = false;
    void opts.stop?.then(() => (stopped = true));
    let status = await sweepStatus(plan, redis);
    for (;;) {
      opts.onStatus?.(status);
      await collectRuns(plan, redis, out);
      // Cells not queued in this Redis (their jobs removed meanwhile) are not waited for: no worker sees them.
      if (status.counts.waiting + status.counts.running === 0) break;
      if (stopped) {
        interrupted = true;
        break;
      }
      if (n > 0 && workers.every((w) => w.exitCode !== null || w.signalCode !== null)) {
        throw new KdError('KD_SWEEP_FAILED', `every local worker exited with cells left (${status.counts.waiting} waiting, ${status.counts.running} running)`, { path: path.join(out, 'worker-1.log'), fix: 'read the worker logs; run kd sweep again to continue' });
      }
      await new Promise((r) => setTimeout(r, 500));
      status = await sweepStatus(plan, redis);
    }
    const table = interrupted ? null : writeTable(out, plan);
    return { out, plan, submitted, status, table, interrupted };
  } finally {
    await stopWorkers(workers);
    redis.disconnect();
    await embedded?.stop();
  }
}

/** SIGTERM: a worker stops its run after the current step with a checkpoint and puts the job back. */
async function stopWorkers(workers: ChildProcess[]): Promise<void> {
  const exits = workers.filter((w) => w.exitCode === null && w.signalCode === null).map((w) => new Promise<void>((r) => {
    w.once('exit', () => r());
    w.kill('SIGTERM');
  }));
  const timer = new Promise<void>((r) => setTimeout(r, 30_000).unref());
  await Promise.race([Promise.all(exits), timer]);
  for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
}

/**
 * Save the plan as `<out>/sweep.json`, its paths (the sweep file, each cell's spec file, the model
 * folders cells `load:`) relative to `out`: a sweep folder committed or copied elsewhere reads the same.
 */
export function savePlan(out: string, plan: SweepPlan, redis: string | null): void {
  writeOut(path.join(out, 'sweep.json'), JSON.stringify({ ...movePaths(plan, (p) => path.relative(out, p) || '.'), redis }, null, 2) + '\n');
}

/** The sweep's plan as saved in its folder, its paths absolute again. */
export function readSweepFolder(out: string): SweepPlan & { redis: string | null } {
  const plan = readJson<SweepPlan & { redis: string | null }>(path.join(out, 'sweep.json'));
  if (!plan) throw new KdError('KD_SWEEP_INVALID', `${out} is not a sweep folder (no sweep.json)`, { path: out, fix: 'give --out the folder `kd sweep` wrote (default sweeps/<sweep name>), or the sweep file' });
  return { ...movePaths(plan, (p) => path.resolve(out, p)), redis: plan.redis };
}

function movePaths(plan: SweepPlan, move: (p: string) => string): SweepPlan {
  const cells = plan.cells.map((c) => ({ ...c, specFile: move(c.specFile), models: Object.fromEntries(Object.entries(c.models ?? {}).map(([hash, dir]) => [hash, move(dir)])) })); // no `models` in folders older than model shipping
  return { ...plan, file: move(plan.file), cells };
}

/** The table of the finished cells whose metrics are in `<out>/runs/` (folders marked as theirs: `collectedRun`). */
export function readTable(out: string, plan: SweepPlan): SweepTable {
  const byId = new Map(plan.cells.map((c) => [c.id, c]));
  return sweepTable(plan, (id) => {
    const dir = collectedRun(out, byId.get(id) as SweepPlan['cells'][number]);
    return dir ? readJson<CellMetrics>(path.join(dir, 'metrics.json')) : null;
  });
}

/** Read the finished cells' metrics from `<out>/runs/` and write table.md, table.csv, table.json and table.svg. */
export function writeTable(out: string, plan: SweepPlan): SweepTable {
  const t = readTable(out, plan);
  writeOut(path.join(out, 'table.md'), tableMarkdown(t));
  writeOut(path.join(out, 'table.csv'), tableCsv(t));
  writeOut(path.join(out, 'table.json'), JSON.stringify(t, null, 2) + '\n');
  writeOut(path.join(out, 'table.svg'), tableSvg(t));
  return t;
}

function makeFolder(dir: string): void {
  try {
    nodeStorage.mkdirp(dir); // the real errno on a read-only file system (Node's recursive mkdir says ENOENT)
  } catch (e) {
    throw storageError(e, dir, 'create the sweep folder');
  }
}

/** A file of the sweep folder, written whole (temp + rename) or not at all, its failure coded. */
function writeOut(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw storageError(e, file, 'write');
  }
}

/**
 * `kd sweep status` / `kd sweep table`: the sweep's Redis (the one given, the folder's running
 * private server, or the folder's data started for the query), its status, and the finished runs
 * copied into `<out>/runs/`.
 */
export async function withSweepRedis<T>(out: string, redisUrl: string | undefined, fn: (redis: ReturnType<typeof connection>, plan: SweepPlan) => Promise<T>, log?: (l: string) => void): Promise<T> {
  const plan = readSweepFolder(out);
  const url = redisUrl ?? plan.redis ?? undefined;
  let embedded: EmbeddedRedis | null = null;
  if (url) await probeRedis(url);
  const redis = connection(url ?? (embedded = await startEmbeddedRedis(path.join(out, 'redis'), { log })).url);
  try {
    return await fn(redis, plan);
  } finally {
    redis.disconnect();
    // Only a server this call started is stopped (one a running `kd sweep` uses is reused and kept).
    if (embedded && !embedded.reused) await embedded.stop();
  }
}

export { collectRuns, sweepStatus };
