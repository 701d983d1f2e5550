import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Queue } from 'bullmq';
import { cancelCells } from './cancel';
import type { PlannedCell, SweepPlan } from './plan';
import { KEYS, QUEUE, submitSweep, sweepStatus, type ReleaseJob } from './queue';
import { connection, startEmbeddedRedis, type EmbeddedRedis } from './redis';

// `kd sweep status` states of cells that have no job: waiting behind their teacher (held by the sweep's
// release job), cancelled, or not in this Redis at all (unqueued) — on a real redis-server, no worker.
jest.setTimeout(60_000);

let tmp: string;
let server: EmbeddedRedis;
let redis: ReturnType<typeof connection>;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-status-'));
  server = await startEmbeddedRedis(path.join(tmp, 'redis'));
  redis = connection(server.url);
});
afterAll(async () => {
  redis?.disconnect();
  await server?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const cell = (id: string, teachers: string[]): PlannedCell =>
  ({ row: teachers.length ? 'kd' : 'scratch', seed: 1, axes: {}, sets: [], specFile: path.join(tmp, `${id}.yaml`), id, specName: id, specText: 'seed: 1\n', teachers, models: {}, command: `kd run ${id}.yaml` });

/** A planned sweep (as `kd sweep FILE --plan` saves it): two cells behind a teacher no worker has trained, one without. */
const plan = (id: string, prefix: string): SweepPlan => ({
  name: 'status',
  file: path.join(tmp, 'status.yaml'),
  id,
  metric: 'accuracy',
  rows: [],
  cells: [cell(`c-${prefix}kd1`, ['t-untrained']), cell(`c-${prefix}kd2`, ['t-untrained']), cell(`c-${prefix}scratch`, [])],
  teachers: { 't-untrained': { cells: [`c-${prefix}kd1`, `c-${prefix}kd2`], cached: null } },
});

const states = async (p: SweepPlan) => Object.fromEntries((await sweepStatus(p, redis)).cells.map((c) => [c.id, c.state]));

describe('sweepStatus: waiting, cancelled or not queued', () => {
  it('a sweep planned but never submitted here is unqueued, not waiting, and has no cell left to run', async () => {
    const s = await sweepStatus(plan('s-0123456789', 'a'), redis);
    expect(s.counts).toEqual({ done: 0, running: 0, failed: 0, waiting: 0, cancelled: 0, unqueued: 3 });
    expect(s.cells.map((c) => c.state)).toEqual(['unqueued', 'unqueued', 'unqueued']);
    expect(s.eta).toBeNull();
  });

  it('submitted, cells behind an untrained teacher wait (held by the release job); a cancelled cell is cancelled', async () => {
    const p = plan('s-abcdef0123', 'b');
    expect(await submitSweep(p, redis)).toMatchObject({ cells: 3, enqueued: 5, done: 0, pending: 0 });
    const queue = new Queue(QUEUE, { connection: redis });
    try {
      // The cells behind the teacher have no job of their own: the release job holds them.
      expect(await queue.getJob('c-bkd1')).toBeUndefined();
      const release = await queue.getJob('r-t-untrained-abcdef01');
      expect((release?.data as ReleaseJob).cells.map((c) => c.id)).toEqual(['c-bkd1', 'c-bkd2']);
      expect((await sweepStatus(p, redis)).counts).toEqual({ done: 0, running: 0, failed: 0, waiting: 3, cancelled: 0, unqueued: 0 });

      expect((await cancelCells([{ id: 'c-bkd2' }], redis)).cancelled).toEqual(['c-bkd2']);
      expect((await sweepStatus(p, redis)).counts).toEqual({ done: 0, running: 0, failed: 0, waiting: 2, cancelled: 1, unqueued: 0 });
      expect(await states(p)).toEqual({ 'c-bkd1': 'waiting', 'c-bkd2': 'cancelled', 'c-bscratch': 'waiting' });

      // A job removed behind the sweep's back (not cancelled) leaves its cell in no queue.
      await (await queue.getJob('c-bscratch'))?.remove();
      expect(await states(p)).toEqual({ 'c-bkd1': 'waiting', 'c-bkd2': 'cancelled', 'c-bscratch': 'unqueued' });

      // Submitted again: the cancelled cell goes back into the release job, the removed one into the queue.
      expect(await submitSweep(p, redis)).toMatchObject({ cells: 3, enqueued: 2, pending: 1 });
      expect((await sweepStatus(p, redis)).counts).toEqual({ done: 0, running: 0, failed: 0, waiting: 3, cancelled: 0, unqueued: 0 });

      // A finished cell is done, whatever holds it.
      await redis.hset(KEYS.run('c-bkd1'), 'metrics.json', '{}');
      expect((await sweepStatus(p, redis)).counts).toEqual({ done: 1, running: 0, failed: 0, waiting: 2, cancelled: 0, unqueued: 0 });
    } finally {
      await queue.close();
    }
  });
});
