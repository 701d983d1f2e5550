import * as fs from 'fs';
import * as path from 'path';
import { nodeStorage } from '@tfkd/engine/node';
import { KdError, storageError } from '@tfkd/kd-core';

/** Write a file atomically: temp file in the same folder, fsync, rename. */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const fd = fs.openSync(tmp, 'w');
    try {
      fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      // the write's own error is the one to report
    }
    throw storageError(e, file, 'write');
  }
}

/** Suffix of the staging folder beside an output folder: `runs/kd` is written as `runs/kd.incomplete`. */
export const INCOMPLETE_SUFFIX = '.incomplete';
const OWNER_FILE = 'owner.json';
export const CHECKPOINT_DIR = 'checkpoint';

/** The staging folder of an output folder (absolute). */
export function stagingFolderOf(target: string): string {
  return `${path.resolve(target)}${INCOMPLETE_SUFFIX}`;
}

/** The output folder a staging folder belongs to (absolute); a path without the suffix is returned resolved. */
export function targetOf(dir: string): string {
  const abs = path.resolve(dir);
  return abs.endsWith(INCOMPLETE_SUFFIX) ? abs.slice(0, -INCOMPLETE_SUFFIX.length) : abs;
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether a folder holds a checkpoint (whole, or its `.old` copy after a crash between renames). */
function holdsCheckpoint(staging: string): boolean {
  const dir = path.join(staging, CHECKPOINT_DIR);
  return fs.existsSync(path.join(dir, 'checkpoint.json')) || fs.existsSync(path.join(`${dir}.old`, 'checkpoint.json'));
}

/**
 * Why `target` cannot be staged now, or null: another live process owns its staging folder, or the
 * folder holds the checkpoint of an interrupted run that this run does not resume. Checked before a
 * run is prepared (so it fails fast) and again when the staging folder is taken.
 */
export function stagingConflict(target: string, opts: { resumeFrom?: string; resumeTarget?: string; command?: string } = {}): KdError | null {
  const staging = stagingFolderOf(target);
  if (!fs.existsSync(staging)) return null;
  const owner = readOwner(path.join(staging, OWNER_FILE));
  if (owner && alive(owner.pid)) return ownedByOther(staging, owner);
  const ckpt = path.join(staging, CHECKPOINT_DIR);
  const keep = opts.resumeFrom !== undefined && [ckpt, `${ckpt}.old`].includes(path.resolve(opts.resumeFrom));
  const ours = opts.resumeTarget !== undefined && targetOf(opts.resumeTarget) === path.resolve(target);
  if (holdsCheckpoint(staging) && !keep && !ours) {
    return new KdError('KD_OUTPUT_WRITE', `${staging} holds the checkpoint of an interrupted run`, {
      path: staging,
      fix: `continue it with \`${opts.command ?? 'kd run SPEC'} --resume ${staging}\`, or delete that folder to start over`,
    });
  }
  return null;
}

/**
 * Why `target` may not be written: it already exists (a finished run, an interrupted one, or anything
 * else) and neither `overwrite` nor a resume of that very folder allows it. A re-run with a changed flag
 * is the usual way a result is lost, so replacing one is explicit. Checked before anything is planned.
 */
export function existingOutput(target: string, opts: { overwrite?: boolean; resumeTarget?: string; command?: string } = {}): KdError | null {
  const abs = path.resolve(target);
  if (opts.overwrite || !fs.existsSync(abs)) return null;
  if (opts.resumeTarget !== undefined && targetOf(opts.resumeTarget) === abs) return null;
  let status: string | null = null;
  let finishedAt = '';
  try {
    const m = JSON.parse(fs.readFileSync(path.join(abs, 'metrics.json'), 'utf8')) as { status?: string; finishedAt?: string };
    status = m.status ?? null;
    finishedAt = m.finishedAt ? `, finished ${m.finishedAt}` : '';
  } catch {
    status = null;
  }
  const command = opts.command ?? 'kd run SPEC';
  if (status === 'interrupted') {
    return new KdError('KD_OUTPUT_EXISTS', `${abs} holds an interrupted run`, {
      path: abs,
      fix: `continue it with \`${command} --resume ${target}\`, replace it with --overwrite, or give another --out`,
    });
  }
  const what = status === 'completed' ? `a finished run (metrics.json status completed${finishedAt})` : fs.statSync(abs).isDirectory() ? 'files that are not a finished run' : 'a file';
  return new KdError('KD_OUTPUT_EXISTS', `${abs} already holds ${what}; this run would replace it`, {
    path: abs,
    fix: 'give another --out, or add --overwrite to replace it (only once the new run has completed)',
  });
}


type Owner = { pid: number; startedAt: string };

function readText(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

function parseOwner(raw: string | null): Owner | null {
  try {
    return raw === null ? null : (JSON.parse(raw) as Owner);
  } catch {
    return null;
  }
}

function readOwner(file: string): Owner | null {
  return parseOwner(readText(file));
}

function ownedByOther(staging: string, owner: Owner | null): KdError {
  const who = owner ? `another kd process (pid ${owner.pid}, started ${owner.startedAt})` : 'another kd process';
  return new KdError('KD_OUTPUT_WRITE', `${who} is writing ${staging}`, {
    path: staging,
    fix: 'wait for it to finish (or stop it), or give --out another folder',
  });
}

const TOMBSTONE_STALE_MS = 10_000;

/** Runs an exclusive create (`link`, a `wx` write); false if the name already existed. */
function createdExclusively(create: () => void): boolean {
  try {
    create();
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
}

/** Creates `file` holding our pid if no such name exists; whether it did. */
function createExclusive(file: string): boolean {
  return createdExclusively(() => fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx' }));
}

/**
 * Makes this process the owner of a staging folder, or throws KD_OUTPUT_WRITE. `owner.json` is
 * created by `link(2)` of a file already holding our pid, which fails if the name exists: of any
 * number of processes racing for a folder, exactly one gets it, and nobody ever reads a half-written
 * owner. A dead owner's file is taken over under a per-claim tombstone (`owner.json.takeover-<pid>-<t>`,
 * created exclusively), re-read before it is removed, so two processes that both found the same dead
 * owner cannot both take over (the later one finds the new, live owner).
 */
export function claimOwnership(staging: string): void {
  const file = path.join(staging, OWNER_FILE);
  const mine: Owner = { pid: process.pid, startedAt: new Date().toISOString() };
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(mine) + '\n');
  const link = (): boolean => createdExclusively(() => fs.linkSync(tmp, file));
  try {
    if (link()) return;
    // One read: the owner judged dead must be the claim taken over (read twice, a takeover by
    // another process could land in between and its live claim be removed).
    const raw = readText(file) ?? '';
    const found = parseOwner(raw);
    if (found && alive(found.pid)) throw ownedByOther(staging, found);
    // A dead (or unreadable) owner: take over that claim, once.
    const tombstone = `${file}.takeover-${found?.pid ?? 'x'}-${Buffer.from(raw).toString('base64url').slice(-16)}`;
    if (!createExclusive(tombstone)) {
      // A takeover holds a tombstone for microseconds; one older than TOMBSTONE_STALE_MS was left by
      // a process that died mid-takeover, and would otherwise block the folder for good.
      const age = Date.now() - (fs.statSync(tombstone, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age < TOMBSTONE_STALE_MS) throw ownedByOther(staging, readOwner(file));
      fs.rmSync(tombstone, { force: true });
      if (!createExclusive(tombstone)) throw ownedByOther(staging, readOwner(file));
    }
    try {
      const now = readText(file);
      if (now !== null && now !== raw) throw ownedByOther(staging, parseOwner(now));
      fs.rmSync(file, { force: true });
      if (!link()) throw ownedByOther(staging, readOwner(file));
    } finally {
      fs.rmSync(tombstone, { force: true });
    }
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/**
 * A run folder that appears whole or not at all. Files go into the staging folder `<target>.incomplete`
 * beside the target, which `commit()` renames into place (an existing folder at the target is
 * replaced only then). The staging folder's name is stable, so the epoch-end checkpoints it holds
 * (`checkpoint/`) survive a crash or SIGKILL and `kd run --resume` finds them. `owner.json` names the
 * process writing it: a second run into the same folder while the first is alive is refused, and a
 * dead run's checkpoint is never deleted silently.
 */
export class StagedFolder {
  readonly staging: string;

  /**
   * @param resumeFrom the checkpoint folder this process resumes from. A checkpoint already in the
   *   staging folder is kept when it is that one, replaced when the resumed run is this target's
   *   (`resumeTarget`), and otherwise an error: it belongs to an interrupted run nobody resumed.
   */
  constructor(
    readonly target: string,
    opts: { resumeFrom?: string; resumeTarget?: string; command?: string } = {},
  ) {
    this.staging = stagingFolderOf(target);
    const existed = fs.existsSync(this.staging);
    try {
      nodeStorage.mkdirp(this.staging); // the real errno on a read-only file system (Node's recursive mkdir says ENOENT)
      // Ownership first (exclusive), then the checks and the clean-up: two runs started on the same
      // folder at the same instant cannot both get past this line.
      claimOwnership(this.staging);
    } catch (e) {
      // nothing half-made: a staging folder this process created goes again
      if (!existed) fs.rmSync(this.staging, { recursive: true, force: true });
      throw storageError(e, this.staging, 'create the staging folder');
    }
    try {
      const conflict = stagingConflict(target, opts);
      if (conflict) throw conflict;
    } catch (e) {
      fs.rmSync(path.join(this.staging, OWNER_FILE), { force: true });
      throw e;
    }
    const ckpt = path.join(this.staging, CHECKPOINT_DIR);
    const keep = opts.resumeFrom !== undefined && [ckpt, `${ckpt}.old`].includes(path.resolve(opts.resumeFrom));
    try {
      for (const name of fs.readdirSync(this.staging)) {
        if (name === OWNER_FILE || name.startsWith(`${OWNER_FILE}.`) || (keep && name.startsWith(CHECKPOINT_DIR))) continue;
        fs.rmSync(path.join(this.staging, name), { recursive: true, force: true });
      }
    } catch (e) {
      this.abort();
      throw storageError(e, this.staging, 'clear the staging folder');
    }
  }

  /** Run `write` (which saves into the staging folder by itself, e.g. a model), with its failure coded. */
  async saveInto(name: string, write: (dir: string) => Promise<void>): Promise<void> {
    try {
      await write(this.file(name));
    } catch (e) {
      throw storageError(e, this.file(name), 'write');
    }
  }

  /** Where the epoch-end checkpoints go. */
  get checkpointDir(): string {
    return path.join(this.staging, CHECKPOINT_DIR);
  }

  hasCheckpoint(): boolean {
    return holdsCheckpoint(this.staging);
  }

  file(name: string): string {
    return path.join(this.staging, name);
  }

  write(name: string, data: string | Uint8Array): void {
    writeFileAtomic(this.file(name), data);
  }

  /** Rename the staging folder into place; the checkpoint goes along only with `keepCheckpoint` (an interrupted run). */
  commit(opts: { keepCheckpoint?: boolean } = {}): void {
    try {
      fs.rmSync(this.file(OWNER_FILE), { force: true });
      if (!opts.keepCheckpoint) {
        for (const name of fs.readdirSync(this.staging)) {
          if (name.startsWith(CHECKPOINT_DIR)) fs.rmSync(path.join(this.staging, name), { recursive: true, force: true });
        }
      }
    } catch (e) {
      throw storageError(e, this.staging, 'finish');
    }
    const target = path.resolve(this.target);
    const old = fs.existsSync(target) ? `${target}.old-${process.pid}-${Date.now()}` : null;
    try {
      if (old) fs.renameSync(target, old);
      fs.renameSync(this.staging, target);
    } catch (e) {
      if (old && !fs.existsSync(target)) fs.renameSync(old, target);
      throw new KdError('KD_OUTPUT_WRITE', `could not move the run folder into ${target}: ${(e as Error).message}`, {
        path: target,
        fix: 'check permissions of the output folder',
        cause: e,
      });
    }
    // The new run is in place; a backup that cannot be removed is left, never the other way round.
    if (old) fs.rmSync(old, { recursive: true, force: true, maxRetries: 2 });
  }

  /**
   * A failed run: the staging folder is removed, unless it holds a checkpoint (then it stays, without
   * its owner, for `--resume`). Returns whether it was kept.
   */
  abort(): boolean {
    try {
      if (this.hasCheckpoint()) {
        fs.rmSync(this.file(OWNER_FILE), { force: true });
        return true;
      }
      fs.rmSync(this.staging, { recursive: true, force: true });
    } catch {
      // on a broken file system the error that brought us here is the one to report
    }
    return false;
  }
}

/** The teacher cache folder when none is given: `$KD_CACHE_DIR`, else `.kd-cache` in the working folder. */
export function defaultCacheDir(): string {
  return process.env.KD_CACHE_DIR || '.kd-cache';
}

/** `runs/<spec name>` or, if taken (or an interrupted run's staging folder is there), `runs/<spec name>-2`, `-3`, … */
export function defaultOutDir(specFile: string, root = 'runs'): string {
  const base = path.join(root, path.basename(specFile).replace(/\.(ya?ml|json)$/i, ''));
  const taken = (p: string) => fs.existsSync(p) || fs.existsSync(`${p}${INCOMPLETE_SUFFIX}`);
  if (!taken(base)) return base;
  for (let i = 2; ; i++) if (!taken(`${base}-${i}`)) return `${base}-${i}`;
}
