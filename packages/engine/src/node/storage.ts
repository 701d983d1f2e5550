import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Storage } from '@tfkd/kd-core';

let counter = 0;

/** The runner's storage port on the file system (Node). */
export const nodeStorage: Storage = {
  resolve: (base, rel) => path.resolve(base, rel),
  join: (...parts) => path.join(...parts),
  dirname: (p) => path.dirname(p),
  exists: (p) => fs.existsSync(p),
  readText: (p) => fs.readFileSync(p, 'utf8'),
  writeText: (p, text) => fs.writeFileSync(p, text),
  mkdirp: (p) => void fs.mkdirSync(p, { recursive: true }),
  remove: (p) => fs.rmSync(p, { recursive: true, force: true }),
  rename: (from, to) => fs.renameSync(from, to),
  tempDir: (prefix) => fs.mkdtempSync(path.join(os.tmpdir(), prefix)),
  uniqueSuffix: () => `${process.pid}-${Date.now()}-${++counter}`,
};
