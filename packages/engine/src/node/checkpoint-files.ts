import * as fs from 'fs';
import * as path from 'path';
import { KdError } from '@tfkd/kd-core';
import {
  CHECKPOINT_FILE,
  CHECKPOINT_FORMAT,
  CHECKPOINT_VERSION,
  type CheckpointSummary,
  type OptimizerState,
  type TeacherCacheState,
  type TensorData,
  type TrainingState,
} from '../checkpoint';

/** What `checkpoint.json` holds: the state with tensors replaced by references into the binary files. */
interface TensorRef {
  name: string;
  dtype: 'float32' | 'int32';
  shape: number[];
  offset: number;
  length: number;
}
interface CacheRef {
  role: string;
  shapes: number[][];
  file: string;
  version: number;
  bytes: number;
}
type RoleRef = { name: string; weights: TensorRef[]; optimizer: (Omit<OptimizerState, 'slots'> & { slots: TensorRef[] }) | null };
type Manifest = Omit<TrainingState, 'roles' | 'players' | 'plugins' | 'caches'> & {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  roles: RoleRef[];
  /** Version 2 on (absent in version 1: no players). */
  players?: RoleRef[];
  plugins: { name: string; variables: TensorRef[]; buffers: TensorRef[]; state?: unknown; rng: (number | null)[] }[];
  caches: CacheRef[];
  tensorBytes: number;
};

/** JSON that keeps NaN and ±Infinity (train means of all-skipped epochs, plugin state). */
function encodeJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? { $kdNumber: String(v) } : v));
}
function decodeJson(text: string): unknown {
  return JSON.parse(text, (_k, v) =>
    v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 1 && typeof v.$kdNumber === 'string' ? Number(v.$kdNumber) : v,
  );
}

function invalid(dir: string, what: string): KdError {
  return new KdError('KD_CHECKPOINT_INVALID', `${dir} is not a usable checkpoint: ${what}`, {
    path: dir,
    fix: 'give --resume the folder of an interrupted run (or its <out>.incomplete staging folder) written by this version of kd',
  });
}

function fsyncPath(p: string): void {
  try {
    const fd = fs.openSync(p, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // Directories cannot be fsynced on every platform; the data files themselves were.
  }
}

function writeParts(file: string, parts: readonly ArrayBufferView[]): number {
  const fd = fs.openSync(file, 'w');
  let bytes = 0;
  try {
    for (const p of parts) {
      fs.writeSync(fd, new Uint8Array(p.buffer, p.byteOffset, p.byteLength));
      bytes += p.byteLength;
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return bytes;
}

/** The checkpoint folder to read at `dir`: `dir` itself, or `dir.old` after a crash between the two renames. */
function readableDir(dir: string): string | null {
  if (fs.existsSync(path.join(dir, CHECKPOINT_FILE))) return dir;
  if (fs.existsSync(path.join(`${dir}.old`, CHECKPOINT_FILE))) return `${dir}.old`;
  return null;
}

function readManifest(dir: string): Manifest {
  let m: Manifest;
  try {
    m = decodeJson(fs.readFileSync(path.join(dir, CHECKPOINT_FILE), 'utf8')) as Manifest;
  } catch (e) {
    throw invalid(dir, `${CHECKPOINT_FILE} cannot be read (${(e as Error).message})`);
  }
  if (m?.format !== CHECKPOINT_FORMAT) throw invalid(dir, `${CHECKPOINT_FILE} is not a ${CHECKPOINT_FORMAT}`);
  if (m.version > CHECKPOINT_VERSION) throw invalid(dir, `format version ${m.version} is newer than this kd reads (${CHECKPOINT_VERSION})`);
  return m;
}

/**
 * Write `state` as the checkpoint folder `dir`, replacing the previous one only once the new one is
 * whole. On failure the previous checkpoint is left (or put back) in place and a KdError
 * (`KD_OUTPUT_WRITE`) is thrown.
 */
export function writeCheckpoint(dir: string, state: TrainingState): { bytes: number; dir: string } {
  const tmp = `${dir}.tmp`;
  const old = `${dir}.old`;
  let bytes = 0;
  try {
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    // A crash between the renames of an earlier write left only `.old`: put it back first.
    if (!fs.existsSync(dir) && fs.existsSync(path.join(old, CHECKPOINT_FILE))) fs.renameSync(old, dir);
    fs.rmSync(old, { recursive: true, force: true });
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp);

    // Tensors, in one file, each 4-byte aligned (all dtypes are 4 bytes wide).
    const parts: ArrayBufferView[] = [];
    let offset = 0;
    const ref = (t: TensorData): TensorRef => {
      const expected = t.shape.reduce((a, b) => a * b, 1);
      if (t.values.length !== expected) throw new KdError('KD_INTERNAL', `checkpoint tensor '${t.name}' has ${t.values.length} values for shape [${t.shape}]`);
      parts.push(t.values);
      const r = { name: t.name, dtype: t.dtype, shape: [...t.shape], offset, length: t.values.length };
      offset += t.values.byteLength;
      return r;
    };
    const roleRef = (r: TrainingState['roles'][number]): RoleRef => ({
      name: r.name,
      weights: r.weights.map(ref),
      optimizer: r.optimizer ? { ...r.optimizer, slots: r.optimizer.slots.map(ref) } : null,
    });
    const roles = state.roles.map(roleRef);
    const players = state.players.map(roleRef);
    const plugins = state.plugins.map((p) => ({ ...p, variables: p.variables.map(ref), buffers: p.buffers.map(ref) }));
    bytes += writeParts(path.join(tmp, 'tensors.bin'), parts);

    // Teacher-output caches: unchanged since the previous checkpoint → hard link its file.
    let previous: Manifest | null = null;
    try {
      previous = fs.existsSync(path.join(dir, CHECKPOINT_FILE)) ? readManifest(dir) : null;
    } catch {
      previous = null;
    }
    const caches: CacheRef[] = state.caches.map((c, i) => {
      const file = `cache-${i}.bin`;
      const prev = previous?.specHash === state.specHash ? previous.caches.find((p) => p.role === c.role && p.version === c.version) : undefined;
      if (prev) {
        try {
          fs.linkSync(path.join(dir, prev.file), path.join(tmp, file));
          return { role: c.role, shapes: c.shapes, file, version: c.version, bytes: prev.bytes };
        } catch {
          // Not linkable (another file system, or gone): write it.
        }
      }
      const n = writeParts(path.join(tmp, file), [...c.rows, c.filled]);
      bytes += n;
      return { role: c.role, shapes: c.shapes, file, version: c.version, bytes: n };
    });

    const { roles: _r, players: _pl, plugins: _p, caches: _c, ...rest } = state;
    void _r;
    void _pl;
    void _p;
    void _c;
    const manifest: Manifest = { format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, ...rest, roles, players, plugins, caches, tensorBytes: offset };
    // Serialised before the file is opened: a state that cannot be serialised fails here, with the
    // tensors already on disk in tmp/ — the previous checkpoint is untouched either way.
    const text = encodeJson(manifest);
    bytes += writeParts(path.join(tmp, CHECKPOINT_FILE), [Buffer.from(text)]);
    fsyncPath(tmp);

    if (fs.existsSync(dir)) fs.renameSync(dir, old);
    try {
      fs.renameSync(tmp, dir);
    } catch (e) {
      if (fs.existsSync(old) && !fs.existsSync(dir)) fs.renameSync(old, dir);
      throw e;
    }
    fsyncPath(path.dirname(dir));
    fs.rmSync(old, { recursive: true, force: true });
    return { bytes, dir };
  } catch (e) {
    try {
      fs.rmSync(tmp, { recursive: true, force: true });
    } catch {
      // best effort
    }
    if (e instanceof KdError && e.code === 'KD_INTERNAL') throw e;
    throw new KdError('KD_OUTPUT_WRITE', `could not write the checkpoint ${dir}: ${(e as Error).message}`, {
      path: dir,
      fix: 'check that the output folder is writable and the disk has room (and, if the message names a plugin state, that its getState() returns plain JSON); the previous checkpoint is kept',
      cause: e,
    });
  }
}

/** The checkpoint's summary (no tensors read), or null when `dir` holds no checkpoint. */
export function peekCheckpoint(dir: string): CheckpointSummary | null {
  const at = readableDir(dir);
  if (!at) return null;
  const m = readManifest(at);
  return { dir: at, specHash: m.specHash, spec: m.spec, next: m.next, step: m.step, epochsDone: m.history.length, createdAt: m.createdAt };
}

/** Read a checkpoint folder written by `writeCheckpoint`. */
export function readCheckpoint(dir: string): TrainingState {
  const at = readableDir(dir);
  if (!at) throw invalid(dir, `no ${CHECKPOINT_FILE} in it`);
  const m = readManifest(at);
  const bin = path.join(at, 'tensors.bin');
  if (!fs.existsSync(bin)) throw invalid(at, 'tensors.bin is missing');
  const buf = fs.readFileSync(bin);
  if (buf.byteLength !== m.tensorBytes) throw invalid(at, `tensors.bin has ${buf.byteLength} bytes, the manifest ${m.tensorBytes}`);
  const tensor = (r: TensorRef): TensorData => {
    const bytes = buf.subarray(r.offset, r.offset + r.length * 4);
    if (bytes.byteLength !== r.length * 4) throw invalid(at, `tensor '${r.name}' lies outside tensors.bin`);
    // Copy into an aligned buffer of its own.
    const own = new Uint8Array(bytes).buffer;
    return { name: r.name, dtype: r.dtype, shape: r.shape, values: r.dtype === 'int32' ? new Int32Array(own) : new Float32Array(own) };
  };
  const roleOf = (r: RoleRef): TrainingState['roles'][number] => ({
    name: r.name,
    weights: r.weights.map(tensor),
    optimizer: r.optimizer ? { ...r.optimizer, slots: r.optimizer.slots.map(tensor) } : null,
  });
  const caches = m.caches.map((c): TeacherCacheState => {
    const file = path.join(at, c.file);
    if (!fs.existsSync(file)) throw invalid(at, `${c.file} is missing`);
    const data = fs.readFileSync(file);
    const sizes = c.shapes.map((s) => s.reduce((a, b) => a * b, 1));
    const per = sizes.reduce((a, b) => a + b, 0);
    const n = data.byteLength / (4 * per + 1);
    if (!Number.isInteger(n)) throw invalid(at, `${c.file} has ${data.byteLength} bytes, not a whole number of rows`);
    let o = 0;
    const rows = sizes.map((size) => {
      const r = new Float32Array(new Uint8Array(data.subarray(o, o + 4 * n * size)).buffer);
      o += 4 * n * size;
      return r;
    });
    return { role: c.role, shapes: c.shapes, rows, filled: new Uint8Array(data.subarray(o, o + n)), version: c.version };
  });
  const { format: _f, version: _v, tensorBytes: _b, ...rest } = m;
  void _f;
  void _v;
  void _b;
  return {
    ...rest,
    roles: m.roles.map(roleOf),
    // A version-1 checkpoint has no players.
    players: (m.players ?? []).map(roleOf),
    plugins: m.plugins.map((p) => ({ ...p, variables: p.variables.map(tensor), buffers: (p.buffers ?? []).map(tensor) })),
    caches,
  };
}
