import * as fs from 'fs';
import * as path from 'path';
import { KdError } from '@tfkd/kd-core';

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
    fs.rmSync(tmp, { force: true });
    throw new KdError('KD_OUTPUT_WRITE', `could not write ${file}: ${(e as Error).message}`, {
      path: file,
      fix: 'check that the folder is writable and the disk has room',
      cause: e,
    });
  }
}

/**
 * A run folder that appears whole or not at all: files go into a staging folder beside the target,
 * which `commit()` renames into place (an existing folder at the target is replaced only then).
 * `abort()` removes the staging folder, so a failed run leaves nothing half-written.
 */
export class StagedFolder {
  readonly staging: string;

  constructor(readonly target: string) {
    const parent = path.dirname(path.resolve(target));
    fs.mkdirSync(parent, { recursive: true });
    this.staging = path.join(parent, `.${path.basename(target)}.partial-${process.pid}-${Date.now()}`);
    fs.mkdirSync(this.staging);
  }

  file(name: string): string {
    return path.join(this.staging, name);
  }

  write(name: string, data: string | Uint8Array): void {
    writeFileAtomic(this.file(name), data);
  }

  commit(): void {
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
    if (old) fs.rmSync(old, { recursive: true, force: true });
  }

  abort(): void {
    fs.rmSync(this.staging, { recursive: true, force: true });
  }
}

/** `runs/<spec name>` or, if taken, `runs/<spec name>-2`, `-3`, … */
export function defaultOutDir(specFile: string, root = 'runs'): string {
  const base = path.join(root, path.basename(specFile).replace(/\.(ya?ml|json)$/i, ''));
  if (!fs.existsSync(base)) return base;
  for (let i = 2; ; i++) if (!fs.existsSync(`${base}-${i}`)) return `${base}-${i}`;
}
