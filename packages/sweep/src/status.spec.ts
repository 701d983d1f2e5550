import { Queue, Worker } from 'bullmq';
import { cancelCells } from './cancel';
import type { PlannedCell, SweepPlan } from './plan';
import { KEYS, QUEUE, submitSweep, type ReleaseJob } from './queue';
import { sweepStatus } from './status';
import { redisServerFixture } from './__fixtures__/redis-server';
import { connection } from './redis';

// `kd sweep status` states of cells that have no job: waiting behind their teacher (held by the sweep's
// release job), cancelled, or not in this Redis at all (unqueued) — on a real redis-server, no worker.
jest.setTimeout(60_000);

const fixture = redisServerFixture('kd-status-');
const at = fixture.at;
let redis: ReturnType<typeof connection>;
beforeAll(() => void (redis = fixture.redis()));

const cell = (id: string, teachers: string[]): PlannedCell =>
  ({ row: teachers.length ? 'kd' : 'scratch', seed: 1, axes: {}, sets: [], specFile: at(`${id}.yaml`), id, specName: id, specText: 'seed: 1\n', teachers, models: {}, command: `kd run ${id}.yaml` });

/** A planned sweep (as `kd sweep FILE --plan` saves it): two cells behind a teacher no worker has trained, one without. */
const plan = (id: string, prefix: string): SweepPlan => ({
  name: 'status',
  file: at('status.yaml'),
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

  it('ahead: the jobs of other sweeps queued before a sweep\'s next job; the ETA prices each cell left at its row\'s mean and divides by the connected workers', async () => {
    const queue = new Queue(QUEUE, { connection: redis });
    try {
      await queue.obliterate({ force: true });
      const first = plan('s-1111111111', 'd');
      const second = plan('s-2222222222', 'e');
      await submitSweep(first, redis);
      await submitSweep(second, redis);
      // In the order workers take them: first's scratch cell and teacher job, then second's.
      expect(await queue.getRanges(['wait'], 0, -1, true)).toEqual(['c-dscratch', 't-t-untrained-11111111', 'c-escratch', 't-t-untrained-22222222']);
      expect((await sweepStatus(first, redis)).ahead).toBe(0);
      expect((await sweepStatus(second, redis)).ahead).toBe(2);
      // Submitted with --first, second's waiting jobs go before first's.
      await (await queue.getJob('c-escratch'))?.remove();
      await submitSweep(second, redis, { first: true });
      expect((await sweepStatus(second, redis)).ahead).toBe(0);
      expect((await sweepStatus(first, redis)).ahead).toBe(1);
      // One of second's cells finished in 30 s, two left, no worker connected: 30 × 2 / 1 = 60 s; with
      // two workers connected (idle, not started), 30 × 2 / 2 = 30 s.
      await redis.hset(KEYS.seconds, 'c-ekd1', '30');
      await redis.hset(KEYS.run('c-ekd1'), 'metrics.json', '{}');
      const s1 = await sweepStatus(second, redis);
      expect([s1.counts.done, s1.counts.waiting, s1.eta]).toEqual([1, 2, 60]);
      const clients = [connection(fixture.url()), connection(fixture.url())];
      const workers = clients.map((c) => new Worker(QUEUE, async () => undefined, { connection: c, autorun: false }));
      try {
        await Promise.all(workers.map((w) => w.waitUntilReady()));
        expect(await queue.getWorkersCount()).toBe(2);
        expect((await sweepStatus(second, redis)).eta).toBe(30);
      } finally {
        await Promise.all(workers.map((w) => w.close(true)));
        for (const c of clients) c.disconnect();
      }
      // Each cell left is priced at its own row's mean: the scratch cell finished in 10 s, the kd cell
      // left costs the kd row's 30 s (not the mean of all finished cells, 20 s).
      await redis.hset(KEYS.seconds, 'c-escratch', '10');
      await redis.hset(KEYS.run('c-escratch'), 'metrics.json', '{}');
      const s2 = await sweepStatus(second, redis);
      expect([s2.counts.done, s2.counts.waiting, s2.eta]).toEqual([2, 1, 30]);
    } finally {
      await queue.close();
    }
  });
});
