// The ids of a sweep's teacher and release jobs (one per teacher key its cells need), for the queue and its status.

/** The job that enqueues a sweep's cells once their teacher (cache key `key`) is trained. */
export const releaseJobId = (key: string, sweepId: string) => `r-${key}-${sweepId.slice(2, 10)}`;
/** The job that trains that teacher (the release job's child). */
export const teacherJobId = (key: string, sweepId: string) => `t-${key}-${sweepId.slice(2, 10)}`;
