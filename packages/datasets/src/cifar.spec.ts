import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { KdError } from '@tfkd/kd-core';
import { CIFAR10_CLASSES, readCifar } from './cifar';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tfkd-cifar-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function catchKd(fn: () => unknown): KdError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(KdError);
    return e as KdError;
  }
  throw new Error('expected a KdError');
}

/** Pixel byte chosen so every (record, channel, position) is distinguishable: CHW in the file. */
const pixel = (seed: number, c: number, p: number): number => (seed * 7 + c * 50 + p * 3) % 256;

/** One record: label bytes then 3072 CHW pixel bytes. */
function record(labelBytes: number[], seed: number): Buffer {
  const px = Buffer.alloc(3072);
  for (let c = 0; c < 3; c++) for (let p = 0; p < 1024; p++) px[c * 1024 + p] = pixel(seed, c, p);
  return Buffer.concat([Buffer.from(labelBytes), px]);
}

/** Expected HWC value at (row, col, channel) for record `seed`. */
const hwc = (seed: number, row: number, col: number, c: number): number =>
  Math.fround(pixel(seed, c, row * 32 + col) / 255);

function cifar10Dir(name: string): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  // Batch b holds 2 records with labels (b, 9 - b) and seeds 10b, 10b + 1.
  for (let b = 1; b <= 5; b++) {
    fs.writeFileSync(
      path.join(dir, `data_batch_${b}.bin`),
      Buffer.concat([record([b], 10 * b), record([9 - b], 10 * b + 1)]),
    );
  }
  fs.writeFileSync(
    path.join(dir, 'test_batch.bin'),
    Buffer.concat([record([3], 99), record([0], 98), record([7], 97)]),
  );
  return dir;
}

describe('readCifar (cifar10)', () => {
  it('reads labels and converts CHW to HWC exactly', () => {
    const { train, test } = readCifar(cifar10Dir('c10'), { variant: 'cifar10' });
    expect(train.name).toBe('cifar10:train');
    expect(train.source).toBe('cifar');
    expect(train.shape).toEqual([32, 32, 3]);
    expect(train.numClasses).toBe(10);
    expect(train.classNames).toEqual([...CIFAR10_CLASSES]);
    expect(Array.from(train.labels)).toEqual([1, 8, 2, 7, 3, 6, 4, 5, 5, 4]);
    expect(Array.from(test.labels)).toEqual([3, 0, 7]);
    expect(train.images.length).toBe(10 * 3072);
    // record 0 (seed 10): HWC index of (row, col, c) is ((row * 32 + col) * 3 + c)
    expect(Array.from(train.images.subarray(0, 6))).toEqual([
      hwc(10, 0, 0, 0),
      hwc(10, 0, 0, 1),
      hwc(10, 0, 0, 2),
      hwc(10, 0, 1, 0),
      hwc(10, 0, 1, 1),
      hwc(10, 0, 1, 2),
    ]);
    expect(Array.from(train.images.subarray(0, 3))).toEqual(
      [0, 50, 100].map((v) => Math.fround((70 + v) / 255)),
    );
    // record 9 (batch 5, second record, seed 51), row 31, col 30, channel 2
    expect(train.images[9 * 3072 + (31 * 32 + 30) * 3 + 2]).toBe(hwc(51, 31, 30, 2));
    expect(test.images[2 * 3072 + (5 * 32 + 7) * 3 + 1]).toBe(hwc(97, 5, 7, 1));
    for (let i = 0; i < test.images.length; i++) {
      const r = Math.floor(i / 3072);
      const within = i % 3072;
      const expected = hwc([99, 98, 97][r], Math.floor(within / 96), Math.floor(within / 3) % 32, within % 3);
      if (test.images[i] !== expected) throw new Error(`mismatch at ${i}: ${test.images[i]} vs ${expected}`);
    }
  });

  it('finds the cifar-10-batches-bin subfolder, reads class names from batches.meta.txt, applies limits', () => {
    const root = path.join(tmp, 'c10-root');
    const dir = cifar10Dir(path.join('c10-root', 'cifar-10-batches-bin'));
    fs.writeFileSync(path.join(dir, 'batches.meta.txt'), 'a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n');
    const { train, test } = readCifar(root, { variant: 'cifar10', limit: { train: 3, test: 1 } });
    expect(train.classNames).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j']);
    expect(Array.from(train.labels)).toEqual([1, 8, 2]);
    expect(train.images.length).toBe(3 * 3072);
    expect(train.note).toBe('limited to the first 3 of 10 train images');
    expect(Array.from(test.labels)).toEqual([3]);
  });

  it('reports a truncated batch as KD_DATA_CORRUPT naming the file', () => {
    const dir = cifar10Dir('c10-truncated');
    const f = path.join(dir, 'data_batch_3.bin');
    fs.writeFileSync(f, fs.readFileSync(f).subarray(0, 3073 + 1000));
    const e = catchKd(() => readCifar(dir, { variant: 'cifar10' }));
    expect(e.code).toBe('KD_DATA_CORRUPT');
    expect(e.path).toBe(f);
    expect(e.message).toBe(
      `${f}: expected a whole number of 3073-byte records, found 4073 bytes (1 records + 1000 bytes)`,
    );
    expect(e.fix).toMatch(/Re-download/);
  });

  it('reports a missing batch as KD_DATA_MISSING and a missing folder likewise', () => {
    const dir = cifar10Dir('c10-missing');
    const f = path.join(dir, 'data_batch_5.bin');
    fs.rmSync(f);
    const e = catchKd(() => readCifar(dir, { variant: 'cifar10' }));
    expect(e.code).toBe('KD_DATA_MISSING');
    expect(e.path).toBe(f);
    expect(e.message).toBe(`cifar10 batch file ${f} does not exist`);
    const nowhere = path.join(tmp, 'nowhere');
    const e2 = catchKd(() => readCifar(nowhere, { variant: 'cifar10' }));
    expect(e2.code).toBe('KD_DATA_MISSING');
    expect(e2.path).toBe(nowhere);
  });

  it('reports an out-of-range label as KD_DATA_CORRUPT', () => {
    const dir = cifar10Dir('c10-label');
    const f = path.join(dir, 'test_batch.bin');
    fs.writeFileSync(f, Buffer.concat([record([3], 1), record([12], 2)]));
    const e = catchKd(() => readCifar(dir, { variant: 'cifar10' }));
    expect(e.code).toBe('KD_DATA_CORRUPT');
    expect(e.message).toBe(`${f}: expected fine labels in [0, 9], found 12 in record 1`);
  });

  it('rejects coarse labels for cifar10', () => {
    const e = catchKd(() => readCifar(tmp, { variant: 'cifar10', label: 'coarse' }));
    expect(e.code).toBe('KD_SPEC_INVALID');
    expect(e.path).toBe('label');
  });
});

describe('readCifar (cifar100)', () => {
  function cifar100Dir(): string {
    const dir = path.join(tmp, 'c100');
    fs.mkdirSync(dir, { recursive: true });
    // (coarse, fine) pairs
    fs.writeFileSync(
      path.join(dir, 'train.bin'),
      Buffer.concat([record([19, 99], 1), record([0, 42], 2), record([7, 3], 3)]),
    );
    fs.writeFileSync(path.join(dir, 'test.bin'), record([11, 64], 4));
    fs.writeFileSync(
      path.join(dir, 'coarse_label_names.txt'),
      Array.from({ length: 20 }, (_, i) => `coarse${i}`).join('\n'),
    );
    return dir;
  }

  it('reads fine labels by default and coarse on request', () => {
    const dir = cifar100Dir();
    const fine = readCifar(dir, { variant: 'cifar100' });
    expect(fine.train.numClasses).toBe(100);
    expect(Array.from(fine.train.labels)).toEqual([99, 42, 3]);
    expect(Array.from(fine.test.labels)).toEqual([64]);
    expect(fine.train.classNames).toBeUndefined();
    expect(fine.train.images[2 * 3072 + (1 * 32 + 2) * 3 + 0]).toBe(hwc(3, 1, 2, 0));
    const coarse = readCifar(dir, { variant: 'cifar100', label: 'coarse' });
    expect(coarse.train.numClasses).toBe(20);
    expect(Array.from(coarse.train.labels)).toEqual([19, 0, 7]);
    expect(coarse.train.classNames?.[19]).toBe('coarse19');
    expect(Array.from(coarse.train.images)).toEqual(Array.from(fine.train.images));
  });

  it('checks the 3074-byte record size', () => {
    const dir = cifar100Dir();
    const f = path.join(dir, 'test.bin');
    fs.writeFileSync(f, record([1], 0)); // a CIFAR-10-sized record
    const e = catchKd(() => readCifar(dir, { variant: 'cifar100' }));
    expect(e.code).toBe('KD_DATA_CORRUPT');
    expect(e.message).toBe(
      `${f}: expected a whole number of 3074-byte records, found 3073 bytes (0 records + 3073 bytes)`,
    );
  });
});
