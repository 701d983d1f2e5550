import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { folderError, type FolderFlag } from './errors';

/** The files of a folder (recursively), relative path (with `/`) → bytes; a read failure is coded (`flag` names the folder). */
export function readFolder(dir: string, skip: (rel: string) => boolean = () => false, flag: FolderFlag = '--dir'): [string, Buffer][] {
  const files: [string, Buffer][] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const f = path.join(d, e.name);
      const rel = path.relative(dir, f).split(path.sep).join('/');
      if (skip(rel)) continue;
      if (e.isDirectory()) walk(f);
      else if (e.isFile()) files.push([rel, fs.readFileSync(f)]);
    }
  };
  try {
    walk(dir);
  } catch (e) {
    throw folderError(e, dir, 'read', flag);
  }
  return files;
}

/** `m-` + sha256 of a folder's files (sorted relative paths, sizes and bytes), 16 hex digits. */
export function modelFolderHash(dir: string): string {
  const h = crypto.createHash('sha256');
  for (const [rel, buf] of readFolder(dir).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    h.update(`${rel}\0${buf.length}\0`);
    h.update(buf);
  }
  return `m-${h.digest('hex').slice(0, 16)}`;
}
