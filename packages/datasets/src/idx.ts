/**
 * IDX reader (the MNIST / Fashion-MNIST container): a 4-byte magic `00 00 <type> <ndims>`, ndims
 * big-endian uint32 sizes, then the payload in big-endian element order. Files may be gzipped; gzip
 * is recognised by its magic bytes (1f 8b), never by the file name.
 */
import * as fs from 'fs';
import * as zlib from 'zlib';
import { KdError } from '@tfkd/kd-core';
import type { Dataset, DatasetSource, IdxTypedArray } from './types';

export interface IdxFile {
  dims: number[];
  data: IdxTypedArray;
}

/** IDX element types: type byte → name, bytes per element. */
export const IDX_TYPES: Readonly<Record<number, { name: string; bytes: number }>> = {
  0x08: { name: 'ubyte', bytes: 1 },
  0x09: { name: 'sbyte', bytes: 1 },
  0x0b: { name: 'int16', bytes: 2 },
  0x0c: { name: 'int32', bytes: 4 },
  0x0d: { name: 'float32', bytes: 4 },
  0x0e: { name: 'float64', bytes: 8 },
};

export type IdxTypeName = 'ubyte' | 'sbyte' | 'int16' | 'int32' | 'float32' | 'float64';

const hex = (b: number): string => '0x' + b.toString(16).padStart(2, '0').toUpperCase();
const REFETCH = 'Re-download or re-extract the file; if you wrote it yourself, check the writer.';

function corrupt(file: string, message: string, cause?: unknown): KdError {
  return new KdError('KD_DATA_CORRUPT', `${file}: ${message}`, { path: file, fix: REFETCH, cause });
}

/**
 * Reads a file into memory. "No such file" and every other reason the file cannot be read (a
 * directory, a symlink loop, a name too long, no permission) become KD_DATA_MISSING naming the file.
 */
export function readDataFile(file: string, what = 'data file'): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const absent = code === 'ENOENT' || code === 'ENOTDIR';
    throw new KdError(
      'KD_DATA_MISSING',
      absent ? `${what} ${file} does not exist` : `${what} ${file} cannot be read (${code ?? (e as Error).message})`,
      {
        path: file,
        fix: absent
          ? 'Check the path (and KD_DATA_DIR, if you use it); download the data set there.'
          : 'Point at a readable regular file: check that the path is not a folder or a broken symlink, and its permissions.',
        cause: e,
      },
    );
  }
}

/** True when the bytes start with the gzip magic 1f 8b. */
export function isGzip(buf: Uint8Array): boolean {
  return buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b;
}

/** Decompresses when gzipped (by magic); `file` only names the culprit in errors. */
export function maybeGunzip(buf: Buffer, file: string): Buffer {
  if (!isGzip(buf)) return buf;
  try {
    return zlib.gunzipSync(buf);
  } catch (e) {
    throw corrupt(
      file,
      `expected a complete gzip stream, found a truncated or damaged one (${(e as Error).message}; ${buf.length} compressed bytes)`,
      e,
    );
  }
}

/** Parses IDX bytes (already decompressed). `file` names the source in errors. */
export function parseIdx(buf: Uint8Array, file = '<buffer>'): IdxFile {
  if (buf.length < 4) throw corrupt(file, `expected at least 4 bytes of IDX header, found ${buf.length}`);
  const type = IDX_TYPES[buf[2]];
  if (buf[0] !== 0 || buf[1] !== 0 || buf[3] === 0) {
    const found = Array.from(buf.subarray(0, 4), hex).join(' ');
    throw corrupt(file, `expected IDX magic 0x00 0x00 <type> <ndims ≥ 1>, found ${found}`);
  }
  if (!type) {
    const allowed = Object.keys(IDX_TYPES)
      .map((k) => hex(Number(k)))
      .join(', ');
    throw corrupt(file, `expected an IDX type byte in {${allowed}}, found ${hex(buf[2])}`);
  }
  const ndims = buf[3];
  const headerLength = 4 + 4 * ndims;
  if (buf.length < headerLength) {
    throw corrupt(file, `expected ${headerLength} header bytes for ${ndims} dimensions, found ${buf.length}`);
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < ndims; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const count = dims.reduce((a, b) => a * b, 1);
  const expected = count * type.bytes;
  const found = buf.length - headerLength;
  if (found !== expected) {
    throw corrupt(
      file,
      `expected ${expected} payload bytes (${dims.join('x')} ${type.name}), found ${found}` +
        (found < expected ? ' (file is truncated)' : ' (trailing bytes)'),
    );
  }
  return { dims, data: decode(buf[2], view, headerLength, count) };
}

function decode(type: number, view: DataView, off: number, count: number): IdxTypedArray {
  const src = new Uint8Array(view.buffer, view.byteOffset + off, count * IDX_TYPES[type].bytes);
  switch (type) {
    case 0x08:
      return new Uint8Array(src);
    case 0x09:
      return new Int8Array(src.buffer, src.byteOffset, count).slice();
    case 0x0b: {
      const out = new Int16Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt16(off + 2 * i, false);
      return out;
    }
    case 0x0c: {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt32(off + 4 * i, false);
      return out;
    }
    case 0x0d: {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(off + 4 * i, false);
      return out;
    }
    default: {
      const out = new Float64Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(off + 8 * i, false);
      return out;
    }
  }
}

/** Reads a gzipped or raw IDX file. Missing → KD_DATA_MISSING; malformed → KD_DATA_CORRUPT. */
export function readIdx(file: string): IdxFile {
  return parseIdx(maybeGunzip(readDataFile(file, 'IDX file'), file), file);
}

/** Encodes an IDX file (raw, uncompressed); the inverse of `parseIdx`. Used by tools and tests. */
export function encodeIdx(
  dims: readonly number[],
  data: ArrayLike<number>,
  type: IdxTypeName = 'ubyte',
): Buffer {
  const code = Number(Object.keys(IDX_TYPES).find((k) => IDX_TYPES[Number(k)].name === type));
  const bytes = IDX_TYPES[code].bytes;
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== data.length) {
    throw new KdError(
      'KD_SHAPE_MISMATCH',
      `encodeIdx: dims ${dims.join('x')} hold ${count} values, got ${data.length}`,
      {
        path: 'data',
        fix: 'Pass dims whose product equals data.length.',
      },
    );
  }
  const headerLength = 4 + 4 * dims.length;
  const buf = Buffer.alloc(headerLength + count * bytes);
  buf[2] = code;
  buf[3] = dims.length;
  dims.forEach((d, i) => buf.writeUInt32BE(d, 4 + 4 * i));
  for (let i = 0; i < count; i++) {
    const o = headerLength + i * bytes;
    const v = data[i];
    if (code === 0x08) buf.writeUInt8(v, o);
    else if (code === 0x09) buf.writeInt8(v, o);
    else if (code === 0x0b) buf.writeInt16BE(v, o);
    else if (code === 0x0c) buf.writeInt32BE(v, o);
    else if (code === 0x0d) buf.writeFloatBE(v, o);
    else buf.writeDoubleBE(v, o);
  }
  return buf;
}

export interface IdxDatasetOptions {
  /** Image file: ubyte, dims [N, H, W] or [N, H, W, C]. */
  images: string;
  /** Label file: integer type, dims [N]. */
  labels: string;
  name?: string;
  /** Defaults to max(label) + 1. */
  numClasses?: number;
  classNames?: string[];
  source?: DatasetSource;
  /** Keep only the first `limit` examples. */
  limit?: number;
  note?: string;
}

/** Reads an image/label pair of IDX files into a Dataset (pixels scaled to [0, 1]). */
export function loadIdxDataset(opts: IdxDatasetOptions): Dataset {
  const img = readIdx(opts.images);
  const lab = readIdx(opts.labels);
  if (!(img.data instanceof Uint8Array) || (img.dims.length !== 3 && img.dims.length !== 4)) {
    throw corrupt(
      opts.images,
      `expected ubyte images with dims [N, H, W] or [N, H, W, C], found ${img.data.constructor.name} [${img.dims.join(', ')}]`,
    );
  }
  if (lab.dims.length !== 1 || lab.data instanceof Float32Array || lab.data instanceof Float64Array) {
    throw corrupt(
      opts.labels,
      `expected integer labels with dims [N], found ${lab.data.constructor.name} [${lab.dims.join(', ')}]`,
    );
  }
  const n = img.dims[0];
  if (lab.dims[0] !== n) {
    throw corrupt(
      opts.labels,
      `expected ${n} labels (one per image in ${opts.images}), found ${lab.dims[0]}`,
    );
  }
  const shape: [number, number, number] = [img.dims[1], img.dims[2], img.dims[3] ?? 1];
  const keep = opts.limit === undefined ? n : Math.max(0, Math.min(n, Math.floor(opts.limit)));
  const per = shape[0] * shape[1] * shape[2];
  const images = new Float32Array(keep * per);
  for (let i = 0; i < images.length; i++) images[i] = img.data[i] / 255;
  const labels = new Int32Array(keep);
  let max = -1;
  for (let i = 0; i < keep; i++) {
    const l = lab.data[i];
    if (l < 0 || (opts.numClasses !== undefined && l >= opts.numClasses)) {
      const range = opts.numClasses === undefined ? '≥ 0' : `in [0, ${opts.numClasses - 1}]`;
      throw corrupt(opts.labels, `expected labels ${range}, found ${l} at index ${i}`);
    }
    labels[i] = l;
    if (l > max) max = l;
  }
  const ds: Dataset = {
    name: opts.name ?? opts.images,
    images,
    labels,
    shape,
    numClasses: opts.numClasses ?? max + 1,
    source: opts.source ?? 'idx',
  };
  if (opts.classNames) ds.classNames = opts.classNames.slice();
  const limited = keep < n ? `limited to the first ${keep} of ${n} examples` : undefined;
  const note = [opts.note, limited].filter(Boolean).join('; ');
  if (note) ds.note = note;
  return ds;
}
