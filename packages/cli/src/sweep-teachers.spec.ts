import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import { peekCheckpoint } from '@tfkd/engine/node';
import { KEYS, QUEUE, connection } from '@tfkd/sweep';
import { BASE, embeddedRedis, exited, lastJson, metricsOf, stepsSpec, sweepFolder } from './__fixtures__/sweep-fixtures';

// Sweep teacher jobs on a real redis-server, through `kd` in child processes run from the TypeScript
// sources (__fixtures__/from-source.js): the cells a teacher released go to the front of the queue; a
// failed teacher job shows its cells failed and is retried by submitting again; a worker stopped
// (SIGTERM) while training a teacher hands the job back with its checkpoint in Redis, and a worker on
// another machine resumes the teacher from it.
jest.setTimeout(180_000);


// BASE (sweep.spec.ts's): mlp students (hidden [16]), 1 epoch of 3 batches, behind a teacher of 1 epoch of 4 batches.
// No teacher: its cells are enqueued directly. One epoch of 64 steps.
const STEPS = stepsSpec(1);

// Worker logs, kept to explain a timeout (all workers), and each worker's own (startLogged).
const { at, kd, startLogged: start, until, planOf } = sweepFolder('kd-sweep-teachers-', { 'base.yaml': BASE, 'steps.yaml': STEPS });

describe('sweep teacher jobs on a redis-server shared by workers', () => {
  // A redis-server of its own for each test: what one test leaves in the queue is not another's.
  const redis = embeddedRedis((n) => at(`redis-${n}`), 'each');

  it('the cells a teacher released go to the front of the queue, in sweep order, before a sweep submitted after theirs', async () => {
    // Sweep T waits behind a teacher no worker has trained (a fresh teacher seed); sweep A, submitted
    // after it, needs none. Queue: T's teacher job, then A's cells. The worker takes the teacher first;
    // once it is trained, the release job is next (BullMQ puts a parent whose children are done at the
    // front) and puts T's cells ahead of A's — at the end of the queue they would come after A's.
    fs.writeFileSync(at('front-t.yaml'), 'spec: base.yaml\nset: [teacher.seed=71]\naxes:\n  seed: [71, 72, 73]\n');
    fs.writeFileSync(at('front-a.yaml'), 'spec: steps.yaml\naxes:\n  seed: [81, 82]\n');
    expect(lastJson(kd(['sweep', 'front-t.yaml', '--redis', redis.url, '--detach', '--quiet']).stdout).submitted).toEqual({ sweep: planOf('front-t').id, cells: 3, enqueued: 5, done: 0, pending: 0, retried: 0 });
    expect(lastJson(kd(['sweep', 'front-a.yaml', '--redis', redis.url, '--detach', '--quiet']).stdout).submitted).toEqual({ sweep: planOf('front-a').id, cells: 2, enqueued: 2, done: 0, pending: 0, retried: 0 });
    const t = planOf('front-t');
    const key = Object.keys(t.teachers)[0];
    expect(Object.keys(t.teachers)).toEqual([key]);
    const teacherId = `t-${key}-${t.id.slice(2, 10)}`;
    const releaseId = `r-${key}-${t.id.slice(2, 10)}`;
    const tIds = t.cells.map((c) => c.id);
    const aIds = planOf('front-a').cells.map((c) => c.id);
    const client = connection(redis.url);
    const queue = new Queue(QUEUE, { connection: client });
    let w: ReturnType<typeof start> | null = null;
    try {
      // The queue before any worker, next job first: the teacher job, then A's cells.
      expect((await queue.getWaiting()).map((j) => j.id)).toEqual([teacherId, ...aIds]);
      expect(await queue.getJobState(releaseId)).toBe('waiting-children');
      w = start(['worker', '--redis', redis.url, '--dir', at('machine-front'), '--lock-ms', '1500']);
      const all = [...tIds, ...aIds];
      await until('every cell done', async () => (await Promise.all(all.map((id) => client.exists(KEYS.run(id))))).every(Boolean), 300_000);
      // One worker takes one job at a time: the order it started them is the queue's order.
      const started = await Promise.all([teacherId, releaseId, ...all].map(async (id) => ({ id, at: (await queue.getJob(id))?.processedOn ?? 0 })));
      expect(started.every((s) => s.at > 0)).toBe(true);
      expect([...started].sort((a, b) => a.at - b.at).map((s) => s.id)).toEqual([teacherId, releaseId, ...tIds, ...aIds]);
      expect((await queue.getJob(releaseId))?.returnvalue).toEqual({ key, added: 3 });
    } finally {
      await queue.close();
      w?.child.kill('SIGTERM');
      if (w) await exited(w.child);
      client.disconnect();
    }
  }, 400_000);

  it('a failed teacher job: its cells show failed with its error; submitting the sweep again retries it, and every cell completes', async () => {
    fs.writeFileSync(at('failed.yaml'), 'spec: base.yaml\nset: [teacher.seed=72]\naxes:\n  seed: [74, 75]\n');
    const sub = kd(['sweep', 'failed.yaml', '--redis', redis.url, '--detach', '--quiet']);
    expect(sub.status).toBe(0);
    const plan = planOf('failed');
    expect(lastJson(sub.stdout).submitted).toEqual({ sweep: plan.id, cells: 2, enqueued: 4, done: 0, pending: 0, retried: 0 });
    const key = Object.keys(plan.teachers)[0];
    expect(Object.keys(plan.teachers)).toEqual([key]);
    const teacherId = `t-${key}-${plan.id.slice(2, 10)}`;
    const releaseId = `r-${key}-${plan.id.slice(2, 10)}`;
    const client = connection(redis.url);
    const queue = new Queue(QUEUE, { connection: client });
    const status = () => JSON.parse(kd(['sweep', 'status', 'failed.yaml', '--redis', redis.url, '--json']).stdout);
    try {
      // The cells are held by the release job: the teacher is the only job waiting. A worker of the
      // test's own fails it for good (no retry: UnrecoverableError) — as a teacher job failing three
      // times, or stalled too often (killed workers), ends.
      expect((await queue.getWaiting()).map((j) => j.id)).toEqual([teacherId]);
      const failingClient = connection(redis.url);
      const failing = new Worker(
        QUEUE,
        async (job) => {
          throw job.name === 'teacher' ? new UnrecoverableError('the test fails this teacher') : new Error(`the test's worker took ${job.id}`);
        },
        { connection: failingClient, concurrency: 1 },
      );
      try {
        await until('the teacher job failed', async () => (await queue.getJobState(teacherId)) === 'failed');
      } finally {
        await failing.close();
        failingClient.disconnect();
      }
      const teacherJob = await queue.getJob(teacherId);
      expect(teacherJob?.failedReason).toBe('the test fails this teacher');
      expect(teacherJob?.attemptsMade).toBe(1);
      // Its release waits for it for ever; its cells are failed, with the teacher's error and what to do.
      expect(await queue.getJobState(releaseId)).toBe('waiting-children');
      const error = `teacher ${key} failed: the test fails this teacher; submit the sweep again to retry it`;
      expect(status()).toEqual({
        sweep: plan.id,
        counts: { done: 0, running: 0, failed: 2, waiting: 0, cancelled: 0, unqueued: 0 },
        cells: plan.cells.map((c) => ({ id: c.id, state: 'failed', error })),
        eta: null,
        ahead: 0,
      });
      // Submitted again: the teacher job is retried (its cells stay in the release, pending).
      const again = kd(['sweep', 'failed.yaml', '--redis', redis.url, '--detach', '--quiet']);
      expect(again.status).toBe(0);
      expect(lastJson(again.stdout).submitted).toEqual({ sweep: plan.id, cells: 2, enqueued: 0, done: 0, pending: 2, retried: 1 });
      expect(await queue.getJobState(teacherId)).toBe('waiting');
      expect((await queue.getJob(teacherId))?.attemptsMade).toBe(0);
      expect(status()).toEqual({
        sweep: plan.id,
        counts: { done: 0, running: 0, failed: 0, waiting: 2, cancelled: 0, unqueued: 0 },
        cells: plan.cells.map((c) => ({ id: c.id, state: 'waiting' })),
        eta: null,
        ahead: 0,
      });
      const w = start(['worker', '--redis', redis.url, '--dir', at('machine-retry'), '--lock-ms', '1500']);
      try {
        await until('every cell done', async () => (await Promise.all(plan.cells.map((c) => client.exists(KEYS.run(c.id))))).every(Boolean), 300_000);
      } finally {
        w.child.kill('SIGTERM');
        await exited(w.child);
      }
      expect((await queue.getJob(teacherId))?.returnvalue).toEqual({ key, trained: true });
      expect((await queue.getJob(releaseId))?.returnvalue).toEqual({ key, added: 2 });
      expect(w.log.join('')).toContain(`teacher ${key}: training`);
      const done = status();
      expect(done.counts).toEqual({ done: 2, running: 0, failed: 0, waiting: 0, cancelled: 0, unqueued: 0 });
      expect(done.cells.map((c: { id: string; state: string }) => [c.id, c.state])).toEqual(plan.cells.map((c) => [c.id, 'done']));
      const table = kd(['sweep', 'table', '--out', 'sweeps/failed', '--redis', redis.url]);
      expect(table.status).toBe(0);
      for (const c of plan.cells) expect(metricsOf(at('sweeps', 'failed', 'runs', `${c.row}-seed${c.seed}`)).status).toBe('completed');
      const rows = (JSON.parse(fs.readFileSync(at('sweeps', 'failed', 'table.json'), 'utf8')) as { rows: { row: string; seeds: number[] }[] }).rows;
      expect(rows.map((r) => [r.row, r.seeds])).toEqual([[plan.cells[0].row, [74, 75]]]);
    } finally {
      await queue.close();
      client.disconnect();
    }
  }, 400_000);

  it('a worker stopped (SIGTERM) while training a teacher: it stops with the checkpoint, ships it to Redis, the job goes back, and a worker on another machine resumes it', async () => {
    // A teacher of 4 epochs of 128 steps, checkpointed at each epoch end: stopped after the first checkpoint.
    fs.writeFileSync(
      at('stop-base.yaml'),
      BASE.replace('seed: 1, train: { epochs: 1, batchSize: 64, maxBatches: 4,', 'seed: 73, train: { epochs: 4, batchSize: 8,').replace('limit: { train: 512', 'limit: { train: 1024'),
    );
    fs.writeFileSync(at('stop.yaml'), 'spec: stop-base.yaml\naxes:\n  seed: [76, 77]\n');
    const sub = kd(['sweep', 'stop.yaml', '--redis', redis.url, '--detach', '--quiet']);
    expect(sub.status).toBe(0);
    const plan = planOf('stop');
    expect(lastJson(sub.stdout).submitted).toEqual({ sweep: plan.id, cells: 2, enqueued: 4, done: 0, pending: 0, retried: 0 });
    const key = Object.keys(plan.teachers)[0];
    const teacherId = `t-${key}-${plan.id.slice(2, 10)}`;
    // kd worker's cache: --cache-dir, else $KD_CACHE_DIR (not in the children's environment), else <dir>/.kd-cache.
    const partial = at('machine-stop', '.kd-cache', 'teachers', `${key}.partial`);
    const client = connection(redis.url);
    const queue = new Queue(QUEUE, { connection: client });
    const a = start(['worker', '--redis', redis.url, '--dir', at('machine-stop'), '--lock-ms', '1500']);
    let b: ReturnType<typeof start> | null = null;
    try {
      const mine = path.join(partial, `${os.hostname()}-${a.child.pid}`);
      const peek = () => {
        try {
          return peekCheckpoint(mine);
        } catch {
          return null; // being written
        }
      };
      await until('the teacher checkpoint of the first epoch', () => peek() !== null);
      a.child.kill('SIGTERM');
      await exited(a.child);
      expect(a.child.exitCode).toBe(0);
      // The stop checkpoint: where the teacher stopped, after its first epoch and before its last.
      const stopped = peekCheckpoint(mine);
      expect(stopped).not.toBeNull();
      const next = (stopped as NonNullable<typeof stopped>).next;
      expect(next.epoch).toBeGreaterThanOrEqual(2);
      expect(next.epoch).toBeLessThanOrEqual(4);
      const prefix = `[worker ${os.hostname()}:${a.child.pid}] `;
      const aLines = a.log.join('').split('\n');
      expect(aLines).toContain(`${prefix}teacher ${key}: training`);
      expect(aLines).toContain(`${prefix}stopped before epoch ${next.epoch}, batch ${next.batchIndex + 1} (step ${(stopped as NonNullable<typeof stopped>).step})`);
      expect(aLines).toContain(`${prefix}teacher ${key}: stopped (stopped while training teacher 'teacher' (epoch ${next.epoch} of 4); its checkpoint is kept)`);
      expect(aLines).toContain(`${prefix}stopped`);
      expect(aLines.filter((l) => l.includes(' failed'))).toEqual([]);
      // Back in the queue, no attempt used; not cached, not in Redis; the cells still held.
      expect(await queue.getJobState(teacherId)).toBe('waiting');
      expect((await queue.getJob(teacherId))?.attemptsMade).toBe(0);
      expect(fs.existsSync(at('machine-stop', '.kd-cache', 'teachers', key, 'model.json'))).toBe(false);
      expect(await client.exists(KEYS.teacher(key))).toBe(0);
      expect(JSON.parse(kd(['sweep', 'status', 'stop.yaml', '--redis', redis.url, '--json']).stdout).counts).toEqual({ done: 0, running: 0, failed: 0, waiting: 2, cancelled: 0, unqueued: 0 });
      // Shipped to Redis: the stop checkpoint.
      expect(aLines).toContain(`${prefix}teacher ${key}: checkpoint at epoch ${next.epoch}, batch ${next.batchIndex} (step ${(stopped as NonNullable<typeof stopped>).step}) shipped to Redis`);
      expect(await client.hget(KEYS.checkpointMeta(`teacher-${key}`), 'step')).toBe(String((stopped as NonNullable<typeof stopped>).step));
      // A worker on another machine (a folder and cache of its own): it fetches that checkpoint and resumes the teacher from it.
      b = start(['worker', '--redis', redis.url, '--dir', at('machine-other'), '--lock-ms', '1500']);
      await until('every cell done', async () => (await Promise.all(plan.cells.map((c) => client.exists(KEYS.run(c.id))))).every(Boolean), 150_000);
      const bLines = b.log.join('').split('\n');
      const bPrefix = `[worker ${os.hostname()}:${b.child.pid}] `;
      const where = `epoch ${next.epoch}${next.batchIndex > 0 ? `, batch ${next.batchIndex + 1}` : ''}`;
      expect(bLines).toContain(`${bPrefix}teacher ${key}: checkpoint at epoch ${next.epoch}, batch ${next.batchIndex} (step ${(stopped as NonNullable<typeof stopped>).step}) fetched from Redis (written by ${os.hostname()}:${a.child.pid})`);
      expect(bLines).toContain(`${bPrefix}teacher 'teacher': resuming at ${where} from its checkpoint`);
      expect(bLines.filter((l) => l.startsWith(`${bPrefix}resuming at ${where} (step ${(stopped as NonNullable<typeof stopped>).step}) from a checkpoint of `))).toHaveLength(1);
      expect(bLines.filter((l) => l.includes(' failed'))).toEqual([]);
      expect((await queue.getJob(teacherId))?.returnvalue).toEqual({ key, trained: true });
      // Cached whole on B's machine, its checkpoints gone there and in Redis (A's stop checkpoint stays on A's disk).
      expect(fs.existsSync(at('machine-other', '.kd-cache', 'teachers', key, 'model.json'))).toBe(true);
      expect(fs.existsSync(at('machine-other', '.kd-cache', 'teachers', `${key}.partial`))).toBe(false);
      expect(await client.exists(KEYS.checkpoint(`teacher-${key}`), KEYS.checkpointMeta(`teacher-${key}`))).toBe(0);
      const status = JSON.parse(kd(['sweep', 'status', 'stop.yaml', '--redis', redis.url, '--json']).stdout);
      expect(status.counts).toEqual({ done: 2, running: 0, failed: 0, waiting: 0, cancelled: 0, unqueued: 0 });
    } finally {
      a.child.kill('SIGKILL');
      b?.child.kill('SIGTERM');
      await Promise.all([exited(a.child), ...(b ? [exited(b.child)] : [])]);
      await queue.close();
      client.disconnect();
    }
  }, 200_000);
});
