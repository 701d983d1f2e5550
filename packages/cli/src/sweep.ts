import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { filter } from 'rxjs';
import { KdError, type ObservedEvent } from '@tfkd/kd-core';
import {
  CHECKPOINT_MAX_MB,
  alive,
  cancelCells,
  collectRuns,
  connection,
  defaultSweepOut,
  loadSweepFile,
  probeRedis,
  runSweep,
  startWorker,
  sweepStatus,
  withSweepRedis,
  writeTable,
  type RunCell,
  type SweepOutcome,
  type SweepStatus,
} from '@tfkd/sweep';
import { SingleBar, Presets } from 'cli-progress';
import { defaultRegistry } from './modules';
import { runCommand } from './run';

/** How a `kd sweep` starts its local workers: this very CLI (`bin.js`, or the sources in tests), `worker`. */
export function workerCommand(): string[] {
  return [process.execPath, ...process.execArgv, process.argv[1], 'worker'];
}

/** A cell in a worker: exactly `kd run SPEC --out DIR [--resume DIR] --quiet`, progress to the job. */
export const runCell: RunCell = async (cell) => {
  const r = await runCommand(cell.specFile, {
    out: cell.outDir,
    cacheDir: cell.cacheDir,
    quiet: true,
    ...(cell.resume ? { resume: cell.outDir } : {}),
    observe: (bus, phase) =>
      bus.events$.pipe(filter((e: ObservedEvent) => e.hook === 'epochEnd')).subscribe((e) => {
        if (e.hook === 'epochEnd') cell.progress({ phase, epoch: e.payload.epoch, epochs: e.payload.epochs });
      }),
  });
  return { status: r.status };
};

const line = (s: SweepStatus) => {
  const eta = s.eta !== null && s.counts.waiting + s.counts.running > 0 ? `, ETA ${Math.round(s.eta)} s` : '';
  const ahead = s.ahead > 0 ? `${eta ? ' after' : ','} ${s.ahead} job${s.ahead === 1 ? '' : 's'} of other sweeps queued before it` : '';
  return `${s.counts.done} done, ${s.counts.running} running, ${s.counts.failed} failed, ${s.counts.waiting} waiting${s.counts.cancelled ? `, ${s.counts.cancelled} cancelled` : ''}${s.counts.unqueued ? `, ${s.counts.unqueued} not queued` : ''}${eta}${ahead}`;
};
/** This machine's teacher cache: --cache-dir, else $KD_CACHE_DIR, else .kd-cache. */
const cacheDirOf = (o: { cacheDir?: string }) => path.resolve(o.cacheDir ?? process.env.KD_CACHE_DIR ?? '.kd-cache');
/** A cell's state as `kd sweep status` lists it (`unqueued`: not in this Redis). */
const stateLabel = (state: SweepStatus['cells'][number]['state']) => (state === 'unqueued' ? 'not queued' : state);

export interface SweepCliOptions {
  redis?: string;
  workers?: string;
  out?: string;
  cacheDir?: string;
  detach?: boolean;
  first?: boolean;
  plan?: boolean;
  quiet?: boolean;
  lockMs?: string;
}

/** `kd sweep FILE`: plan, submit, run (local workers), table. Returns the exit code. */
export async function sweepCommand(file: string, o: SweepCliOptions): Promise<{ outcome: SweepOutcome; exitCode: number }> {
  const log = o.quiet ? () => undefined : (l: string) => process.stderr.write(`${l}\n`);
  const tty = Boolean(process.stderr.isTTY) && !process.env.CI && !o.quiet;
  let bar: SingleBar | null = null;
  let last = '';
  let stopRequested: () => void = () => undefined;
  const stop = new Promise<void>((r) => (stopRequested = r));
  const onSignal = () => {
    process.stderr.write('\nstopping: workers write a checkpoint and hand their cells back; run the same command again to continue\n');
    stopRequested();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const outcome = await runSweep(file, {
      registry: defaultRegistry,
      cacheDir: cacheDirOf(o),
      redis: o.redis,
      workers: o.workers !== undefined ? Number(o.workers) : undefined,
      out: o.out,
      detach: o.detach,
      first: o.first,
      planOnly: o.plan,
      workerCommand: workerCommand(),
      workerArgs: o.lockMs ? ['--lock-ms', o.lockMs] : [],
      log,
      stop,
      onStatus: (s) => {
        if (tty) {
          bar ??= new SingleBar({ format: 'sweep {bar} {value}/{total} cells | {status}', hideCursor: true, stream: process.stderr }, Presets.shades_classic);
          if (!bar.isActive) bar.start(s.cells.length, s.counts.done, { status: line(s) });
          bar.update(s.counts.done, { status: line(s) });
        } else if (!o.quiet && line(s) !== last) {
          last = line(s);
          process.stderr.write(`sweep: ${last}\n`);
        }
      },
    });
    (bar as SingleBar | null)?.stop();
    if (o.plan) {
      for (const c of outcome.plan.cells) process.stdout.write(`${c.id}  ${c.row} seed ${c.seed}: ${c.command}\n`);
      return { outcome, exitCode: 0 };
    }
    const failed = outcome.status?.cells.filter((c) => c.state === 'failed') ?? [];
    for (const f of failed) {
      const cell = outcome.plan.cells.find((c) => c.id === f.id);
      process.stderr.write(`error KD_SWEEP_FAILED: cell ${cell?.row} seed ${cell?.seed} (${f.id}) failed ${f.attempts ?? 3} times: ${f.error}\n`);
    }
    const summary = {
      sweep: outcome.plan.id,
      out: outcome.out,
      cells: outcome.plan.cells.length,
      ...(outcome.submitted ? { submitted: outcome.submitted } : {}),
      ...(outcome.status ? { status: outcome.status.counts } : {}),
      ...(outcome.table ? { table: path.join(outcome.out, 'table.md') } : {}),
      ...(outcome.interrupted ? { continue: `kd sweep ${file}${o.redis ? ` --redis ${o.redis}` : ''}` } : {}),
    };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return { outcome, exitCode: outcome.interrupted ? 130 : failed.length > 0 ? 2 : 0 };
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** The options `kd sweep status|table|cancel` share: where the sweep folder is, its Redis, and how to plan it when missing. */
export interface SweepQueryOptions {
  out?: string;
  redis?: string;
  cacheDir?: string;
  quiet?: boolean;
}

/**
 * The sweep folder of `kd sweep status|table|cancel [FILE] [--out DIR]`. A FILE whose folder is not
 * here (a machine other than the submitter's, a fresh clone) is planned into it first, as
 * `kd sweep FILE --plan` does: its cells' ids are what Redis knows them by.
 */
async function sweepFolder(file: string | undefined, o: SweepQueryOptions): Promise<string> {
  const out = path.resolve(o.out ?? (file ? defaultSweepOut(loadSweepFile(file).name) : '.'));
  if (file && !fs.existsSync(path.join(out, 'sweep.json'))) {
    if (!o.quiet) process.stderr.write(`sweep: ${path.relative('.', out) || '.'} holds no plan of ${file}: planning it (nothing is enqueued)\n`);
    await runSweep(file, { registry: defaultRegistry, cacheDir: cacheDirOf(o), redis: o.redis, out, planOnly: true, workerCommand: workerCommand() });
  }
  return out;
}

/**
 * `kd sweep status`: done / running / failed / waiting (cancelled, not queued), ETA; with --watch, until
 * no cell is left waiting or running (a cell not queued in this Redis is not waited for).
 */
export async function sweepStatusCommand(file: string | undefined, o: SweepQueryOptions & { json?: boolean; watch?: boolean }): Promise<string> {
  const out = await sweepFolder(file, o);
  return withSweepRedis(out, o.redis, async (redis, plan) => {
    let s = await sweepStatus(plan, redis);
    while (o.watch && s.counts.waiting + s.counts.running > 0) {
      process.stderr.write(`sweep: ${line(s)}\n`);
      await new Promise((r) => setTimeout(r, 2000));
      s = await sweepStatus(plan, redis);
    }
    if (o.json) return JSON.stringify({ sweep: plan.id, ...s });
    const byId = new Map(plan.cells.map((c) => [c.id, c]));
    const width = s.counts.unqueued ? 'not queued'.length : 7;
    const rows = s.cells.map((c) => {
      const cell = byId.get(c.id);
      const p = c.progress ? ` (${c.progress.phase} epoch ${c.progress.epoch}/${c.progress.epochs})` : '';
      return `  ${stateLabel(c.state).padEnd(width)} ${cell?.row} seed ${cell?.seed}${p}${c.error ? `: ${c.error}` : ''}`;
    });
    // Nothing of the sweep in this Redis: planned only (--plan), or submitted to another Redis.
    const submit = `kd sweep ${file ?? 'FILE'}${o.out ? ` --out ${o.out}` : ''} --redis ${o.redis ?? 'URL'} --detach`;
    const hint = s.cells.length > 0 && s.counts.unqueued === s.cells.length ? [`no cell of this sweep is queued in this Redis (planned only, or submitted to another Redis): submit it with ${submit}`] : [];
    return [`sweep ${plan.name} (${plan.id}): ${line(s)}`, ...hint, ...rows].join('\n');
  });
}

/** `kd sweep table`: finished runs copied from Redis into `<out>/runs/`, then table.{md,csv,json,svg}. */
export async function sweepTableCommand(file: string | undefined, o: SweepQueryOptions & { offline?: boolean }): Promise<string> {
  const out = await sweepFolder(file, o);
  const write = async () => {
    const { readSweepFolder } = await import('@tfkd/sweep');
    return writeTable(out, readSweepFolder(out));
  };
  if (!o.offline) await withSweepRedis(out, o.redis, (redis, plan) => collectRuns(plan, redis, out));
  await write();
  return (await import('fs')).readFileSync(path.join(out, 'table.md'), 'utf8').trimEnd();
}

/**
 * `kd sweep cancel [FILE] [--rows a,b]`: take the sweep's cells (or those rows' cells) out of the
 * queue — waiting ones are removed, running ones finish, finished ones keep their results. Running
 * `kd sweep FILE` again puts cancelled cells back.
 */
export async function sweepCancelCommand(file: string | undefined, o: SweepQueryOptions & { rows?: string; json?: boolean }): Promise<string> {
  const out = await sweepFolder(file, o);
  return withSweepRedis(out, o.redis, async (redis, plan) => {
    const wanted = o.rows ? o.rows.split(',').map((r) => r.trim()).filter(Boolean) : null;
    if (wanted) {
      const rows = [...new Set(plan.cells.map((c) => c.row))];
      const unknown = wanted.filter((r) => !rows.includes(r));
      if (unknown.length) {
        throw new KdError('KD_SWEEP_ROW', `sweep ${plan.name} has no row ${unknown.map((r) => `"${r}"`).join(', ')}`, { path: '--rows', fix: `name rows of the sweep: ${rows.join(', ')}` });
      }
    }
    const cells = plan.cells.filter((c) => !wanted || wanted.includes(c.row));
    const r = await cancelCells(cells, redis);
    if (o.json) return JSON.stringify({ sweep: plan.id, cancelled: r.cancelled.length, running: r.running.length, done: r.done.length });
    const name = (id: string) => {
      const c = plan.cells.find((x) => x.id === id);
      return `${c?.row} seed ${c?.seed}`;
    };
    return [
      `sweep ${plan.name} (${plan.id}): ${r.cancelled.length} cancelled, ${r.running.length} running (left to finish), ${r.done.length} done (kept)`,
      ...r.cancelled.map((id) => `  cancelled ${name(id)}`),
      ...r.running.map((id) => `  running   ${name(id)}`),
    ].join('\n');
  });
}

/** Whether the process `pid` (the `kd sweep` that started this worker) is gone: dead, or dead and not yet reaped. */
function parentGone(pid: number): boolean {
  if (!fs.existsSync('/proc/self/stat')) return !alive(pid);
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/**
 * `kd worker --redis URL`: take sweep jobs until SIGTERM/SIGINT (a run in progress stops with a
 * checkpoint and its cell goes back to the queue). Started by `kd sweep` (`TFKD_SWEEP_PARENT`), it also
 * stops so when that `kd sweep` is gone.
 */
export async function workerMain(o: { redis: string; dir?: string; cacheDir?: string; lockMs?: string; checkpointMaxMb?: string; quiet?: boolean }): Promise<number> {
  await probeRedis(o.redis);
  const log = o.quiet ? () => undefined : (l: string) => process.stderr.write(`[worker ${os.hostname()}:${process.pid}] ${l}\n`);
  const maxMb = o.checkpointMaxMb !== undefined ? Number(o.checkpointMaxMb) : CHECKPOINT_MAX_MB;
  if (!Number.isFinite(maxMb) || maxMb < 0) {
    throw new KdError('KD_SPEC_INVALID', `--checkpoint-max-mb ${o.checkpointMaxMb} is not a size in MB`, { path: '--checkpoint-max-mb', fix: `give a number of megabytes (default ${CHECKPOINT_MAX_MB}; 0 keeps checkpoints on this machine)` });
  }
  const redis = connection(o.redis);
  let stopping = false;
  const worker = startWorker({
    connection: redis,
    dir: o.dir ?? '.kd-worker',
    cacheDir: o.cacheDir ?? process.env.KD_CACHE_DIR,
    registry: defaultRegistry,
    runCell,
    lockMs: o.lockMs ? Number(o.lockMs) : undefined,
    checkpointMaxBytes: Math.round(maxMb * 2 ** 20),
    shouldStop: () => stopping,
    log,
  });
  worker.on('failed', (job, err) => log(`${job?.id} failed (attempt ${job?.attemptsMade}): ${err.message}`));
  worker.on('completed', (job) => log(`${job.id} completed`));
  // e.g. a lock renewal racing a job just handed back: logged, not thrown.
  worker.on('error', (e) => log(`warning: ${e.message}`));
  log(`joined ${o.redis}`);
  const parent = Number(process.env.TFKD_SWEEP_PARENT);
  let watch: NodeJS.Timeout | null = null;
  if (Number.isInteger(parent) && parent > 0) {
    watch = setInterval(() => {
      if (!parentGone(parent)) return;
      clearInterval(watch as NodeJS.Timeout);
      log(`the kd sweep that started this worker (pid ${parent}) is gone: stopping`);
      // As a SIGTERM does: the run in progress stops after its step with a checkpoint (run.ts listens for it).
      process.kill(process.pid, 'SIGTERM');
    }, 1000);
    watch.unref();
  }
  await new Promise<void>((resolve) => {
    const done = () => {
      stopping = true;
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      resolve();
    };
    process.on('SIGINT', done);
    process.on('SIGTERM', done);
  });
  if (watch) clearInterval(watch);
  await worker.close();
  redis.disconnect();
  log('stopped');
  return 0;
}
