/**
 * Where the runner keeps files — the teacher cache, a generation's model, anything a plugin writes —
 * without knowing the platform. `@tfkd/engine/node` binds the file system (`nodeStorage`, in `nodeModule`);
 * a browser host binds its own (IndexedDB; `memoryStorage` from @tfkd/engine keeps files in memory).
 * Bound to STORAGE; plugins that write files get it in `PluginDeps.storage`. Paths are '/'-separated strings.
 * Synchronous on purpose: the runner writes small files (JSON, markers) between epochs, and models
 * go through the models package's own `save`/`load` (`ModelTools`), which are async.
 */
export interface Storage {
  /** `rel` against the folder `base` (the spec's folder); an absolute `rel` is returned as it is. */
  resolve(base: string, rel: string): string;
  join(...parts: string[]): string;
  dirname(path: string): string;
  exists(path: string): boolean;
  readText(path: string): string;
  writeText(path: string, text: string): void;
  /** Create a folder and its parents. */
  mkdirp(path: string): void;
  /** Remove a file or a folder with everything in it; nothing if absent. */
  remove(path: string): void;
  rename(from: string, to: string): void;
  /** A new empty scratch folder (the caller removes it). */
  tempDir(prefix: string): string;
  /** A suffix that no other writer uses at the same moment (`<pid>-<time>` on Node). */
  uniqueSuffix(): string;
}

export const STORAGE = Symbol.for('kd.Storage');
