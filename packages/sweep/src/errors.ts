import { KdError, isKdError, storageError, type KdErrorCode } from '@tfkd/kd-core';

/**
 * The flag that names a folder at fault, so a fix says which one to change: a worker's working
 * folder (`kd worker --dir`), its teacher cache (`--cache-dir`), or the sweep folder (`kd sweep --out`).
 */
export type FolderFlag = '--dir' | '--cache-dir' | '--out';

/**
 * A file-system failure of a worker or of the sweep folder as a coded error (`KD_OUTPUT_WRITE`, as
 * `storageError` gives a run folder's), with the fix its errno calls for, naming the right flag.
 */
export function folderError(e: unknown, where: string, what: string, flag: FolderFlag): KdError {
  if (isKdError(e)) return e as KdError;
  const base = storageError(e, where, what);
  const code = (e as { code?: string } | null)?.code;
  const fix =
    code === 'ENOSPC' || code === 'EDQUOT'
      ? `free space on that disk, or give ${flag} a folder on another one`
      : code === 'EROFS'
        ? `the file system is read-only: give ${flag} a folder on a writable one`
        : code === 'EACCES' || code === 'EPERM'
          ? `give ${flag} a folder this user may write (check its permissions)`
          : code === 'ENOTDIR' || code === 'EEXIST' || code === 'EISDIR'
            ? `a file stands where a folder is expected (or a folder where a file is) on the way to ${where}: remove it, or give ${flag} another folder`
            : `check that the folder given to ${flag} is writable and its disk has room`;
  return new KdError(base.code, base.message, { path: where, fix, cause: e });
}

/**
 * A Redis command that failed while moving a cell's inputs or outputs (a teacher, a checkpoint, a run
 * folder) as a coded error, `KD_REDIS_UNAVAILABLE`, with the fix its reply calls for (out of memory,
 * a read-only replica, a missing password, a key of another kind, persistence failing).
 */
export function redisError(e: unknown, key: string, what: string): KdError {
  if (isKdError(e)) return e as KdError;
  // A transaction refused as a whole (EXECABORT) says why in the errors of its commands.
  const inner = (e as { previousErrors?: Error[] } | null)?.previousErrors?.[0];
  const msg = inner ? inner.message : ((e as Error | null)?.message ?? String(e));
  const fix = /^OOM\b/.test(msg)
    ? "Redis is out of memory (its maxmemory): raise it (`redis-cli CONFIG SET maxmemory 4gb`), or free memory — finished sweeps' results (tfkd:run:*) can be deleted once their tables are written; lower `kd worker --checkpoint-max-mb` if checkpoints fill it; the job is retried"
    : /^READONLY\b/.test(msg)
      ? 'this Redis is a read-only replica: give --redis the primary'
      : /^(NOAUTH|WRONGPASS)\b/.test(msg)
        ? 'give the password in the URL: --redis redis://:password@host:port'
        : /^WRONGTYPE\b/.test(msg)
          ? `${key} holds a value of another kind (another program uses the tfkd: prefix on this Redis): delete it (redis-cli DEL ${key}), or give the sweep its own database (redis://host:port/1)`
          : /^MISCONF\b/.test(msg)
            ? "Redis cannot save its data (its disk is full or not writable): read the server's log and free its disk"
            : 'check that Redis is up and reachable from this machine (`redis-cli -u URL ping`); the job is retried';
  return new KdError('KD_REDIS_UNAVAILABLE', `could not ${what} ${key} in Redis: ${msg}`, { path: key, fix, cause: e });
}

/** What a stored folder is, for the error a malformed one gives. */
export type StoredKind = 'teacher' | 'model' | 'checkpoint' | 'run';

const MALFORMED: Record<StoredKind, { code: KdErrorCode; noun: string }> = {
  teacher: { code: 'KD_MODEL_LOAD', noun: 'the cached teacher' },
  model: { code: 'KD_MODEL_LOAD', noun: 'a saved model the cell loads' },
  checkpoint: { code: 'KD_CHECKPOINT_INVALID', noun: "the cell's run checkpoint" },
  run: { code: 'KD_SWEEP_FAILED', noun: "the cell's result" },
};

/** A folder stored in Redis that cannot be written back as it is (a file name outside the folder). */
export function malformedError(kind: StoredKind, key: string, why: string): KdError {
  const m = MALFORMED[kind];
  return new KdError(m.code, `${key} in Redis (${m.noun}) is malformed: ${why}`, {
    path: key,
    fix: `delete it (redis-cli DEL ${key}): ${kind === 'run' ? 'submit the sweep again to rerun the cell' : kind === 'teacher' ? 'the next job that needs it trains it again' : 'the cell then starts over'}`,
  });
}

/**
 * The error a failed job records. BullMQ keeps `message` only: a coded error is kept whole
 * (`KD_… at …: message` and its fix), as `kd` prints it.
 */
export function jobError(e: unknown): unknown {
  if (!isKdError(e)) return e;
  const coded = new Error((e as KdError).format());
  coded.stack = `${coded.message}\n${((e as Error).stack ?? '').split('\n').slice(1).join('\n')}`;
  return coded;
}
