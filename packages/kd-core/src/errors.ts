/**
 * Every user-facing failure is a KdError: a stable code (never reworded once published), a message
 * that says what went wrong, the spec path or file at fault, and the fix. The CLI prints all four
 * and exits non-zero; library callers can switch on `code`.
 */
export const ERROR_CODES = {
  KD_SPEC_INVALID: 'The run spec does not match the schema',
  KD_SPEC_PARSE: 'The run spec is not valid YAML/JSON',
  KD_PLUGIN_UNKNOWN: 'A `use:` id names no installed plugin',
  KD_PLUGIN_OPTIONS: "A plugin's `with:` options are invalid",
  KD_PLUGIN_DEPENDENCY: 'A plugin needs a role, tap or plugin that the spec does not provide',
  KD_PLUGIN_FAILED: 'A plugin threw inside a lifecycle hook',
  KD_PLUGIN_PACKAGE: 'A package listed in `packages:` could not be loaded',
  KD_PLUGIN_DUPLICATE: 'Two packages bind the same plugin id',
  KD_PLUGIN_COPY: 'A plugin package brings its own copy of kd-core or tfjs-core of another version (a warning)',
  KD_HOOK_ASYNC: 'A handler of a tensor hook returned a Promise',
  KD_TAP_UNKNOWN: 'A tap names a layer the model does not have',
  KD_SHAPE_MISMATCH: 'Two tensors that must match in shape do not',
  KD_MODEL_UNKNOWN: 'A model name is not in the zoo',
  KD_MODEL_LOAD: 'A saved model could not be loaded',
  KD_DATA_MISSING: 'A data folder or file does not exist',
  KD_DATA_CORRUPT: 'A data file is truncated or malformed',
  KD_BACKEND_UNAVAILABLE: 'The requested tfjs backend cannot be used here',
  KD_LOSS_NONFINITE: 'A loss term or gradient became NaN or infinite',
  KD_OUTPUT_WRITE: 'An output file could not be written',
  KD_OUTPUT_EXISTS: 'The output folder already holds a run (or other files) that this run would replace',
  KD_CHECKPOINT_INVALID: 'A checkpoint to resume from is missing, incomplete or of another format',
  KD_RESUME_MISMATCH: "A resumed run's spec, data or teacher differs from its checkpoint's",
  KD_INTERRUPTED: 'The run was stopped by a signal before anything resumable was written',
  KD_SWEEP_INVALID: 'One or more cells of a sweep are invalid; nothing was enqueued',
  KD_REDIS_MISSING: 'redis-server is not installed (needed by `kd sweep` without --redis)',
  KD_REDIS_UNAVAILABLE: 'The Redis server of a sweep cannot be reached',
  KD_INTERNAL: 'An invariant of the library was broken (a bug: please report it)',
  KD_SWEEP_FAILED: 'A sweep could not finish: cells failed three times, or no worker is left',
  KD_SWEEP_ROW: 'A sweep command names a row the sweep does not have',
  KD_OPTIMIZER_TERMS: 'The optimizer needs loss terms a phase does not have (DOT: a task loss and a distillation loss)',
  KD_TASK_MISMATCH: "A plugin, dataset or model does not support the run's `task:` (detection, segmentation, classification)",
} as const;

export type KdErrorCode = keyof typeof ERROR_CODES;

export interface KdErrorDetails {
  /** Spec path (`plugins[2].with.temperature`) or file path at fault. */
  path?: string;
  /** What the user should do about it. */
  fix?: string;
  /** The underlying error, if any. */
  cause?: unknown;
}

export class KdError extends Error {
  readonly code: KdErrorCode;
  readonly path?: string;
  readonly fix?: string;

  constructor(code: KdErrorCode, message: string, details: KdErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'KdError';
    this.code = code;
    this.path = details.path;
    this.fix = details.fix;
  }

  /** One human-readable block: `KD_TAP_UNKNOWN at plugins[1].with.pairs: ...\n  fix: ...` */
  format(): string {
    const where = this.path ? ` at ${this.path}` : '';
    const fix = this.fix ? `\n  fix: ${this.fix}` : '';
    return `${this.code}${where}: ${this.message}${fix}`;
  }
}

export function isKdError(e: unknown): e is KdError {
  return e instanceof KdError || (typeof e === 'object' && e !== null && (e as { name?: string }).name === 'KdError');
}

/**
 * A file-system failure (EACCES, EROFS, ENOSPC, …) as the coded error users get — never a raw errno
 * — with the fix its errno calls for. `what` is the verb (`write`, `create the staging folder`).
 */
export function storageError(e: unknown, where: string, what: string): KdError {
  if (e instanceof KdError) return e;
  const code = (e as { code?: string })?.code;
  const fix =
    code === 'ENOSPC' || code === 'EDQUOT'
      ? 'free space on that disk, or give --out a folder on another one'
      : code === 'EROFS'
        ? 'the file system is read-only: give --out a folder on a writable one'
        : code === 'EACCES' || code === 'EPERM'
          ? 'give --out a folder you may write (check its permissions, and that it is not immutable)'
          : 'check that the output folder is writable and the disk has room';
  return new KdError('KD_OUTPUT_WRITE', `could not ${what} ${where}: ${(e as Error)?.message ?? String(e)}`, { path: where, fix, cause: e });
}
