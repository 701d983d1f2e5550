import { type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Queue } from 'bullmq';
import { KEYS, QUEUE, connection, freePort, readSweepFolder, type SweepPlan } from '@tfkd/sweep';
import { runCommand } from './run';
import { plainEnv } from './__fixtures__/kd-child';
import { BASE, STEPS, embeddedRedis, exited, lastJson, metricsOf, sweepFolder } from './__fixtures__/sweep-fixtures';

// Issue #18: `kd sweep` on a real redis-server (Debian package redis-server; `.ci/run` installs it),
// through `kd` in child processes run from the TypeScript sources (__fixtures__/from-source.js).
jest.setTimeout(180_000);


// 2 stacks × 2 overrides × 2 seeds; the KD stack needs the teacher (trained once, a flow's child).
const GRID = `
spec: base.yaml
axes:
  stack:
    scratch: [{ use: loss/cross-entropy }]
    kd: [{ use: loss/cross-entropy, weight: 0.5 }, { use: loss/hinton-kd, weight: 0.5, with: { temperature: 4 } }]
  set:
    lr1: train.optimizer.lr=0.01
    lr2: train.optimizer.lr=0.003
  seed: [1, 2]
baseline: { stack: scratch }
`;

// BASE (behind a teacher) and STEPS (8 epochs, no teacher): __fixtures__/sweep-fixtures.ts.
const { at, kd, start, until } = sweepFolder('kd-sweep-', { 'base.yaml': BASE, 'grid.yaml': GRID, 'steps.yaml': STEPS });

describe('kd sweep on a private redis-server', () => {
  let plan: SweepPlan;
  const swept = new Map<string, Record<string, Record<string, number>>>();

  it('runs a 2 × 2 × 2 sweep with 2 local workers: every cell once, the teacher once, and the table', async () => {
    const r = kd(['sweep', 'grid.yaml', '--workers', '2', '--quiet']);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.status).toBe(0);
    const out = lastJson(r.stdout);
    expect(out.cells).toBe(8);
    // 8 cells, all behind the spec's teacher (a flow: the teacher job, and the release job that enqueues them).
    expect(out.submitted).toMatchObject({ cells: 8, enqueued: 10, done: 0, pending: 0, retried: 0 });
    expect(out.status).toEqual({ done: 8, running: 0, failed: 0, waiting: 0, cancelled: 0, unqueued: 0 });
    plan = readSweepFolder(at('sweeps', 'grid')); // its paths absolute again (sweep.json keeps them relative)
    expect(new Set(plan.cells.map((c) => c.id)).size).toBe(8);
    expect(Object.keys(plan.teachers)).toHaveLength(1);
    expect(Object.values(plan.teachers)[0].cells).toHaveLength(8);
    for (const c of plan.cells) swept.set(c.id, metricsOf(at('sweeps', 'grid', 'runs', `${c.row}-seed${c.seed}`)).eval);
    // The table: one row per (stack, set), 2 seeds each, KD rows paired with the scratch row of the same lr.
    const table = JSON.parse(fs.readFileSync(at('sweeps', 'grid', 'table.json'), 'utf8')) as { rows: { row: string; seeds: number[]; values: number[]; mean: number; diff: { baseline: string; n: number; mean: number } | null }[] };
    expect(table.rows.map((x) => x.row)).toEqual(['scratch-lr1', 'scratch-lr2', 'kd-lr1', 'kd-lr2']);
    for (const row of table.rows) {
      const cells = plan.cells.filter((c) => c.row === row.row);
      expect(row.seeds).toEqual([1, 2]);
      expect(row.values).toEqual(cells.map((c) => swept.get(c.id)?.student.accuracy));
      expect(row.mean).toBeCloseTo((row.values[0] + row.values[1]) / 2, 12);
    }
    const kd1 = table.rows[2];
    const base = plan.cells.filter((c) => c.row === 'scratch-lr1').map((c) => swept.get(c.id)?.student.accuracy as number);
    expect(kd1.diff).toMatchObject({ baseline: 'scratch-lr1', n: 2 });
    expect(kd1.diff?.mean).toBeCloseTo((kd1.values[0] - base[0] + kd1.values[1] - base[1]) / 2, 12);
    for (const f of ['table.md', 'table.csv', 'table.svg']) expect(fs.statSync(at('sweeps', 'grid', f)).size).toBeGreaterThan(200);
    expect(fs.readFileSync(at('sweeps', 'grid', 'table.md'), 'utf8')).toContain('| kd-lr1 | student | 1,2 |');
    // The teacher's record beside the runs: its evaluation after training equals the one every KD cell made of it before training.
    const key = Object.keys(plan.teachers)[0];
    const record = JSON.parse(fs.readFileSync(at('sweeps', 'grid', 'teachers', `${key}.json`), 'utf8')) as { eval: Record<string, number>; seconds: number };
    expect(record.seconds).toBeGreaterThan(0);
    // The same accuracy; the NLL by two routes (the teacher run's own evaluation, a cell's calibration metric) to 1e-5.
    for (const c of plan.cells.filter((x) => x.row.startsWith('kd'))) {
      expect(swept.get(c.id)?.teacher.accuracy).toBe(record.eval.accuracy);
      expect(swept.get(c.id)?.teacher.nll).toBeCloseTo(record.eval.nll, 5);
    }
  });

  it('gives each cell the metrics of the same run done alone with kd run', async () => {
    for (const c of plan.cells) {
      const r = await runCommand(path.relative(at(), c.specFile) === 'base.yaml' ? at('base.yaml') : c.specFile, {
        set: c.sets,
        out: at('alone', c.id),
        cacheDir: at('alone-cache'),
        quiet: true,
        signals: false,
      });
      expect(r.status).toBe('completed');
      expect(metricsOf(at('alone', c.id)).eval).toEqual(swept.get(c.id));
    }
  });

  it('resubmitting the finished sweep enqueues nothing', () => {
    const r = kd(['sweep', 'grid.yaml', '--workers', '2', '--quiet']);
    expect(r.status).toBe(0);
    expect(lastJson(r.stdout).submitted).toEqual({ sweep: plan.id, cells: 8, enqueued: 0, done: 8, pending: 0, retried: 0 });
    const status = kd(['sweep', 'status', 'grid.yaml', '--json']);
    expect(JSON.parse(status.stdout).counts).toEqual({ done: 8, running: 0, failed: 0, waiting: 0, cancelled: 0, unqueued: 0 });
  });

  it('refuses a sweep with invalid cells before anything is enqueued: one coded error per bad cell', () => {
    fs.writeFileSync(
      at('bad.yaml'),
      `spec: base.yaml
axes:
  stack:
    ok: [{ use: loss/cross-entropy }]
    typo: [{ use: loss/cross-entropy }, { use: loss/hinton-kdd }]
  set:
    fine: train.epochs=1
    broken: train.batchSize=-3
  seed: [1]
`,
    );
    const r = kd(['sweep', 'bad.yaml', '--workers', '1']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^error KD_SWEEP_INVALID at .*bad\.yaml: 3 of 4 cells of .* are invalid; nothing was enqueued/m);
    expect(r.stderr).toContain('cell spec=base stack=ok set=broken seed=1: KD_SPEC_INVALID at train.batchSize');
    expect(r.stderr).toContain('cell spec=base stack=typo set=fine seed=1: KD_PLUGIN_UNKNOWN at plugins[1].use');
    expect(r.stderr).toContain('cell spec=base stack=typo set=broken seed=1:');
    // Refused before Redis: no server was started, no worker either.
    expect(fs.existsSync(at('sweeps', 'bad', 'redis'))).toBe(false);
    expect(fs.existsSync(at('sweeps', 'bad', 'worker-1.log'))).toBe(false);
  });

  it('without redis-server on PATH: KD_REDIS_MISSING with the install line', () => {
    const r = kd(['sweep', 'grid.yaml', '--out', 'sweeps/no-redis'], { ...plainEnv, PATH: at('empty-bin') });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^error KD_REDIS_MISSING at redis-server: /m);
    expect(r.stderr).toContain('apt-get install -y redis-server');
  });

  it('an unreachable --redis: KD_REDIS_UNAVAILABLE before planning', async () => {
    const port = await freePort();
    const t0 = Date.now();
    const r = kd(['sweep', 'grid.yaml', '--redis', `redis://127.0.0.1:${port}`]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^error KD_REDIS_UNAVAILABLE at --redis: no Redis answers at redis://127.0.0.1:${port}`, 'm'));
    expect(r.stderr).not.toContain('planned');
    expect(Date.now() - t0).toBeLessThan(15_000);
  });
});

describe('kd worker on a shared Redis', () => {
  const redis = embeddedRedis(() => at('shared-redis'));

  it('two workers with separate working folders (two machines) run a sweep submitted with --redis', async () => {
    // A cache without the teacher: it is trained by one worker, not uploaded from here.
    const sub = kd(['sweep', 'grid.yaml', '--redis', redis.url, '--detach', '--out', 'sweeps/shared', '--cache-dir', 'submit-cache', '--quiet']);
    expect(sub.status).toBe(0);
    expect(lastJson(sub.stdout).submitted).toMatchObject({ cells: 8, enqueued: 10, done: 0 });
    const workers = ['machine-a', 'machine-b'].map((m) => start(['worker', '--redis', redis.url, '--dir', at(m)]));
    const client = connection(redis.url);
    try {
      await until('8 results in Redis', async () => (await client.llen(KEYS.completions)) >= 8);
      const table = kd(['sweep', 'table', '--out', 'sweeps/shared', '--redis', redis.url]);
      expect(table.status).toBe(0);
      const plan = JSON.parse(fs.readFileSync(at('sweeps', 'shared', 'sweep.json'), 'utf8')) as SweepPlan;
      // Same cells as the private-server sweep above, same results.
      for (const c of plan.cells) {
        expect(metricsOf(at('sweeps', 'shared', 'runs', `${c.row}-seed${c.seed}`)).eval).toEqual(metricsOf(at('sweeps', 'grid', 'runs', `${c.row}-seed${c.seed}`)).eval);
      }
      const completions = await client.lrange(KEYS.completions, 0, -1);
      expect([...completions].sort()).toEqual(plan.cells.map((c) => c.id).sort());
      // A third machine with the sweep file but not the submitter's folder: status and table plan the
      // file into a folder of their own and read the same cells from Redis.
      const status = kd(['sweep', 'status', 'grid.yaml', '--redis', redis.url, '--out', 'sweeps/elsewhere', '--json']);
      expect(status.status).toBe(0);
      expect(status.stderr).toContain('holds no plan of grid.yaml: planning it (nothing is enqueued)');
      expect(JSON.parse(status.stdout)).toMatchObject({ sweep: plan.id, counts: { done: 8, running: 0, waiting: 0, failed: 0 } });
      expect(kd(['sweep', 'table', 'grid.yaml', '--redis', redis.url, '--out', 'sweeps/elsewhere']).status).toBe(0);
      expect(fs.readFileSync(at('sweeps', 'elsewhere', 'table.md'), 'utf8')).toBe(fs.readFileSync(at('sweeps', 'shared', 'table.md'), 'utf8'));
      expect(await client.llen(KEYS.completions)).toBe(8);
      // Both machines worked; each ran its cells in its own folder; the teacher was trained once and
      // reached the other machine through Redis.
      const ran = (m: string) => (fs.existsSync(at(m, 'runs')) ? fs.readdirSync(at(m, 'runs')).filter((d) => d.startsWith('c-') && !d.endsWith('.incomplete')) : []);
      expect(ran('machine-a').length + ran('machine-b').length).toBe(8);
      expect(ran('machine-a').length).toBeGreaterThan(0);
      expect(ran('machine-b').length).toBeGreaterThan(0);
      const queue = new Queue(QUEUE, { connection: client });
      const teacherJobs = (await queue.getJobs(['completed'])).filter((j) => j.name === 'teacher');
      await queue.close();
      expect(teacherJobs).toHaveLength(1);
      expect(teacherJobs[0].returnvalue).toMatchObject({ trained: true });
    } finally {
      for (const w of workers) w.kill('SIGTERM');
      await Promise.all(workers.map(exited));
      client.disconnect();
    }
  });

  it('a worker SIGKILLed mid-run: another picks the stalled job up, resumes from the checkpoint, every cell once', async () => {
    // 2 epochs of 128 steps (batch 8): the kill lands after the first epoch-end checkpoint.
    fs.writeFileSync(at('long.yaml'), BASE.replace('train: { epochs: 1, batchSize: 64, maxBatches: 3,', 'train: { epochs: 2, batchSize: 8,').replace('limit: { train: 512', 'limit: { train: 1024'));
    fs.writeFileSync(at('kill.yaml'), 'spec: long.yaml\naxes: { seed: [1, 2] }\n');
    const sub = kd(['sweep', 'kill.yaml', '--redis', redis.url, '--detach', '--quiet']);
    expect(sub.status).toBe(0);
    const plan = JSON.parse(fs.readFileSync(at('sweeps', 'kill', 'sweep.json'), 'utf8')) as SweepPlan;
    const client = connection(redis.url);
    const before = await client.llen(KEYS.completions);
    const a = start(['worker', '--redis', redis.url, '--dir', at('local'), '--lock-ms', '1500', '--quiet']);
    let b: ChildProcess | null = null;
    try {
      const ckpt = (id: string) => fs.existsSync(at('local', 'runs', `${id}.incomplete`, 'checkpoint', 'checkpoint.json'));
      await until('a first checkpoint', () => plan.cells.some((c) => ckpt(c.id)));
      const killed = plan.cells.find((c) => ckpt(c.id)) as SweepPlan['cells'][number];
      a.kill('SIGKILL');
      await exited(a);
      // Another worker on the same machine (same working folder: the checkpoint is reachable).
      b = start(['worker', '--redis', redis.url, '--dir', at('local'), '--lock-ms', '1500', '--quiet']);
      await until('both cells stored', async () => (await client.llen(KEYS.completions)) >= before + 2, 150_000);
      await new Promise((r) => setTimeout(r, 1000));
      const completions = (await client.lrange(KEYS.completions, 0, -1)).filter((id) => plan.cells.some((c) => c.id === id)).sort();
      expect(completions).toEqual(plan.cells.map((c) => c.id).sort());
      const m = metricsOf(at('local', 'runs', killed.id));
      expect(m.resumes).toBe(1);
      // And the resumed cell is the uninterrupted run (same backend: bit for bit).
      await runCommand(at('long.yaml'), { set: killed.sets, out: at('alone-long'), cacheDir: at('alone-cache'), quiet: true, signals: false });
      expect(m.eval).toEqual(metricsOf(at('alone-long')).eval);
      const queue = new Queue(QUEUE, { connection: client });
      const job = await queue.getJob(killed.id);
      await queue.close();
      expect(await job?.getState()).toBe('completed');
    } finally {
      a.kill('SIGKILL');
      b?.kill('SIGTERM');
      await Promise.all([exited(a), ...(b ? [exited(b)] : [])]);
      client.disconnect();
    }
  });

  it('a worker SIGKILLed on one machine: one on another machine (no shared folder) resumes from the checkpoint that travelled through Redis', async () => {
    fs.writeFileSync(at('travel.yaml'), 'spec: steps.yaml\naxes: { seed: [7] }\n');
    const sub = kd(['sweep', 'travel.yaml', '--redis', redis.url, '--detach', '--quiet']);
    expect(sub.status).toBe(0);
    const cell = (JSON.parse(fs.readFileSync(at('sweeps', 'travel', 'sweep.json'), 'utf8')) as SweepPlan).cells[0];
    const client = connection(redis.url);
    const a = start(['worker', '--redis', redis.url, '--dir', at('machine-c'), '--lock-ms', '1500']);
    let b: ChildProcess | null = null;
    try {
      // Machine C ships each checkpoint of the cell it runs; killed after the first.
      await until('the first checkpoint in Redis', async () => Number(await client.hget(KEYS.checkpointMeta(cell.id), 'step')) > 0);
      a.kill('SIGKILL');
      await exited(a);
      const shipped = await client.hgetall(KEYS.checkpointMeta(cell.id));
      expect(shipped.worker).toBe(`${os.hostname()}:${a.pid}`);
      expect(Number(shipped.bytes)).toBeGreaterThan(0);
      // Machine D: its own folder, no checkpoint of the cell on its disk. BullMQ's stalled-job check
      // (every 1.5 s here) gives it the job once C's lock has run out.
      const bLog: string[] = [];
      b = start(['worker', '--redis', redis.url, '--dir', at('machine-d'), '--lock-ms', '1500']);
      b.stderr?.on('data', (d) => bLog.push(String(d)));
      const queue = new Queue(QUEUE, { connection: client });
      await until('the cell completed', async () => (await (await queue.getJob(cell.id))?.getState()) === 'completed');
      await queue.close();
      expect(bLog.join('')).toContain(`${cell.id}: resuming from the checkpoint fetched from Redis (written by ${shipped.worker}) at epoch ${shipped.epoch}, batch ${shipped.batchIndex} (step ${shipped.step})`);
      const m = metricsOf(at('machine-d', 'runs', cell.id));
      expect(m.resumes).toBe(1);
      expect(m.resumedFrom).toMatchObject({ epoch: Number(shipped.epoch), batchIndex: Number(shipped.batchIndex), step: Number(shipped.step) });
      expect(fs.readFileSync(at('machine-d', 'runs', cell.id, 'history.jsonl'), 'utf8').trim().split('\n')).toHaveLength(8);
      // Machine C never finished it; the checkpoint is gone from Redis once the cell completed.
      expect(fs.existsSync(at('machine-c', 'runs', cell.id, 'metrics.json'))).toBe(false);
      expect(await client.exists(KEYS.checkpoint(cell.id), KEYS.checkpointMeta(cell.id))).toBe(0);
      // The run C started and D finished is the uninterrupted run (same backend: bit for bit).
      await runCommand(at('steps.yaml'), { set: cell.sets, out: at('alone-travel'), cacheDir: at('alone-cache'), quiet: true, signals: false });
      expect(m.eval).toEqual(metricsOf(at('alone-travel')).eval);
    } finally {
      a.kill('SIGKILL');
      b?.kill('SIGTERM');
      await Promise.all([exited(a), ...(b ? [exited(b)] : [])]);
      client.disconnect();
    }
  });

  it('a worker that cannot write what it downloads fails the job with a coded error and its fix, which kd sweep reports', async () => {
    fs.writeFileSync(at('coded.yaml'), 'spec: base.yaml\naxes:\n  stack:\n    kd: [{ use: loss/cross-entropy, weight: 0.5 }, { use: loss/hinton-kd, weight: 0.5, with: { temperature: 4 } }]\n  seed: [9]\n');
    const sub = kd(['sweep', 'coded.yaml', '--redis', redis.url, '--detach', '--quiet', '--cache-dir', 'submit-cache']);
    // The teacher is in Redis already (trained by a worker above): the cell is enqueued directly.
    expect(lastJson(sub.stdout).submitted).toMatchObject({ cells: 1, enqueued: 1 });
    const cell = (JSON.parse(fs.readFileSync(at('sweeps', 'coded', 'sweep.json'), 'utf8')) as SweepPlan).cells[0];
    // Its teacher cache is a file: the teacher fetched from Redis cannot be written.
    fs.writeFileSync(at('not-a-folder'), '');
    const w = start(['worker', '--redis', redis.url, '--dir', at('machine-e'), '--cache-dir', at('not-a-folder'), '--lock-ms', '1500']);
    const client = connection(redis.url);
    const queue = new Queue(QUEUE, { connection: client });
    try {
      await until('the job failed three times', async () => (await (await queue.getJob(cell.id))?.getState()) === 'failed');
      const job = await queue.getJob(cell.id);
      expect(job?.attemptsMade).toBe(3);
      const coded = new RegExp(`^KD_OUTPUT_WRITE at ${at('not-a-folder', 'teachers')}/[0-9a-f]+: could not write tfkd:teacher:[0-9a-f]+ into \\S+: ENOTDIR[^\\n]*\\n  fix: a file stands where a folder is expected .*give --cache-dir another folder$`);
      expect(job?.failedReason).toMatch(coded);
      const status = JSON.parse(kd(['sweep', 'status', 'coded.yaml', '--redis', redis.url, '--json']).stdout) as { cells: { state: string; error: string }[] };
      expect(status.cells[0].state).toBe('failed');
      expect(status.cells[0].error).toMatch(coded);
      // Attached again, kd sweep retries it (three more attempts) and reports the coded cause.
      const r = kd(['sweep', 'coded.yaml', '--redis', redis.url, '--quiet']);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`^error KD_SWEEP_FAILED: cell kd seed 9 \\(${cell.id}\\) failed 3 times: KD_OUTPUT_WRITE at `, 'm'));
      expect(r.stderr).toContain('fix: a file stands where a folder is expected');
    } finally {
      await queue.close();
      w.kill('SIGTERM');
      await exited(w);
      client.disconnect();
    }
  });

  it('kd sweep --first puts its cells at the front of the queue, in sweep order, before cells another sweep left waiting', async () => {
    // No teacher: every cell is enqueued directly. One epoch of 64 steps each.
    fs.writeFileSync(at('order-base.yaml'), STEPS.replace('epochs: 8', 'epochs: 1'));
    fs.writeFileSync(at('order-a.yaml'), 'spec: order-base.yaml\naxes:\n  seed: [51, 52]\n');
    fs.writeFileSync(at('order-b.yaml'), 'spec: order-base.yaml\naxes:\n  seed: [61, 62, 63]\n');
    expect(lastJson(kd(['sweep', 'order-a.yaml', '--redis', redis.url, '--detach', '--quiet']).stdout).submitted).toMatchObject({ cells: 2, enqueued: 2 });
    expect(lastJson(kd(['sweep', 'order-b.yaml', '--redis', redis.url, '--detach', '--quiet', '--first']).stdout).submitted).toMatchObject({ cells: 3, enqueued: 3 });
    const ids = (name: string) => (JSON.parse(fs.readFileSync(at('sweeps', name, 'sweep.json'), 'utf8')) as SweepPlan).cells.map((c) => c.id);
    const expected = [...ids('order-b'), ...ids('order-a')];
    const client = connection(redis.url);
    const queue = new Queue(QUEUE, { connection: client });
    const w = start(['worker', '--redis', redis.url, '--dir', at('machine-order'), '--lock-ms', '1500']);
    try {
      await until('every cell done', async () => (await Promise.all(expected.map((id) => client.exists(KEYS.run(id))))).every(Boolean), 300_000);
      // One worker takes one cell at a time: the order it started them is the queue's order.
      const started = await Promise.all(expected.map(async (id) => ({ id, at: (await queue.getJob(id))?.processedOn ?? 0 })));
      expect([...started].sort((a, b) => a.at - b.at).map((x) => x.id)).toEqual(expected);
    } finally {
      await queue.close();
      w.kill('SIGTERM');
      await exited(w);
      client.disconnect();
    }
  }, 400_000);

  it('kd sweep cancel takes waiting cells out (also those behind a teacher); submitting again puts them back', async () => {
    // A teacher no worker has trained yet: the cells wait behind its job.
    fs.writeFileSync(
      at('cancel.yaml'),
      'spec: base.yaml\nset: [teacher.seed=21]\naxes:\n  stack:\n    scratch: [{ use: loss/cross-entropy }]\n    kd: [{ use: loss/cross-entropy, weight: 0.5 }, { use: loss/hinton-kd, weight: 0.5, with: { temperature: 4 } }]\n  seed: [21, 22]\n',
    );
    const sub = kd(['sweep', 'cancel.yaml', '--redis', redis.url, '--detach', '--quiet']);
    expect(lastJson(sub.stdout).submitted).toMatchObject({ cells: 4, enqueued: 6, done: 0 });
    const plan = JSON.parse(fs.readFileSync(at('sweeps', 'cancel', 'sweep.json'), 'utf8')) as SweepPlan;
    const kdCells = plan.cells.filter((c) => c.row === 'kd').map((c) => c.id);
    const bad = kd(['sweep', 'cancel', 'cancel.yaml', '--redis', redis.url, '--rows', 'kd,dkd']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^error KD_SWEEP_ROW at --rows: sweep cancel has no row "dkd"\n {2}fix: name rows of the sweep: scratch, kd$/m);
    const c = kd(['sweep', 'cancel', 'cancel.yaml', '--redis', redis.url, '--rows', 'kd', '--json']);
    expect(c.status).toBe(0);
    expect(lastJson(c.stdout)).toEqual({ sweep: plan.id, cancelled: 2, running: 0, done: 0 });
    const counts = () => JSON.parse(kd(['sweep', 'status', 'cancel.yaml', '--redis', redis.url, '--json']).stdout).counts;
    expect(counts()).toEqual({ done: 0, running: 0, failed: 0, waiting: 2, cancelled: 2, unqueued: 0 });
    const client = connection(redis.url);
    const queue = new Queue(QUEUE, { connection: client });
    const releaseHolds = async () =>
      (await queue.getJobs(['waiting-children', 'waiting'])).filter((j) => j?.name === 'release').flatMap((j) => (j!.data as { cells: { id: string }[] }).cells.map((x) => x.id)).sort();
    const scratchIds = plan.cells.filter((x) => x.row === 'scratch').map((x) => x.id).sort();
    expect(await releaseHolds()).toEqual(scratchIds);
    // Submitted again while the teacher still waits: the cancelled cells go back into the job that
    // releases them (not only counted as pending); a second cancel takes them out again.
    const back = kd(['sweep', 'cancel.yaml', '--redis', redis.url, '--detach', '--quiet']);
    expect(lastJson(back.stdout).submitted).toMatchObject({ cells: 4, enqueued: 2, pending: 2, done: 0 });
    expect(await releaseHolds()).toEqual(plan.cells.map((x) => x.id).sort());
    expect(counts()).toEqual({ done: 0, running: 0, failed: 0, waiting: 4, cancelled: 0, unqueued: 0 });
    // Every cell cancelled: the emptied release goes with its teacher job; submitted again, a new pair holds them all.
    expect(lastJson(kd(['sweep', 'cancel', 'cancel.yaml', '--redis', redis.url, '--json']).stdout)).toEqual({ sweep: plan.id, cancelled: 4, running: 0, done: 0 });
    expect(await releaseHolds()).toEqual([]);
    expect((await queue.getJobs(['waiting', 'waiting-children'])).filter((j) => j?.name === 'teacher')).toEqual([]);
    expect(lastJson(kd(['sweep', 'cancel.yaml', '--redis', redis.url, '--detach', '--quiet']).stdout).submitted).toMatchObject({ cells: 4, enqueued: 6, done: 0 });
    expect(await releaseHolds()).toEqual(plan.cells.map((x) => x.id).sort());
    expect(lastJson(kd(['sweep', 'cancel', 'cancel.yaml', '--redis', redis.url, '--rows', 'kd', '--json']).stdout)).toEqual({ sweep: plan.id, cancelled: 2, running: 0, done: 0 });
    expect(await releaseHolds()).toEqual(scratchIds);
    const w = start(['worker', '--redis', redis.url, '--dir', at('machine-f'), '--lock-ms', '1500']);
    try {
      // Every cell of the spec waits behind its teacher (the base spec names one). The teacher is
      // trained and its release job runs — and releases only the cells that were not cancelled.
      const scratch = plan.cells.filter((x) => x.row === 'scratch').map((x) => x.id);
      await until('scratch cells done', async () => (await Promise.all(scratch.map((id) => client.exists(KEYS.run(id))))).every(Boolean), 300_000);
      const release = (await queue.getJobs(['completed'])).find((j) => j?.name === 'release' && (j.data as { cells: { id: string }[] }).cells.some((x) => scratch.includes(x.id)));
      expect((release?.data as { cells: { id: string }[] }).cells.map((x) => x.id).sort()).toEqual([...scratch].sort());
      await new Promise((r) => setTimeout(r, 1000));
      for (const id of kdCells) expect(await queue.getJob(id)).toBeUndefined();
      expect(counts()).toEqual({ done: 2, running: 0, failed: 0, waiting: 0, cancelled: 2, unqueued: 0 });
      // Cancelling the whole sweep now: the finished cells stay.
      expect(lastJson(kd(['sweep', 'cancel', 'cancel.yaml', '--redis', redis.url, '--json']).stdout)).toEqual({ sweep: plan.id, cancelled: 2, running: 0, done: 2 });
      // Submitted again: the cancelled cells are queued (their teacher is in Redis now) and run.
      const again = kd(['sweep', 'cancel.yaml', '--redis', redis.url, '--detach', '--quiet']);
      expect(lastJson(again.stdout).submitted).toMatchObject({ cells: 4, enqueued: 2, done: 2 });
      await until('every cell done', async () => (await Promise.all(plan.cells.map((x) => client.exists(KEYS.run(x.id))))).every(Boolean), 300_000);
      expect(counts()).toEqual({ done: 4, running: 0, failed: 0, waiting: 0, cancelled: 0, unqueued: 0 });
    } finally {
      await queue.close();
      w.kill('SIGTERM');
      await exited(w);
      client.disconnect();
    }
  }, 700_000);

  it('kd sweep status of a sweep only planned: its cells are not queued (not waiting), with how to submit it', () => {
    fs.writeFileSync(at('planned.yaml'), 'spec: base.yaml\nset: [teacher.seed=41]\naxes:\n  stack:\n    scratch: [{ use: loss/cross-entropy }]\n  seed: [41, 42]\n');
    expect(kd(['sweep', 'planned.yaml', '--plan', '--quiet']).status).toBe(0);
    const text = kd(['sweep', 'status', 'planned.yaml', '--redis', redis.url]);
    expect(text.status).toBe(0);
    expect(text.stdout.split('\n').slice(0, 4)).toEqual([
      expect.stringMatching(/^sweep planned \(s-\w+\): 0 done, 0 running, 0 failed, 0 waiting, 2 not queued$/),
      `no cell of this sweep is queued in this Redis (planned only, or submitted to another Redis): submit it with kd sweep planned.yaml --redis ${redis.url} --detach`,
      '  not queued scratch seed 41',
      '  not queued scratch seed 42',
    ]);
    const json = JSON.parse(kd(['sweep', 'status', 'planned.yaml', '--redis', redis.url, '--json']).stdout);
    expect(json.counts).toEqual({ done: 0, running: 0, failed: 0, waiting: 0, cancelled: 0, unqueued: 2 });
    // --watch does not wait for cells no worker will ever see.
    expect(kd(['sweep', 'status', 'planned.yaml', '--redis', redis.url, '--watch', '--json']).status).toBe(0);
  });
});
