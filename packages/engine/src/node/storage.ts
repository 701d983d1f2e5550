import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Storage } from '@tfkd/kd-core';

let counter = 0;

/**
 * mkdir -p. On a read-only file system Node's recursive mkdir reports ENOENT; the plain mkdir of the
 * first missing folder under an existing one then gives the real reason (EROFS, EACCES).
 */
function mkdirp(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    let first = path.resolve(dir);
    while (!fs.existsSync(path.dirname(first)) && path.dirname(first) !== first) first = path.dirname(first);
    fs.mkdirSync(first); // throws the real error
    throw e;
  }
}

/** The runner's storage port on the file system (Node). */
export const nodeStorage: Storage = {
  resolve: (base, rel) => path.resolve(base, rel),
  join: (...parts) => path.join(...parts),
  dirname: (p) => path.dirname(p),
  exists: (p) => fs.existsSync(p),
  readText: (p) => fs.readFileSync(p, 'utf8'),
  writeText: (p, text) => fs.writeFileSync(p, text),
  mkdirp,
  remove: (p) => fs.rmSync(p, { recursive: true, force: true }),
  rename: (from, to) => fs.renameSync(from, to),
  tempDir: (prefix) => fs.mkdtempSync(path.join(os.tmpdir(), prefix)),
  uniqueSuffix: () => `${process.pid}-${Date.now()}-${++counter}`,
};
