import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { KEYS, QUEUE, type ReleaseJob } from './queue';

export interface CancelResult {
  /** Taken out of the queue (or out of the list a teacher job releases): they will not run. */
  cancelled: string[];
  /** Running now: left to finish (stop their worker to stop them; the run keeps its checkpoint). */
  running: string[];
  /** Finished already: their results stay. */
  done: string[];
}

/**
 * Take cells out of the queue: waiting (or failed) cell jobs are removed, cells waiting behind a
 * teacher are dropped from the job that would release them (a release left empty is removed with its
 * teacher job), and each is marked cancelled so
 * `kd sweep status` says so. Running and finished cells are left alone. A cell shared with another
 * sweep (same spec hash) is cancelled for both. Submitting the sweep again re-enqueues them.
 */
export async function cancelCells(cells: readonly { id: string }[], redis: Redis): Promise<CancelResult> {
  const queue = new Queue(QUEUE, { connection: redis });
  const out: CancelResult = { cancelled: [], running: [], done: [] };
  try {
    const ids = new Set(cells.map((c) => c.id));
    for (const r of await queue.getJobs(['waiting-children', 'waiting', 'delayed', 'prioritized'])) {
      if (r?.name !== 'release') continue;
      const data = r.data as ReleaseJob;
      const keep = data.cells.filter((c) => !ids.has(c.id));
      // A release left with no cell goes, and its teacher job with it (another sweep's cells wait on
      // their own release and teacher job; submitting this sweep again makes a new pair).
      if (keep.length === 0) await r.remove({ removeChildren: true });
      else if (keep.length !== data.cells.length) await r.updateData({ ...data, cells: keep });
    }
    for (const id of ids) {
      if (await redis.exists(KEYS.run(id))) {
        out.done.push(id);
        continue;
      }
      const state = await queue.getJobState(id);
      if (state === 'completed') {
        out.done.push(id);
        continue;
      }
      if (state !== 'unknown') {
        try {
          if (state === 'active') throw new Error('active');
          await (await queue.getJob(id))?.remove();
        } catch {
          // Taken by a worker between the two reads (a locked job cannot be removed): it runs.
          out.running.push(id);
          continue;
        }
      }
      await redis.sadd(KEYS.cancelled, id);
      out.cancelled.push(id);
    }
    return out;
  } finally {
    await queue.close();
  }
}
