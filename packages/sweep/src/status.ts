// Where each cell of a sweep stands (`kd sweep status`): done, running, failed, waiting (queued or held
// behind its teacher), cancelled or not queued, with the sweep's ETA and the other sweeps' jobs before it.
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { releaseJobId, teacherJobId } from './job-ids';
import type { SweepPlan } from './plan';
import { KEYS, QUEUE, type ReleaseJob } from './queue';
import { mean } from './table';

/**
 * `waiting`: queued, or held by a release job of the sweep until its teacher is trained. `unqueued`:
 * none of these and not cancelled — not in this Redis (the sweep only planned, submitted to another
 * Redis, or its job removed): nothing will run it until the sweep is submitted here.
 */
export type CellState = 'done' | 'running' | 'failed' | 'waiting' | 'cancelled' | 'unqueued';

export interface SweepStatus {
  counts: Record<CellState, number>;
  cells: { id: string; state: CellState; progress?: { phase: string; epoch: number; epochs: number }; error?: string; attempts?: number }[];
  /**
   * Seconds of this sweep's work left: the sum over its cells left (waiting, running) of the mean
   * seconds of the finished cells of the same row (of all its finished cells for a row with none yet),
   * / the workers it can use (its running cells, or the connected workers if more, up to the cells
   * left); null before its first cell finishes. It starts after the `ahead` jobs.
   */
  eta: number | null;
  /**
   * Jobs of other sweeps queued to run before this sweep's next waiting job (one queue serves every
   * sweep, first in, first out): `eta` starts once they are taken.
   */
  ahead: number;
}

/**
 * Where each cell of a sweep stands. A cell with no job yet waits when a release job of this sweep
 * holds it (behind its teacher); otherwise it is `unqueued` (or `cancelled`, when `kd sweep cancel` took it out).
 */
export async function sweepStatus(plan: Pick<SweepPlan, 'cells' | 'id'>, redis: Redis): Promise<SweepStatus> {
  const queue = new Queue(QUEUE, { connection: redis });
  try {
    const counts: Record<CellState, number> = { done: 0, running: 0, failed: 0, waiting: 0, cancelled: 0, unqueued: 0 };
    const cells: SweepStatus['cells'] = [];
    // The release jobs before the cells: a release completes only once its cells are queued, so a
    // cell read afterwards with no job was not released by it (read the other way round, cells being
    // released at that moment would show as unqueued).
    const held = await heldCells(queue, plan);
    for (const id of [...new Set(plan.cells.map((c) => c.id))]) {
      let state: CellState = 'waiting';
      const entry: SweepStatus['cells'][number] = { id, state };
      if (await redis.exists(KEYS.run(id))) state = 'done';
      else {
        // The state first, then the job: a job read before a state it has just entered would show
        // that state with the attempts and error of the attempt before.
        const s = await queue.getJobState(id);
        const job = s === 'unknown' ? undefined : await queue.getJob(id);
        if (s === 'active') state = 'running';
        else if (s === 'failed') state = 'failed';
        else if (s === 'completed') state = 'done';
        else if (s === 'unknown') {
          const behind = held.get(id);
          state = (await redis.sismember(KEYS.cancelled, id)) ? 'cancelled' : behind === undefined ? 'unqueued' : behind.failed ? 'failed' : 'waiting';
          if (behind?.failed) entry.error = behind.failed;
        }
        if (job && typeof job.progress === 'object') entry.progress = job.progress as SweepStatus['cells'][number]['progress'];
        if (job?.failedReason) entry.error = job.failedReason;
        if (job) entry.attempts = job.attemptsMade;
      }
      entry.state = state;
      counts[state]++;
      cells.push(entry);
    }
    const left = counts.waiting + counts.running;
    const workers = left > 0 ? Math.min(left, Math.max(1, counts.running, await queue.getWorkersCount())) : 1;
    const work = await secondsLeft(plan, cells, redis);
    const eta = work === null ? null : work / workers;
    // The wait list in the order workers take it; this sweep's jobs: its cells and its teacher jobs.
    const mine = new Set([...cells.map((c) => c.id), ...new Set(plan.cells.flatMap((c) => c.teachers.map((k) => teacherJobId(k, plan.id))))]);
    const order = await queue.getRanges(['wait'], 0, -1, true);
    const next = order.findIndex((id) => mine.has(id));
    return { counts, cells, eta, ahead: next === -1 ? 0 : next };
  } finally {
    await queue.close();
  }
}

/**
 * Seconds of work in the cells left (`eta`): each one its row's mean of finished cells, so a sweep
 * whose rows differ in length (a DML cohort beside a scratch student) is not priced at one mean.
 */
async function secondsLeft(plan: Pick<SweepPlan, 'cells'>, cells: SweepStatus['cells'], redis: Redis): Promise<number | null> {
  const rowOf = new Map(plan.cells.map((c) => [c.id, c.row]));
  const secs = await redis.hmget(KEYS.seconds, ...cells.map((c) => c.id));
  const byRow = new Map<string, number[]>();
  cells.forEach((c, i) => {
    const v = secs[i];
    if (v === null) return;
    const row = rowOf.get(c.id) as string;
    byRow.set(row, [...(byRow.get(row) ?? []), Number(v)]);
  });
  const all = [...byRow.values()].flat();
  if (all.length === 0) return null;
  return cells.filter((c) => c.state === 'waiting' || c.state === 'running').reduce((sum, c) => sum + mean(byRow.get(rowOf.get(c.id) as string) ?? all), 0);
}

/**
 * The cells that the sweep's release jobs still hold behind a teacher (ids as `submitSweep` makes
 * them, one per teacher key its cells need), each with its teacher job's error when that job failed
 * (they then wait for nothing: `failed`, until the sweep is submitted again); a release completed or
 * failed holds none.
 */
async function heldCells(queue: Queue, plan: Pick<SweepPlan, 'cells' | 'id'>): Promise<Map<string, { failed: string | null }>> {
  const held = new Map<string, { failed: string | null }>();
  for (const key of new Set(plan.cells.flatMap((c) => c.teachers))) {
    const release = await queue.getJob(releaseJobId(key, plan.id));
    if (!release) continue;
    const state = await release.getState();
    if (state === 'completed' || state === 'failed') continue;
    const teacher = await queue.getJob(teacherJobId(key, plan.id));
    const failed = teacher && (await teacher.getState()) === 'failed' ? `teacher ${key} failed: ${teacher.failedReason}; submit the sweep again to retry it` : null;
    for (const c of (release.data as ReleaseJob).cells) held.set(c.id, { failed });
  }
  return held;
}
