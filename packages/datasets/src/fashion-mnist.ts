/**
 * Fashion-MNIST: find a full copy (explicit path → KD_DATA_DIR → Debian package folder) or fall
 * back, saying so, to the subset shipped in this package's `data/` folder.
 */
import * as fs from 'fs';
import * as path from 'path';
import { KdError } from '@tfkd/kd-core';
import { loadIdxDataset } from './idx';
import type { DataSplits } from './types';

export const FASHION_MNIST_CLASSES: readonly string[] = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

/** Where the Debian `fashion-mnist` data package installs the official files. */
export const DEBIAN_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** The subset shipped with this package (relative to this file: works from src/, dist/ and node_modules). */
export const SHIPPED_SUBSET_DIR = path.resolve(__dirname, '..', 'data', 'fashion-mnist-subset');

/** Examples in the shipped subset: the first 6000 train and first 2000 test images of the official set. */
export const SHIPPED_SUBSET_COUNTS = { train: 6000, test: 2000 } as const;

const BASES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
} as const;

export type FashionMnistFiles = Record<keyof typeof BASES, string>;

export interface LocateFashionMnistOptions {
  /** A folder holding the four files (or a `fashion-mnist` subfolder that does). Must exist. */
  path?: string;
  /** Skip the search and use the shipped subset. */
  subset?: boolean;
  /** Environment to read KD_DATA_DIR from (default: process.env). */
  env?: Record<string, string | undefined>;
  /** System folders searched after KD_DATA_DIR (default: [DEBIAN_FASHION_MNIST_DIR]). */
  systemDirs?: string[];
}

export interface FashionMnistLocation {
  dir: string;
  files: FashionMnistFiles;
  source: 'full' | 'subset';
  /** Every folder looked in, in order, up to and including `dir`. */
  searched: string[];
  note?: string;
}

const fileList = Object.values(BASES)
  .map((b) => `${b}.gz`)
  .join(', ');

/** The four files in `dir` (gzipped name preferred, raw name accepted), or the names that are missing. */
function filesIn(dir: string): { files?: FashionMnistFiles; missing: string[] } {
  const files = {} as FashionMnistFiles;
  const missing: string[] = [];
  for (const [key, base] of Object.entries(BASES) as [keyof typeof BASES, string][]) {
    const found = [`${base}.gz`, base].map((n) => path.join(dir, n)).find((f) => isFile(f));
    if (found) files[key] = found;
    else missing.push(`${base}.gz`);
  }
  return missing.length ? { missing } : { files, missing };
}

function isFile(f: string): boolean {
  try {
    return fs.statSync(f).isFile();
  } catch {
    return false;
  }
}

function isDir(f: string): boolean {
  try {
    return fs.statSync(f).isDirectory();
  } catch {
    return false;
  }
}

function sourceOf(dir: string): 'full' | 'subset' {
  const real = (p: string): string => {
    try {
      return fs.realpathSync(p);
    } catch {
      return path.resolve(p);
    }
  };
  return real(dir) === real(SHIPPED_SUBSET_DIR) ? 'subset' : 'full';
}

/** Finds Fashion-MNIST. Search order: `path`, KD_DATA_DIR (itself, then `fashion-mnist/`), system dirs, shipped subset. */
export function locateFashionMnist(opts: LocateFashionMnistOptions = {}): FashionMnistLocation {
  const searched: string[] = [];
  const tryDir = (dir: string): FashionMnistLocation | undefined => {
    if (!isDir(dir)) {
      searched.push(`${dir} (absent)`);
      return undefined;
    }
    for (const d of [dir, path.join(dir, 'fashion-mnist')]) {
      if (!isDir(d)) continue;
      searched.push(d);
      const { files } = filesIn(d);
      if (files) return { dir: d, files, source: sourceOf(d), searched: searched.slice() };
    }
    return undefined;
  };

  if (opts.subset && opts.path !== undefined) {
    throw new KdError(
      'KD_SPEC_INVALID',
      `locateFashionMnist: give either \`path\` (${opts.path}) or \`subset: true\`, not both`,
      {
        path: 'subset',
        fix: 'Drop `subset: true` to read the folder, or drop `path` to use the shipped subset.',
      },
    );
  }
  if (opts.path !== undefined) {
    const dir = path.resolve(opts.path);
    if (!fs.existsSync(dir)) {
      throw new KdError('KD_DATA_MISSING', `Fashion-MNIST folder ${dir} does not exist`, {
        path: dir,
        fix: `Pass a folder holding ${fileList} (or a fashion-mnist/ subfolder that does), or omit the path to search KD_DATA_DIR, ${DEBIAN_FASHION_MNIST_DIR} and the shipped subset.`,
      });
    }
    const hit = tryDir(dir);
    if (hit) return hit;
    throw new KdError(
      'KD_DATA_MISSING',
      `Fashion-MNIST folder ${dir} lacks ${filesIn(dir).missing.join(', ')}`,
      {
        path: dir,
        fix: `Put ${fileList} into ${dir} (gzipped or not), or omit the path to use the default search.`,
      },
    );
  }

  if (!opts.subset) {
    const env = opts.env ?? process.env;
    const candidates = [
      ...(env.KD_DATA_DIR ? [path.resolve(env.KD_DATA_DIR)] : []),
      ...(opts.systemDirs ?? [DEBIAN_FASHION_MNIST_DIR]),
    ];
    for (const c of candidates) {
      const hit = tryDir(c);
      if (hit) return hit;
    }
  }
  const looked = searched.join(', ') || 'no folders: KD_DATA_DIR unset and no system folder configured';
  searched.push(SHIPPED_SUBSET_DIR);
  const { files, missing } = filesIn(SHIPPED_SUBSET_DIR);
  if (!files) {
    throw new KdError(
      'KD_DATA_MISSING',
      `Fashion-MNIST not found (looked in ${searched.join(', ')}); the shipped subset lacks ${missing.join(', ')}`,
      {
        path: SHIPPED_SUBSET_DIR,
        fix: `Set KD_DATA_DIR to a folder holding ${fileList}, install the Debian fashion-mnist package, or reinstall @tfkd/datasets (its data/ folder is incomplete).`,
      },
    );
  }
  const { train, test } = SHIPPED_SUBSET_COUNTS;
  const note = opts.subset
    ? `using the shipped subset of ${train} train / ${test} test images (requested)`
    : `full Fashion-MNIST not found (looked in ${looked}); using the shipped subset of ${train} train / ${test} test images`;
  return { dir: SHIPPED_SUBSET_DIR, files, source: 'subset', searched: searched.slice(), note };
}

export interface LoadFashionMnistOptions extends LocateFashionMnistOptions {
  /** Keep only the first N examples of each split. */
  limit?: { train?: number; test?: number };
}

function checkLimit(v: number | undefined, key: string): void {
  if (v !== undefined && !(Number.isInteger(v) && v >= 0)) {
    throw new KdError('KD_SPEC_INVALID', `limit.${key} must be a non-negative integer, got ${v}`, {
      path: `limit.${key}`,
      fix: `Pass a whole number of examples, e.g. limit: { ${key}: 1000 }.`,
    });
  }
}

/** Locates and reads Fashion-MNIST into train/test Datasets (28x28x1, pixels in [0, 1], 10 classes). */
export function loadFashionMnist(opts: LoadFashionMnistOptions = {}): DataSplits {
  checkLimit(opts.limit?.train, 'train');
  checkLimit(opts.limit?.test, 'test');
  const loc = locateFashionMnist(opts);
  const prefix = loc.source === 'subset' ? 'fashion-mnist-subset' : 'fashion-mnist';
  const common = {
    numClasses: 10,
    classNames: FASHION_MNIST_CLASSES.slice(),
    source: loc.source,
    note: loc.note,
  };
  const read = (images: string, labels: string, split: 'train' | 'test', limit?: number) => {
    const ds = loadIdxDataset({ ...common, images, labels, name: `${prefix}:${split}`, limit });
    if (ds.shape[0] !== 28 || ds.shape[1] !== 28 || ds.shape[2] !== 1) {
      throw new KdError(
        'KD_DATA_CORRUPT',
        `${images}: expected 28x28x1 Fashion-MNIST images, found ${ds.shape.join('x')}`,
        {
          path: images,
          fix: 'Point at the official Fashion-MNIST files, or use loadIdxDataset for other IDX image sets.',
        },
      );
    }
    return ds;
  };
  return {
    train: read(loc.files.trainImages, loc.files.trainLabels, 'train', opts.limit?.train),
    test: read(loc.files.testImages, loc.files.testLabels, 'test', opts.limit?.test),
  };
}
