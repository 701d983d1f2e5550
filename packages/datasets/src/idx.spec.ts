import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { KdError } from '@tfkd/kd-core';
import { encodeIdx, loadIdxDataset, parseIdx, readIdx } from './idx';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfkd-idx-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(name: string, bytes: Uint8Array): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, bytes);
  return f;
}

function catchKd(fn: () => unknown): KdError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(KdError);
    return e as KdError;
  }
  throw new Error('expected a KdError');
}

describe('encodeIdx / parseIdx', () => {
  it('writes the exact IDX header and payload for ubyte', () => {
    const buf = encodeIdx([2, 3], [0, 1, 2, 253, 254, 255]);
    expect(Array.from(buf)).toEqual([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 1, 2, 253, 254, 255]);
    const { dims, data } = parseIdx(buf);
    expect(dims).toEqual([2, 3]);
    expect(data).toBeInstanceOf(Uint8Array);
    expect(Array.from(data)).toEqual([0, 1, 2, 253, 254, 255]);
  });

  it.each([
    ['sbyte', Int8Array, [-128, -1, 0, 127]],
    ['int16', Int16Array, [-32768, -2, 258, 32767]],
    ['int32', Int32Array, [-2147483648, -7, 16909060, 2147483647]],
    ['float32', Float32Array, [-1.5, 0, 0.25, 3.5e6]],
    ['float64', Float64Array, [-1e-300, Math.PI, 0, 1 / 3]],
  ] as const)('round-trips %s big-endian', (type, Ctor, values) => {
    const buf = encodeIdx([2, 2], values, type);
    const { dims, data } = parseIdx(buf);
    expect(dims).toEqual([2, 2]);
    expect(data).toBeInstanceOf(Ctor);
    expect(Array.from(data)).toEqual([...values]);
  });

  it('stores multi-byte values big-endian', () => {
    const buf = encodeIdx([1], [0x01020304], 'int32');
    expect(Array.from(buf)).toEqual([0, 0, 0x0c, 1, 0, 0, 0, 1, 1, 2, 3, 4]);
  });
});

describe('readIdx', () => {
  const payload = [10, 20, 30, 40, 50, 60];

  it('reads a raw file', () => {
    const f = write('raw.idx', encodeIdx([3, 2], payload));
    expect(readIdx(f)).toEqual({ dims: [3, 2], data: Uint8Array.from(payload) });
  });

  it('detects gzip by magic bytes, not by file name', () => {
    const gz = write('gzipped-without-extension.bin', zlib.gzipSync(encodeIdx([3, 2], payload)));
    expect(Array.from(readIdx(gz).data)).toEqual(payload);
    const rawNamedGz = write('not-really.gz', encodeIdx([3, 2], payload));
    expect(Array.from(readIdx(rawNamedGz).data)).toEqual(payload);
  });

  it('reports a missing file as KD_DATA_MISSING', () => {
    const f = path.join(dir, 'nope.gz');
    const e = catchKd(() => readIdx(f));
    expect(e.code).toBe('KD_DATA_MISSING');
    expect(e.path).toBe(f);
    expect(e.message).toBe(`IDX file ${f} does not exist`);
    expect(e.fix).toBeTruthy();
  });

  it('reports a truncated gzip as KD_DATA_CORRUPT', () => {
    const full = zlib.gzipSync(encodeIdx([100, 10], new Array(1000).fill(7)));
    const f = write('truncated.gz', full.subarray(0, Math.floor(full.length / 2)));
    const e = catchKd(() => readIdx(f));
    expect(e.code).toBe('KD_DATA_CORRUPT');
    expect(e.path).toBe(f);
    expect(e.message).toMatch(
      new RegExp(
        `^${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: expected a complete gzip stream, found a truncated or damaged one \\(unexpected end of file; \\d+ compressed bytes\\)$`,
      ),
    );
    expect(e.fix).toMatch(/Re-download/);
  });

  it('reports a wrong magic as KD_DATA_CORRUPT with expected vs found', () => {
    const f = write('magic.idx', Uint8Array.from([0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 0]));
    const e = catchKd(() => readIdx(f));
    expect(e.code).toBe('KD_DATA_CORRUPT');
    expect(e.path).toBe(f);
    expect(e.message).toBe(
      `${f}: expected IDX magic 0x00 0x00 <type> <ndims ≥ 1>, found 0x50 0x4B 0x03 0x04`,
    );
  });

  it('rejects an unknown type byte', () => {
    const f = write('type.idx', Uint8Array.from([0, 0, 0x0a, 1, 0, 0, 0, 1, 5]));
    const e = catchKd(() => readIdx(f));
    expect(e.code).toBe('KD_DATA_CORRUPT');
    expect(e.message).toBe(
      `${f}: expected an IDX type byte in {0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E}, found 0x0A`,
    );
  });

  it('rejects a header cut inside the dimensions', () => {
    const f = write('header.idx', Uint8Array.from([0, 0, 8, 3, 0, 0, 0, 2, 0, 0]));
    const e = catchKd(() => readIdx(f));
    expect(e.message).toBe(`${f}: expected 16 header bytes for 3 dimensions, found 10`);
  });

  it('reports a short payload as KD_DATA_CORRUPT (expected vs found)', () => {
    const buf = encodeIdx([4, 28, 28], new Array(4 * 784).fill(1));
    const f = write('short.idx', buf.subarray(0, buf.length - 100));
    const e = catchKd(() => readIdx(f));
    expect(e.code).toBe('KD_DATA_CORRUPT');
    expect(e.path).toBe(f);
    expect(e.message).toBe(
      `${f}: expected 3136 payload bytes (4x28x28 ubyte), found 3036 (file is truncated)`,
    );
  });

  it('reports trailing bytes and counts element size', () => {
    const buf = Buffer.concat([encodeIdx([2], [1, 2], 'int32'), Buffer.from([9])]);
    const f = write('long.idx', buf);
    expect(catchKd(() => readIdx(f)).message).toBe(
      `${f}: expected 8 payload bytes (2 int32), found 9 (trailing bytes)`,
    );
  });
});

describe('loadIdxDataset', () => {
  it('scales pixels by 1/255 and reads labels exactly', () => {
    const images = write(
      'img.gz',
      zlib.gzipSync(encodeIdx([3, 2, 2], [0, 255, 51, 102, 1, 2, 3, 4, 250, 251, 252, 253])),
    );
    const labels = write('lab', encodeIdx([3], [2, 0, 1]));
    const ds = loadIdxDataset({ images, labels, name: 'tiny', classNames: ['a', 'b', 'c'] });
    expect(ds.name).toBe('tiny');
    expect(ds.shape).toEqual([2, 2, 1]);
    expect(ds.numClasses).toBe(3);
    expect(ds.source).toBe('idx');
    expect(ds.classNames).toEqual(['a', 'b', 'c']);
    expect(Array.from(ds.labels)).toEqual([2, 0, 1]);
    expect(Array.from(ds.images)).toEqual(
      [0, 255, 51, 102, 1, 2, 3, 4, 250, 251, 252, 253].map((v) => Math.fround(v / 255)),
    );
    expect(ds.note).toBeUndefined();

    const limited = loadIdxDataset({ images, labels, limit: 2 });
    expect(Array.from(limited.labels)).toEqual([2, 0]);
    expect(limited.images.length).toBe(8);
    expect(limited.note).toBe('limited to the first 2 of 3 examples');
  });

  it('rejects a label count that differs from the image count', () => {
    const images = write('img2', encodeIdx([3, 1, 1], [1, 2, 3]));
    const labels = write('lab2', encodeIdx([2], [0, 1]));
    const e = catchKd(() => loadIdxDataset({ images, labels }));
    expect(e.code).toBe('KD_DATA_CORRUPT');
    expect(e.path).toBe(labels);
    expect(e.message).toBe(`${labels}: expected 3 labels (one per image in ${images}), found 2`);
  });

  it('rejects labels outside [0, numClasses)', () => {
    const images = write('img3', encodeIdx([2, 1, 1], [1, 2]));
    const labels = write('lab3', encodeIdx([2], [1, 10]));
    const e = catchKd(() => loadIdxDataset({ images, labels, numClasses: 10 }));
    expect(e.code).toBe('KD_DATA_CORRUPT');
    expect(e.message).toBe(`${labels}: expected labels in [0, 9], found 10 at index 1`);
  });

  it('rejects non-image dims', () => {
    const images = write('img4', encodeIdx([4], [1, 2, 3, 4]));
    const labels = write('lab4', encodeIdx([4], [0, 0, 0, 0]));
    const e = catchKd(() => loadIdxDataset({ images, labels }));
    expect(e.path).toBe(images);
    expect(e.message).toBe(
      `${images}: expected ubyte images with dims [N, H, W] or [N, H, W, C], found Uint8Array [4]`,
    );
  });
});
