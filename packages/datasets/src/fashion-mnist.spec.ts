import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { KdError } from '@tfkd/kd-core';
import {
  DEBIAN_FASHION_MNIST_DIR,
  FASHION_MNIST_CLASSES,
  SHIPPED_SUBSET_COUNTS,
  SHIPPED_SUBSET_DIR,
  loadFashionMnist,
  locateFashionMnist,
} from './fashion-mnist';
import { encodeIdx, readIdx } from './idx';

const FILES = [
  'train-images-idx3-ubyte.gz',
  'train-labels-idx1-ubyte.gz',
  't10k-images-idx3-ubyte.gz',
  't10k-labels-idx1-ubyte.gz',
];
const fullPresent = FILES.every((f) => fs.existsSync(path.join(DEBIAN_FASHION_MNIST_DIR, f)));
const NO_ENV = {};

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tfkd-fmnist-'));
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

/** A tiny fake Fashion-MNIST (raw, not gzipped): train 3 images, test 2; pixel value = 10*i + label. */
function fakeCopy(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  const px = (labels: number[]) => labels.flatMap((l, i) => new Array(784).fill(10 * i + l));
  fs.writeFileSync(path.join(dir, 'train-images-idx3-ubyte'), encodeIdx([3, 28, 28], px([9, 0, 4])));
  fs.writeFileSync(path.join(dir, 'train-labels-idx1-ubyte'), encodeIdx([3], [9, 0, 4]));
  fs.writeFileSync(path.join(dir, 't10k-images-idx3-ubyte'), encodeIdx([2, 28, 28], px([1, 2])));
  fs.writeFileSync(path.join(dir, 't10k-labels-idx1-ubyte'), encodeIdx([2], [1, 2]));
}

describe('shipped subset', () => {
  const read = (f: string) => readIdx(path.join(SHIPPED_SUBSET_DIR, f));

  it('has the documented counts, shapes, licence and size', () => {
    expect(SHIPPED_SUBSET_COUNTS).toEqual({ train: 6000, test: 2000 });
    expect(read('train-images-idx3-ubyte.gz').dims).toEqual([6000, 28, 28]);
    expect(read('train-labels-idx1-ubyte.gz').dims).toEqual([6000]);
    expect(read('t10k-images-idx3-ubyte.gz').dims).toEqual([2000, 28, 28]);
    expect(read('t10k-labels-idx1-ubyte.gz').dims).toEqual([2000]);
    const licence = fs.readFileSync(path.join(SHIPPED_SUBSET_DIR, 'LICENSE'), 'utf8');
    expect(licence).toContain('The MIT License (MIT)');
    expect(licence).toContain('Copyright (c) 2017 Zalando SE');
    const total = fs
      .readdirSync(SHIPPED_SUBSET_DIR)
      .reduce((a, f) => a + fs.statSync(path.join(SHIPPED_SUBSET_DIR, f)).size, 0);
    expect(total).toBeLessThanOrEqual(4 * 1024 * 1024);
  });

  it('has a plausible class balance (each class 400..800 of 6000 train)', () => {
    const counts = new Array(10).fill(0);
    for (const l of read('train-labels-idx1-ubyte.gz').data) counts[l]++;
    expect(counts.reduce((a, b) => a + b, 0)).toBe(6000);
    for (const c of counts) {
      expect(c).toBeGreaterThanOrEqual(400);
      expect(c).toBeLessThanOrEqual(800);
    }
    const test = new Array(10).fill(0);
    for (const l of read('t10k-labels-idx1-ubyte.gz').data) test[l]++;
    expect(Math.min(...test)).toBeGreaterThan(0);
  });

  (fullPresent ? it : it.skip)('holds exactly the first images and labels of the full set', () => {
    for (const [f, n, per] of [
      ['train-images-idx3-ubyte.gz', 6000, 784],
      ['train-labels-idx1-ubyte.gz', 6000, 1],
      ['t10k-images-idx3-ubyte.gz', 2000, 784],
      ['t10k-labels-idx1-ubyte.gz', 2000, 1],
    ] as const) {
      const sub = read(f).data;
      const full = readIdx(path.join(DEBIAN_FASHION_MNIST_DIR, f)).data;
      expect(sub.length).toBe(n * per);
      expect(
        Buffer.from(sub as Uint8Array).equals(Buffer.from((full as Uint8Array).subarray(0, n * per))),
      ).toBe(true);
    }
  });

  it('starts with the known first labels of Fashion-MNIST', () => {
    // The official train set begins Ankle boot, T-shirt/top, T-shirt/top, Dress, T-shirt/top; test with Ankle boot, Pullover.
    expect(Array.from(read('train-labels-idx1-ubyte.gz').data.subarray(0, 5))).toEqual([9, 0, 0, 3, 0]);
    expect(Array.from(read('t10k-labels-idx1-ubyte.gz').data.subarray(0, 3))).toEqual([9, 2, 1]);
  });
});

describe('locateFashionMnist', () => {
  it('rejects an explicit path that does not exist, without falling back', () => {
    const missing = path.join(tmp, 'does-not-exist');
    const e = catchKd(() => locateFashionMnist({ path: missing }));
    expect(e.code).toBe('KD_DATA_MISSING');
    expect(e.path).toBe(missing);
    expect(e.message).toBe(`Fashion-MNIST folder ${missing} does not exist`);
    expect(e.fix).toMatch(/^Pass a folder holding train-images-idx3-ubyte.gz/);
  });

  it('rejects an explicit folder that lacks the files, naming them', () => {
    const empty = path.join(tmp, 'empty');
    fs.mkdirSync(empty);
    fs.writeFileSync(path.join(empty, 'train-images-idx3-ubyte.gz'), '');
    const e = catchKd(() => locateFashionMnist({ path: empty }));
    expect(e.code).toBe('KD_DATA_MISSING');
    expect(e.path).toBe(empty);
    expect(e.message).toBe(
      `Fashion-MNIST folder ${empty} lacks train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz`,
    );
  });

  it('uses an explicit folder, or its fashion-mnist subfolder, as a full copy', () => {
    const a = path.join(tmp, 'explicit');
    fakeCopy(a);
    const loc = locateFashionMnist({ path: a, env: NO_ENV, systemDirs: [] });
    expect(loc).toEqual({
      dir: a,
      source: 'full',
      searched: [a],
      files: {
        trainImages: path.join(a, 'train-images-idx3-ubyte'),
        trainLabels: path.join(a, 'train-labels-idx1-ubyte'),
        testImages: path.join(a, 't10k-images-idx3-ubyte'),
        testLabels: path.join(a, 't10k-labels-idx1-ubyte'),
      },
    });
    const parent = path.join(tmp, 'parent');
    fakeCopy(path.join(parent, 'fashion-mnist'));
    expect(locateFashionMnist({ path: parent }).dir).toBe(path.join(parent, 'fashion-mnist'));
  });

  it('searches KD_DATA_DIR (folder, then fashion-mnist/) before the system folders', () => {
    const root = path.join(tmp, 'kd-data');
    fakeCopy(path.join(root, 'fashion-mnist'));
    const sys = path.join(tmp, 'sys');
    fakeCopy(sys);
    const loc = locateFashionMnist({ env: { KD_DATA_DIR: root }, systemDirs: [sys] });
    expect(loc.dir).toBe(path.join(root, 'fashion-mnist'));
    expect(loc.searched).toEqual([root, path.join(root, 'fashion-mnist')]);
    expect(loc.note).toBeUndefined();
    const direct = locateFashionMnist({ env: { KD_DATA_DIR: sys }, systemDirs: [] });
    expect(direct.dir).toBe(sys);
    const viaSystem = locateFashionMnist({
      env: { KD_DATA_DIR: path.join(tmp, 'nowhere') },
      systemDirs: [sys],
    });
    expect(viaSystem.dir).toBe(sys);
    expect(viaSystem.searched).toEqual([`${path.join(tmp, 'nowhere')} (absent)`, sys]);
  });

  it('falls back to the shipped subset and says where it looked', () => {
    const envDir = path.join(tmp, 'env-empty');
    fs.mkdirSync(envDir);
    const absent = path.join(tmp, 'no-system');
    const loc = locateFashionMnist({ env: { KD_DATA_DIR: envDir }, systemDirs: [absent] });
    expect(loc.dir).toBe(SHIPPED_SUBSET_DIR);
    expect(loc.source).toBe('subset');
    expect(loc.searched).toEqual([envDir, `${absent} (absent)`, SHIPPED_SUBSET_DIR]);
    expect(loc.note).toBe(
      `full Fashion-MNIST not found (looked in ${envDir}, ${absent} (absent)); using the shipped subset of 6000 train / 2000 test images`,
    );
  });

  it('uses the subset on request', () => {
    const loc = locateFashionMnist({ subset: true });
    expect(loc.source).toBe('subset');
    expect(loc.note).toBe('using the shipped subset of 6000 train / 2000 test images (requested)');
    const e = catchKd(() => locateFashionMnist({ subset: true, path: tmp }));
    expect(e.code).toBe('KD_SPEC_INVALID');
    expect(e.path).toBe('subset');
    expect(e.message).toContain(tmp);
  });

  (fullPresent ? it : it.skip)('finds the Debian package folder by default when KD_DATA_DIR is unset', () => {
    const loc = locateFashionMnist({ env: NO_ENV });
    expect(loc.dir).toBe(DEBIAN_FASHION_MNIST_DIR);
    expect(loc.source).toBe('full');
    const { train, test } = loadFashionMnist({ env: NO_ENV, limit: { train: 10, test: 4 } });
    expect(train.name).toBe('fashion-mnist:train');
    expect(train.source).toBe('full');
    expect(train.note).toBe('limited to the first 10 of 60000 examples');
    expect(test.note).toBe('limited to the first 4 of 10000 examples');
    expect(Array.from(train.labels)).toEqual([9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
    expect(Array.from(test.labels)).toEqual([9, 2, 1, 1]);
  });
});

describe('loadFashionMnist', () => {
  it('reads a located copy exactly, with class names', () => {
    const dir = path.join(tmp, 'load');
    fakeCopy(dir);
    const { train, test } = loadFashionMnist({ path: dir });
    expect(train.name).toBe('fashion-mnist:train');
    expect(train.source).toBe('full');
    expect(train.shape).toEqual([28, 28, 1]);
    expect(train.numClasses).toBe(10);
    expect(train.classNames).toEqual([...FASHION_MNIST_CLASSES]);
    expect(Array.from(train.labels)).toEqual([9, 0, 4]);
    expect(train.images[0]).toBe(Math.fround(9 / 255));
    expect(train.images[784]).toBe(Math.fround(10 / 255));
    expect(train.images[2 * 784 + 783]).toBe(Math.fround(24 / 255));
    expect(Array.from(test.labels)).toEqual([1, 2]);
    expect(test.images[784]).toBe(Math.fround(12 / 255));
  });

  it('loads the subset with limits and keeps the fallback note', () => {
    const { train, test } = loadFashionMnist({ env: NO_ENV, systemDirs: [], limit: { train: 5, test: 3 } });
    expect(train.name).toBe('fashion-mnist-subset:train');
    expect(train.source).toBe('subset');
    expect(Array.from(train.labels)).toEqual([9, 0, 0, 3, 0]);
    expect(Array.from(test.labels)).toEqual([9, 2, 1]);
    const raw = readIdx(path.join(SHIPPED_SUBSET_DIR, 'train-images-idx3-ubyte.gz')).data;
    expect(Array.from(train.images.subarray(0, 784))).toEqual(
      Array.from(raw.subarray(0, 784), (v) => Math.fround(v / 255)),
    );
    expect(train.note).toBe(
      'full Fashion-MNIST not found (looked in no folders: KD_DATA_DIR unset and no system folder configured); ' +
        'using the shipped subset of 6000 train / 2000 test images; limited to the first 5 of 6000 examples',
    );
  });

  it('rejects a bad limit', () => {
    const e = catchKd(() => loadFashionMnist({ subset: true, limit: { train: -1 } }));
    expect(e.code).toBe('KD_SPEC_INVALID');
    expect(e.path).toBe('limit.train');
  });

  it('rejects images that are not 28x28', () => {
    const dir = path.join(tmp, 'wrong-shape');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'train-images-idx3-ubyte'), encodeIdx([1, 2, 2], [1, 2, 3, 4]));
    fs.writeFileSync(path.join(dir, 'train-labels-idx1-ubyte'), encodeIdx([1], [0]));
    fs.writeFileSync(path.join(dir, 't10k-images-idx3-ubyte'), encodeIdx([1, 2, 2], [1, 2, 3, 4]));
    fs.writeFileSync(path.join(dir, 't10k-labels-idx1-ubyte'), encodeIdx([1], [0]));
    const e = catchKd(() => loadFashionMnist({ path: dir }));
    expect(e.code).toBe('KD_DATA_CORRUPT');
    expect(e.path).toBe(path.join(dir, 'train-images-idx3-ubyte'));
    expect(e.message).toBe(
      `${path.join(dir, 'train-images-idx3-ubyte')}: expected 28x28x1 Fashion-MNIST images, found 2x2x1`,
    );
  });
});
