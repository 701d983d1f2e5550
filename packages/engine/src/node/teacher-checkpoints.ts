import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { CheckpointSummary, TrainingState } from '../checkpoint';
import type { TeacherCheckpoints } from '../types';
import { peekCheckpoint, readCheckpoint, writeCheckpoint } from './checkpoint-files';

/** Where teacher `key`'s training checkpoints are kept until it is cached: `<cacheDir>/teachers/<key>.partial`. */
export function teacherPartialDir(cacheDir: string, key: string): string {
  return path.join(path.resolve(cacheDir), 'teachers', `${key}.partial`);
}

/** Writers' folders under a `.partial` folder, with `writeCheckpoint`'s `.old`/`.tmp` companions taken for their folder. */
const writers = (root: string) => (fs.existsSync(root) ? [...new Set(fs.readdirSync(root).map((n) => n.replace(/\.(old|tmp)$/, '')))] : []);

/** The checkpoint folders of teacher `key` in the cache `cacheDir`, one per process that wrote one (each may hold a `.old` copy instead). */
export function teacherCheckpointDirs(cacheDir: string, key: string): string[] {
  const root = teacherPartialDir(cacheDir, key);
  return writers(root).map((n) => path.join(root, n));
}

/**
 * `EngineOptions.teacherCheckpoints` on disk, beside the teacher cache (`teacherPartialDir`). Each
 * process writes a checkpoint folder of its own in there (`<host>-<pid>`, with `writeCheckpoint`:
 * whole or not at all), so two processes training the same teacher into one cache (local sweep
 * workers) never write into each other's files; a read takes the latest readable one, and a write
 * removes the older ones (an earlier, killed attempt's).
 */
export function teacherCheckpointFiles(cacheDir: string): Omit<TeacherCheckpoints, 'read'> & { read(key: string): TrainingState | null } {
  const mine = `${os.hostname()}-${process.pid}`;
  const remove = (dir: string) => {
    for (const d of [dir, `${dir}.old`, `${dir}.tmp`]) fs.rmSync(d, { recursive: true, force: true });
  };
  return {
    read(key: string): TrainingState | null {
      const root = teacherPartialDir(cacheDir, key);
      let failed: unknown = null;
      const found: CheckpointSummary[] = [];
      for (const name of writers(root)) {
        try {
          const c = peekCheckpoint(path.join(root, name));
          if (c) found.push(c);
        } catch (e) {
          failed ??= e;
        }
      }
      for (const c of found.sort((a, b) => b.step - a.step)) {
        try {
          return readCheckpoint(c.dir);
        } catch (e) {
          failed ??= e;
        }
      }
      if (failed) throw failed;
      return null;
    },
    write(key: string, state: TrainingState): void {
      const root = teacherPartialDir(cacheDir, key);
      writeCheckpoint(path.join(root, mine), state);
      for (const name of writers(root)) {
        if (name === mine) continue;
        try {
          const c = peekCheckpoint(path.join(root, name));
          if (c && c.step <= state.step) remove(path.join(root, name));
        } catch {
          // Unreadable, or being replaced by its writer: left for `clear`.
        }
      }
    },
    clear(key: string): void {
      fs.rmSync(teacherPartialDir(cacheDir, key), { recursive: true, force: true });
    },
  };
}
