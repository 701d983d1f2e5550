/**
 * Data fuzzing (issue #11): mutated IDX headers and bodies (magic, type, dims, truncation, trailing
 * bytes, gzip corruption), mutated CIFAR binaries and broken files on disk. Every reader either
 * succeeds with data that agrees with an independent decoder of the same bytes, or throws a KdError
 * with a data code, the culprit file as its path and a fix; nothing else (RangeError, TypeError, a
 * raw fs error) may leak out. Fixed seed, bounded runs: the file runs in a few seconds.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import fc from 'fast-check';
import { ERROR_CODES, KdError, isKdError } from '@tfkd/kd-core';
import { readCifar } from './cifar';
import { loadFashionMnist } from './fashion-mnist';
import { IDX_TYPES, encodeIdx, loadIdxDataset, parseIdx, readIdx, type IdxTypeName } from './idx';
import type { Dataset } from './types';

const SEED = 20261126;
const RUNS = 300;

let tmp: string;
let fileNo = 0;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tfkd-fuzz-data-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function write(bytes: Uint8Array, name = `f${fileNo++}`): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, bytes);
  return f;
}

/** Runs `fn`; a thrown value must be a well-formed KdError with one of `codes` (returned), else the test fails. */
function outcome<T>(fn: () => T, codes: readonly string[]): { ok: true; value: T } | { ok: false; error: KdError } {
  try {
    return { ok: true, value: fn() };
  } catch (e) {
    if (!isKdError(e)) throw new Error(`expected a KdError, got ${(e as Error)?.name}: ${(e as Error)?.message}`, { cause: e });
    expect(Object.keys(ERROR_CODES)).toContain(e.code);
    expect(codes).toContain(e.code);
    expect(e.path).toEqual(expect.any(String));
    expect(e.path!.length).toBeGreaterThan(0);
    expect(e.fix).toEqual(expect.any(String));
    expect(e.fix!.length).toBeGreaterThan(0);
    return { ok: false, error: e };
  }
}

// ---------------------------------------------------------------------------------------------
// IDX: an independent decoder (Buffer's big-endian readers) as the oracle.

const TYPE_CODE: Record<IdxTypeName, number> = { ubyte: 0x08, sbyte: 0x09, int16: 0x0b, int32: 0x0c, float32: 0x0d, float64: 0x0e };

/** What a correct reader must return for `bytes`, or null when the bytes are not a well-formed IDX file. */
function oracleIdx(bytes: Uint8Array): { dims: number[]; values: number[] } | null {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < 4 || b[0] !== 0 || b[1] !== 0 || b[3] === 0) return null;
  const t = IDX_TYPES[b[2]];
  if (!t) return null;
  const nd = b[3];
  if (b.length < 4 + 4 * nd) return null;
  const dims = Array.from({ length: nd }, (_, i) => b.readUInt32BE(4 + 4 * i));
  const count = dims.reduce((a, d) => a * d, 1);
  const off = 4 + 4 * nd;
  if (b.length - off !== count * t.bytes) return null;
  const read: Record<number, (o: number) => number> = {
    0x08: (o) => b.readUInt8(o),
    0x09: (o) => b.readInt8(o),
    0x0b: (o) => b.readInt16BE(o),
    0x0c: (o) => b.readInt32BE(o),
    0x0d: (o) => b.readFloatBE(o),
    0x0e: (o) => b.readDoubleBE(o),
  };
  return { dims, values: Array.from({ length: count }, (_, i) => read[b[2]](off + i * t.bytes)) };
}

const typeName = fc.constantFrom<IdxTypeName>('ubyte', 'sbyte', 'int16', 'int32', 'float32', 'float64');
const valueOf: Record<IdxTypeName, fc.Arbitrary<number>> = {
  ubyte: fc.integer({ min: 0, max: 255 }),
  sbyte: fc.integer({ min: -128, max: 127 }),
  int16: fc.integer({ min: -32768, max: 32767 }),
  int32: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  float32: fc.float(),
  float64: fc.double(),
};

/** A well-formed IDX file: 1–4 dims of 0–4, values in the type's range. */
const idxFile = typeName.chain((type) =>
  fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 4 }).chain((dims) =>
    fc
      .array(valueOf[type], { minLength: dims.reduce((a, d) => a * d, 1), maxLength: dims.reduce((a, d) => a * d, 1) })
      .map((data) => ({ type, dims, data, bytes: new Uint8Array(encodeIdx(dims, data, type)) })),
  ),
);

/** Byte edits: set position (mod length) to a value. */
const edits = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 });

function applyEdits(bytes: Uint8Array, es: [number, number][], from = 0, to = bytes.length): Uint8Array {
  const out = bytes.slice();
  if (to <= from) return out;
  for (const [p, v] of es) out[from + (p % (to - from))] = v;
  return out;
}

/** parseIdx must agree with the oracle: same dims and values, or KD_DATA_CORRUPT exactly when the oracle rejects. */
function checkIdxAgainstOracle(bytes: Uint8Array): void {
  const want = oracleIdx(bytes);
  const got = outcome(() => parseIdx(bytes, 'fuzz.idx'), ['KD_DATA_CORRUPT']);
  if (want === null) {
    expect(got.ok).toBe(false);
    if (!got.ok) expect(got.error.path).toBe('fuzz.idx');
    return;
  }
  expect(got.ok).toBe(true);
  if (got.ok) {
    expect(got.value.dims).toEqual(want.dims);
    expect(got.value.data.length).toBe(want.values.length);
    expect(Array.from(got.value.data)).toEqual(want.values);
  }
}

describe('IDX fuzzing (parseIdx / readIdx)', () => {
  it('round-trips every well-formed file exactly (oracle agrees with the encoder)', () => {
    fc.assert(
      fc.property(idxFile, ({ type, dims, data, bytes }) => {
        const r = parseIdx(bytes);
        expect(r.dims).toEqual(dims);
        expect(bytes[2]).toBe(TYPE_CODE[type]);
        expect(Array.from(r.data)).toEqual(type === 'float32' ? data.map(Math.fround) : data);
        expect(oracleIdx(bytes)).not.toBeNull();
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('payload edits keep the dims and decode to exactly the edited values', () => {
    fc.assert(
      fc.property(idxFile, edits, ({ dims, bytes }, es) => {
        const header = 4 + 4 * dims.length;
        const mutated = applyEdits(bytes, es, header);
        const r = parseIdx(mutated);
        expect(r.dims).toEqual(dims);
        expect(Array.from(r.data)).toEqual(oracleIdx(mutated)!.values);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('header edits (magic, type byte, ndims, dims): KD_DATA_CORRUPT, or a self-consistent file decoded exactly', () => {
    let rejected = 0;
    fc.assert(
      fc.property(idxFile, edits, ({ dims, bytes }, es) => {
        const mutated = applyEdits(bytes, es, 0, 4 + 4 * dims.length);
        if (oracleIdx(mutated) === null) rejected++;
        checkIdxAgainstOracle(mutated);
      }),
      { seed: SEED, numRuns: RUNS },
    );
    expect(rejected).toBeGreaterThan(RUNS / 3); // the generator does reach the error paths
  });

  it('any truncation or trailing bytes is KD_DATA_CORRUPT, with the byte counts in the message', () => {
    fc.assert(
      fc.property(idxFile, fc.nat(), fc.uint8Array({ minLength: 0, maxLength: 9 }), ({ bytes }, cut, extra) => {
        const truncated = extra.length === 0;
        const mutated = truncated ? bytes.subarray(0, cut % bytes.length) : Buffer.concat([bytes, extra]);
        const got = outcome(() => parseIdx(mutated, 'cut.idx'), ['KD_DATA_CORRUPT']);
        expect(got.ok).toBe(false);
        if (!got.ok) expect(got.error.message).toMatch(/^cut\.idx: expected .*\d+.*, found \d+/);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('random bytes (with and without an IDX-like prefix): KD_DATA_CORRUPT or the oracle’s decoding', () => {
    const prefixed = fc
      .tuple(fc.constantFrom(0x08, 0x09, 0x0b, 0x0c, 0x0d, 0x0e, 0x00, 0xff), fc.integer({ min: 0, max: 5 }), fc.uint8Array({ maxLength: 40 }))
      .map(([t, nd, rest]) => new Uint8Array([0, 0, t, nd, ...rest]));
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 40 }), prefixed), (bytes) => checkIdxAgainstOracle(bytes)),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('gzip: edited, truncated or extended streams give KD_DATA_CORRUPT or exactly the original file', () => {
    const damage = fc.oneof(
      edits.map((es) => ({ kind: 'edit' as const, es })),
      fc.nat().map((cut) => ({ kind: 'cut' as const, cut })),
      fc.uint8Array({ minLength: 1, maxLength: 8 }).map((extra) => ({ kind: 'append' as const, extra })),
    );
    const seen = { corrupt: 0, same: 0 };
    fc.assert(
      fc.property(idxFile, damage, ({ dims, bytes }, d) => {
        const gz = new Uint8Array(zlib.gzipSync(bytes));
        const mutated =
          d.kind === 'edit' ? applyEdits(gz, d.es) : d.kind === 'cut' ? gz.subarray(0, d.cut % gz.length) : Buffer.concat([gz, d.extra]);
        const f = write(mutated);
        const got = outcome(() => readIdx(f), ['KD_DATA_CORRUPT']);
        if (got.ok) {
          seen.same++;
          expect(got.value.dims).toEqual(dims);
          expect(Array.from(got.value.data)).toEqual(oracleIdx(bytes)!.values);
        } else {
          seen.corrupt++;
          expect(got.error.path).toBe(f);
        }
        if (d.kind === 'cut') expect(got.ok).toBe(false); // a truncated stream never passes
        fs.rmSync(f);
      }),
      { seed: SEED, numRuns: RUNS },
    );
    expect(seen.corrupt).toBeGreaterThan(0);
    expect(seen.same).toBeGreaterThan(0); // e.g. edits of the gzip header's mtime/OS bytes
  });
});

// ---------------------------------------------------------------------------------------------
// Image/label datasets built from mutated IDX pairs.

function expectConsistent(ds: Dataset): void {
  const [h, w, c] = ds.shape;
  expect(ds.images.length).toBe(ds.labels.length * h * w * c);
  expect(Number.isInteger(ds.numClasses)).toBe(true);
  // plain loops, one expect each: per-value expects would dominate the run time
  const badLabel = ds.labels.findIndex((l) => !(l >= 0 && l < ds.numClasses));
  expect(badLabel).toBe(-1);
  const badPixel = ds.images.findIndex((v) => !(v >= 0 && v <= 1));
  expect(badPixel).toBe(-1);
}

describe('loadIdxDataset fuzzing', () => {
  /** A good pair: n images of h×w (×c) ubyte, n labels < k. */
  const pair = fc
    .record({
      n: fc.integer({ min: 1, max: 5 }),
      h: fc.integer({ min: 1, max: 4 }),
      w: fc.integer({ min: 1, max: 4 }),
      c: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
      k: fc.integer({ min: 2, max: 10 }),
      labelType: fc.constantFrom<IdxTypeName>('ubyte', 'sbyte', 'int16', 'int32'),
    })
    .chain((p) =>
      fc.record({
        p: fc.constant(p),
        px: fc.uint8Array({ minLength: p.n * p.h * p.w * (p.c ?? 1), maxLength: p.n * p.h * p.w * (p.c ?? 1) }),
        labels: fc.array(fc.integer({ min: 0, max: p.k - 1 }), { minLength: p.n, maxLength: p.n }),
      }),
    );
  const which = fc.constantFrom('images', 'labels');
  const damage = fc.oneof(
    edits.map((es) => ({ kind: 'edit' as const, es })),
    fc.nat().map((cut) => ({ kind: 'cut' as const, cut })),
    fc.constant({ kind: 'gzip-cut' as const }),
    fc.constant({ kind: 'none' as const }),
  );

  it('mutated image or label files: KD_DATA_CORRUPT naming that file, or a dataset whose sizes and labels are consistent', () => {
    fc.assert(
      fc.property(pair, which, damage, fc.boolean(), ({ p, px, labels }, target, d, giveK) => {
        const imgDims = p.c === undefined ? [p.n, p.h, p.w] : [p.n, p.h, p.w, p.c];
        let img: Uint8Array = new Uint8Array(encodeIdx(imgDims, px, 'ubyte'));
        let lab: Uint8Array = new Uint8Array(encodeIdx([p.n], labels, p.labelType));
        const mutate = (b: Uint8Array): Uint8Array =>
          d.kind === 'edit' ? applyEdits(b, d.es) : d.kind === 'cut' ? b.subarray(0, d.cut % b.length) : d.kind === 'gzip-cut' ? zlib.gzipSync(b).subarray(0, 12) : b;
        if (target === 'images') img = mutate(img);
        else lab = mutate(lab);
        const images = write(img);
        const labelsFile = write(lab);
        const got = outcome(() => loadIdxDataset({ images, labels: labelsFile, numClasses: giveK ? p.k : undefined }), ['KD_DATA_CORRUPT']);
        if (d.kind === 'none') expect(got.ok).toBe(true);
        if (d.kind === 'cut' || d.kind === 'gzip-cut') expect(got.ok).toBe(false);
        if (got.ok) {
          expectConsistent(got.value);
          if (giveK) expect(got.value.numClasses).toBe(p.k);
        } else {
          expect([images, labelsFile]).toContain(got.error.path);
        }
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// CIFAR binaries.

const IMAGE = 3072;

/** A CIFAR folder: each batch file holds 1–2 records with labels in range (CIFAR-100: coarse, fine). */
function cifarFiles(variant: 'cifar10' | 'cifar100'): fc.Arbitrary<Record<string, Uint8Array>> {
  const names = variant === 'cifar10' ? [...[1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`), 'test_batch.bin'] : ['train.bin', 'test.bin'];
  const label = variant === 'cifar10' ? fc.tuple(fc.integer({ min: 0, max: 9 })) : fc.tuple(fc.integer({ min: 0, max: 19 }), fc.integer({ min: 0, max: 99 }));
  const record = fc.tuple(label, fc.integer({ min: 0, max: 255 })).map(([ls, fill]) => {
    const r = new Uint8Array(ls.length + IMAGE);
    r.set(ls);
    for (let i = 0; i < IMAGE; i++) r[ls.length + i] = (fill + i) % 256;
    return r;
  });
  const file = fc.array(record, { minLength: 1, maxLength: 2 }).map((rs) => Buffer.concat(rs));
  return fc.tuple(...names.map(() => file)).map((fs_) => Object.fromEntries(names.map((n, i) => [n, new Uint8Array(fs_[i])])));
}

/** The oracle: per split, labels and record count from the bytes, or null if some file of that split is malformed. */
function oracleCifar(
  files: Record<string, Uint8Array>,
  variant: 'cifar10' | 'cifar100',
  label: 'fine' | 'coarse',
): { train: number[]; test: number[] } | null {
  const rec = (variant === 'cifar10' ? 1 : 2) + IMAGE;
  const off = variant === 'cifar10' || label === 'coarse' ? 0 : 1;
  const k = variant === 'cifar10' ? 10 : label === 'coarse' ? 20 : 100;
  const split = (names: string[]): number[] | null => {
    const out: number[] = [];
    for (const n of names) {
      const raw = files[n];
      let b: Uint8Array;
      try {
        b = raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b ? zlib.gunzipSync(raw) : raw;
      } catch {
        return null;
      }
      if (b.length === 0 || b.length % rec !== 0) return null;
      for (let i = 0; i < b.length / rec; i++) {
        if (b[i * rec + off] >= k) return null;
        out.push(b[i * rec + off]);
      }
    }
    return out;
  };
  const names = Object.keys(files);
  const test = names.filter((n) => n.startsWith('test'));
  const train = split(names.filter((n) => !n.startsWith('test')));
  const t = train && split(test);
  return train && t ? { train, test: t } : null;
}

describe('CIFAR binary fuzzing (readCifar)', () => {
  const damage = fc.oneof(
    // label bytes and pixels of the first record, or anywhere
    fc.tuple(fc.integer({ min: 0, max: 1 }), fc.integer({ min: 0, max: 255 })).map(([p, v]) => ({ kind: 'edit' as const, es: [[p, v]] as [number, number][] })),
    edits.map((es) => ({ kind: 'edit' as const, es })),
    fc.nat().map((cut) => ({ kind: 'cut' as const, cut })),
    fc.uint8Array({ minLength: 1, maxLength: 5 }).map((extra) => ({ kind: 'append' as const, extra })),
    fc.constant({ kind: 'gzip' as const }),
    fc.nat().map((cut) => ({ kind: 'gzip-cut' as const, cut })),
    fc.constant({ kind: 'empty' as const }),
  );

  for (const variant of ['cifar10', 'cifar100'] as const) {
    it(`${variant}: mutated batch files give KD_DATA_CORRUPT naming the file, or exactly the labels in the bytes`, () => {
      let n = 0;
      fc.assert(
        fc.property(cifarFiles(variant), fc.nat(), damage, fc.constantFrom<'fine' | 'coarse'>('fine', 'coarse'), (files, pick, d, lab) => {
          const label = variant === 'cifar10' ? 'fine' : lab;
          const names = Object.keys(files);
          const victim = names[pick % names.length];
          const b = files[victim];
          files[victim] =
            d.kind === 'edit'
              ? applyEdits(b, d.es)
              : d.kind === 'cut'
                ? b.subarray(0, d.cut % b.length)
                : d.kind === 'append'
                  ? Buffer.concat([b, d.extra])
                  : d.kind === 'gzip'
                    ? zlib.gzipSync(b)
                    : d.kind === 'gzip-cut'
                      ? zlib.gzipSync(b).subarray(0, 1 + (d.cut % 40))
                      : new Uint8Array(0);
          const dir = path.join(tmp, `${variant}-${n++}`);
          fs.mkdirSync(dir);
          for (const [name, bytes] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), bytes);
          const want = oracleCifar(files, variant, label);
          const got = outcome(() => readCifar(dir, { variant, label }), ['KD_DATA_CORRUPT']);
          if (want === null) {
            expect(got.ok).toBe(false);
            if (!got.ok) expect(got.error.path).toBe(path.join(dir, victim));
          } else {
            expect(got.ok).toBe(true);
            if (got.ok) {
              expect(Array.from(got.value.train.labels)).toEqual(want.train);
              expect(Array.from(got.value.test.labels)).toEqual(want.test);
              expectConsistent(got.value.train);
              expectConsistent(got.value.test);
              expect(got.value.train.shape).toEqual([32, 32, 3]);
            }
          }
          fs.rmSync(dir, { recursive: true });
        }),
        { seed: SEED, numRuns: 120 },
      );
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Broken files on disk: what the file system can throw must come out as a KdError too.

describe('unreadable data files', () => {
  const brokenFile = fc.constantFrom('missing', 'directory', 'symlink-loop', 'dangling-symlink', 'name-too-long', 'not-a-dir-parent');

  function breakFile(f: string, how: string): string {
    fs.rmSync(f, { recursive: true, force: true });
    switch (how) {
      case 'missing':
        return f;
      case 'directory':
        fs.mkdirSync(f);
        return f;
      case 'symlink-loop':
        fs.symlinkSync(f, f);
        return f;
      case 'dangling-symlink':
        fs.symlinkSync(`${f}.nowhere`, f);
        return f;
      case 'name-too-long':
        return path.join(path.dirname(f), 'x'.repeat(300));
      default: {
        // a path through a regular file
        fs.writeFileSync(f, 'plain');
        return path.join(f, 'inner.bin');
      }
    }
  }

  it('readIdx on a missing, looping, too-long or directory path: KD_DATA_MISSING naming the path', () => {
    fc.assert(
      fc.property(brokenFile, (how) => {
        const f = breakFile(path.join(tmp, `broken-${fileNo++}`), how);
        const got = outcome(() => readIdx(f), ['KD_DATA_MISSING']);
        expect(got.ok).toBe(false);
        if (!got.ok) expect(got.error.path).toBe(f);
      }),
      { seed: SEED, numRuns: 30 },
    );
  });

  it('readCifar with one batch file broken: KD_DATA_MISSING naming that file', () => {
    fc.assert(
      fc.property(brokenFile.filter((h) => h !== 'name-too-long' && h !== 'not-a-dir-parent'), fc.integer({ min: 0, max: 5 }), (how, i) => {
        const dir = path.join(tmp, `cifar-broken-${fileNo++}`);
        fs.mkdirSync(dir);
        const names = [...[1, 2, 3, 4, 5].map((k) => `data_batch_${k}.bin`), 'test_batch.bin'];
        for (const n of names) fs.writeFileSync(path.join(dir, n), new Uint8Array(1 + IMAGE));
        const f = breakFile(path.join(dir, names[i]), how);
        const got = outcome(() => readCifar(dir, { variant: 'cifar10' }), ['KD_DATA_MISSING']);
        expect(got.ok).toBe(false);
        if (!got.ok) expect(got.error.path).toBe(f);
      }),
      { seed: SEED, numRuns: 20 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Fashion-MNIST from a folder of (mutated) files.

describe('loadFashionMnist fuzzing', () => {
  it('a folder with one damaged file: KdError naming that file, or the 28×28×1, 10-class dataset', () => {
    const img = (n: number) => new Uint8Array(zlib.gzipSync(encodeIdx([n, 28, 28], new Uint8Array(n * 784).map((_, i) => i % 256))));
    const lab = (n: number) => new Uint8Array(zlib.gzipSync(encodeIdx([n], Array.from({ length: n }, (_, i) => i % 10))));
    const names = ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz', 't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'];
    const damage = fc.oneof(
      fc.constant({ kind: 'none' as const }),
      fc.constant({ kind: 'gunzipped' as const }),
      fc.nat().map((cut) => ({ kind: 'cut' as const, cut })),
      // a valid IDX file of another shape (wrong image size or label count)
      fc.record({ n: fc.integer({ min: 1, max: 4 }), h: fc.integer({ min: 1, max: 30 }) }).map((s) => ({ kind: 'reshape' as const, ...s })),
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 3 }), damage, (i, d) => {
        const dir = path.join(tmp, `fm-${fileNo++}`);
        fs.mkdirSync(dir);
        const files = [img(3), lab(3), img(2), lab(2)];
        const b = files[i];
        if (d.kind === 'gunzipped') files[i] = new Uint8Array(zlib.gunzipSync(b));
        if (d.kind === 'cut') files[i] = b.subarray(0, d.cut % b.length);
        if (d.kind === 'reshape')
          files[i] = new Uint8Array(
            i % 2 === 0 ? encodeIdx([d.n, d.h, 28], new Uint8Array(d.n * d.h * 28)) : encodeIdx([d.n], new Uint8Array(d.n)),
          );
        names.forEach((n, k) => fs.writeFileSync(path.join(dir, n), files[k]));
        const got = outcome(() => loadFashionMnist({ path: dir }), ['KD_DATA_CORRUPT']);
        const unchangedShape = d.kind === 'reshape' && (i % 2 === 0 ? d.h === 28 && d.n === (i === 0 ? 3 : 2) : d.n === (i === 1 ? 3 : 2));
        if (d.kind === 'none' || d.kind === 'gunzipped' || unchangedShape) {
          expect(got.ok).toBe(true);
          if (got.ok) {
            expect(got.value.train.shape).toEqual([28, 28, 1]);
            expect(got.value.train.labels.length).toBe(3);
            expect(got.value.test.labels.length).toBe(2);
            expectConsistent(got.value.train);
            expectConsistent(got.value.test);
          }
        } else {
          expect(got.ok).toBe(false);
          if (!got.ok) expect(path.basename(got.error.path!)).toMatch(/^(train|t10k)-(images|labels)/);
        }
        fs.rmSync(dir, { recursive: true });
      }),
      { seed: SEED, numRuns: 60 },
    );
  });
});

it('the KdError class is what the readers throw (not a look-alike)', () => {
  expect(() => parseIdx(new Uint8Array([1, 2, 3, 4]))).toThrow(KdError);
});
