import * as fs from 'fs';
import * as path from 'path';
import { peekCheckpoint } from '@tfkd/engine/node';
import { CELL_MARK, KEYS, connection, readSweepFolder, startEmbeddedRedis, writeTable } from '@tfkd/sweep';
import { runCommand } from './run';
import { STEPS, exited, lastJson, metricsOf, sweepFolder } from './__fixtures__/sweep-fixtures';

// Issue #18: `kd sweep` interrupted — Ctrl-C, then everything it started SIGKILLed — and run again
// continues where it was, on a real redis-server (its data in the sweep folder), through `kd` in child
// processes run from the TypeScript sources (__fixtures__/from-source.js).
jest.setTimeout(180_000);


// STEPS: 8 epochs of 64 steps, so that a signal lands between two epoch-end checkpoints (__fixtures__/sweep-fixtures.ts).
const { at, kd, start, until } = sweepFolder('kd-sweep-resume-', { 'steps.yaml': STEPS }, 'kd sweep output');

/** A process gone for good: no such pid, or a zombie nobody reaped yet. */
function gone(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

describe('kd sweep interrupted and run again continues where it was', () => {
  // 3 stacks, one local worker: cells run one after another (one finished, one interrupted by SIGINT,
  // one by SIGKILL).
  const SWEEP = `spec: steps.yaml
axes:
  stack:
    ce: [{ use: loss/cross-entropy }]
    ls: [{ use: loss/label-smoothing }]
    ls3: [{ use: loss/label-smoothing, with: { labelSmoothing: 0.3 } }]
baseline: { stack: ce }
`;
  const out = () => at('sweeps', 'again');
  const work = (id: string) => at('sweeps', 'again', 'work', 'runs', id);
  /** Cells copied into the sweep folder (finished). */
  const finished = () => (fs.existsSync(at('sweeps', 'again', 'runs')) ? fs.readdirSync(at('sweeps', 'again', 'runs')).filter((d) => fs.existsSync(at('sweeps', 'again', 'runs', d, 'metrics.json'))) : []);
  /** Cells running in the workers' folder with an epoch-end checkpoint (not finished). */
  const running = () =>
    fs.existsSync(at('sweeps', 'again', 'work', 'runs'))
      ? fs
          .readdirSync(at('sweeps', 'again', 'work', 'runs'))
          .filter((d) => d.endsWith('.incomplete') && fs.existsSync(at('sweeps', 'again', 'work', 'runs', d, 'checkpoint', 'checkpoint.json')))
          .map((d) => d.slice(0, -'.incomplete'.length))
      : [];
  const sweepProcess = (detached: boolean) => {
    // Its stderr is what until shows on a timeout.
    const child = start(['sweep', 'again.yaml', '--workers', '1', '--quiet'], { detached, stdout: 'pipe' });
    let stdout = '';
    child.stdout?.on('data', (d) => (stdout += String(d)));
    return { child, stdout: () => stdout };
  };
  const snapshot = (names: string[]) => new Map(names.map((n) => [n, { bytes: fs.readFileSync(at('sweeps', 'again', 'runs', n, 'metrics.json')), mtime: fs.statSync(at('sweeps', 'again', 'runs', n, 'metrics.json')).mtimeMs }]));

  it('after SIGINT, then SIGKILL of everything it started, the same command finishes the sweep: nothing rerun, each cell once, the uninterrupted table', async () => {
    fs.writeFileSync(at('again.yaml'), SWEEP);

    // 1. Ctrl-C (SIGINT to kd sweep) with one cell finished and one running past its first epoch.
    const first = sweepProcess(false);
    await until('a finished cell and a running one with a checkpoint', () => finished().length >= 1 && running().length >= 1);
    const stopped = running()[0];
    first.child.kill('SIGINT');
    await exited(first.child);
    expect(first.child.exitCode).toBe(130);
    expect(lastJson(first.stdout())).toMatchObject({ continue: 'kd sweep again.yaml' });
    // Its worker stopped the run after a step with a checkpoint (an interrupted run folder) and handed the cell back.
    const interrupted = metricsOf(work(stopped));
    expect(interrupted.status).toBe('interrupted');
    expect(interrupted.checkpoint?.step).toBeGreaterThan(0);
    const plan = readSweepFolder(out()); // its paths absolute again (sweep.json keeps them relative)
    const afterFirst = snapshot(finished());

    // 2. Run again; once one more cell finished and another is past its first epoch end, SIGKILL the
    // process group of kd sweep and every process it started (its worker and its private
    // redis-server run in groups of their own, so that a Ctrl-C reaches kd sweep only): a power cut.
    const second = sweepProcess(true);
    await until('one more finished cell and another running with a checkpoint', () => finished().length > afterFirst.size && running().some((id) => id !== stopped));
    const killed = running().find((id) => id !== stopped) as string;
    const pids = [...(JSON.parse(fs.readFileSync(path.join(out(), 'workers.json'), 'utf8')) as { pid: number }[]).map((w) => w.pid), (JSON.parse(fs.readFileSync(path.join(out(), 'redis', 'server.json'), 'utf8')) as { pid: number }).pid];
    for (const pid of [-(second.child.pid as number), ...pids]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await exited(second.child);
    await until('its worker and redis-server gone', () => pids.every(gone), 10_000);
    // Where the killed cell was: its last epoch-end checkpoint, on the workers' disk.
    const killedAt = peekCheckpoint(path.join(`${work(killed)}.incomplete`, 'checkpoint'));
    expect(killedAt?.step).toBeGreaterThan(0);
    expect(fs.existsSync(path.join(work(killed), 'metrics.json'))).toBe(false);
    const done = snapshot(finished());
    expect(done.size).toBeGreaterThan(afterFirst.size);

    // 3. The same command: Redis restarted on the folder's data, the killed cell handed back at once
    // (not after its 30 s lock), finished cells untouched, the rest resumed or run.
    const third = kd(['sweep', 'again.yaml', '--workers', '1']);
    expect(third.status).toBe(0);
    expect(third.stderr).toContain('1 cell left running by a previous kd sweep goes back to the queue');
    expect(lastJson(third.stdout).submitted).toMatchObject({ cells: 3, enqueued: 0 });
    expect(lastJson(third.stdout).status).toEqual({ done: 3, running: 0, failed: 0, waiting: 0, cancelled: 0, unqueued: 0 });
    for (const [name, before] of done) {
      expect(fs.readFileSync(at('sweeps', 'again', 'runs', name, 'metrics.json'))).toEqual(before.bytes);
      expect(fs.statSync(at('sweeps', 'again', 'runs', name, 'metrics.json')).mtimeMs).toBe(before.mtime);
    }
    // Each interrupted cell resumed from its checkpoint: the stop checkpoint of the SIGINT, the epoch-end one of the SIGKILL.
    expect(metricsOf(work(stopped))).toMatchObject({ status: 'completed', resumes: 1, resumedFrom: { step: interrupted.checkpoint?.step, ...interrupted.checkpoint?.next } });
    expect(metricsOf(work(killed))).toMatchObject({ status: 'completed', resumes: 1, resumedFrom: { step: killedAt?.step, ...killedAt?.next } });

    // Every cell completed exactly once (the store-once ledger in the sweep's Redis data) and is in the table once.
    const server = await startEmbeddedRedis(path.join(out(), 'redis'));
    const client = connection(server.url);
    try {
      expect((await client.lrange(KEYS.completions, 0, -1)).sort()).toEqual(plan.cells.map((c) => c.id).sort());
    } finally {
      client.disconnect();
      await server.stop();
    }
    type Table = { rows: { row: string; seeds: number[]; values: number[] }[] };
    const table = JSON.parse(fs.readFileSync(path.join(out(), 'table.json'), 'utf8')) as Table;
    expect(table.rows.map((r) => [r.row, r.seeds])).toEqual([['ce', [1]], ['ls', [1]], ['ls3', [1]]]);

    // The same cells never interrupted (each a `kd run`, which a sweep's cell is: see above), and their
    // table: equal to the interrupted sweep's, times aside, and so is each cell's metrics.
    for (const c of plan.cells) {
      const dir = at('sweeps', 'again-alone', 'runs', `${c.row}-seed${c.seed}`);
      const r = await runCommand(c.specFile, { set: c.sets, out: dir, cacheDir: at('alone-cache'), quiet: true, signals: false });
      expect(r.status).toBe('completed');
      // Marked as the cell's result, as collecting it from Redis marks it (the table reads only those).
      fs.writeFileSync(path.join(dir, CELL_MARK), JSON.stringify({ id: c.id }));
      expect(metricsOf(at('sweeps', 'again', 'runs', `${c.row}-seed${c.seed}`)).eval).toEqual(metricsOf(at('sweeps', 'again-alone', 'runs', `${c.row}-seed${c.seed}`)).eval);
    }
    writeTable(at('sweeps', 'again-alone'), plan);
    const timeless = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8'), (k, v) => (k === 'trainSecondsPerEpoch' || k === 'wallSeconds' ? undefined : v)) as Table;
    expect(timeless(path.join(out(), 'table.json'))).toEqual(timeless(at('sweeps', 'again-alone', 'table.json')));
  });
});
