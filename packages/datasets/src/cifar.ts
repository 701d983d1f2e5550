/**
 * CIFAR-10 / CIFAR-100 "binary version" reader. Records are a label byte (CIFAR-10) or a coarse and
 * a fine label byte (CIFAR-100) followed by 3072 pixel bytes in CHW order (1024 R, 1024 G, 1024 B,
 * rows of 32); they are returned as HWC float images in [0, 1].
 */
import * as fs from 'fs';
import * as path from 'path';
import { KdError } from '@tfkd/kd-core';
import { maybeGunzip, readDataFile } from './idx';
import type { DataSplits, Dataset } from './types';

export const CIFAR10_CLASSES: readonly string[] = [
  'airplane',
  'automobile',
  'bird',
  'cat',
  'deer',
  'dog',
  'frog',
  'horse',
  'ship',
  'truck',
];

export interface ReadCifarOptions {
  variant: 'cifar10' | 'cifar100';
  /** CIFAR-100 only: which label to use (default 'fine', 100 classes; 'coarse' has 20). */
  label?: 'fine' | 'coarse';
  /** Keep only the first N examples of each split. */
  limit?: { train?: number; test?: number };
}

const PIXELS = 32 * 32;
const IMAGE_BYTES = 3 * PIXELS;

const LAYOUT = {
  cifar10: {
    train: [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`),
    test: ['test_batch.bin'],
    sub: 'cifar-10-batches-bin',
  },
  cifar100: { train: ['train.bin'], test: ['test.bin'], sub: 'cifar-100-binary' },
} as const;

function isFile(f: string): boolean {
  try {
    return fs.statSync(f).isFile();
  } catch {
    return false;
  }
}

function readNames(file: string): string[] | undefined {
  if (!isFile(file)) return undefined;
  const names = fs
    .readFileSync(file, 'utf8')
    .split(/\r?\n/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  return names.length ? names : undefined;
}

/** Reads the train and test splits of a CIFAR binary folder (or its cifar-10-batches-bin / cifar-100-binary subfolder). */
export function readCifar(dir: string, opts: ReadCifarOptions): DataSplits {
  const layout = LAYOUT[opts.variant];
  if (!layout) {
    throw new KdError(
      'KD_SPEC_INVALID',
      `readCifar: variant must be 'cifar10' or 'cifar100', got ${String(opts.variant)}`,
      {
        path: 'variant',
        fix: "Pass { variant: 'cifar10' } or { variant: 'cifar100' }.",
      },
    );
  }
  const label = opts.label ?? 'fine';
  if (label !== 'fine' && !(label === 'coarse' && opts.variant === 'cifar100')) {
    throw new KdError('KD_SPEC_INVALID', `readCifar: label '${label}' is not available for ${opts.variant}`, {
      path: 'label',
      fix: "Use label 'fine' (or omit it); 'coarse' exists only for cifar100.",
    });
  }
  const root = path.resolve(dir);
  if (!fs.existsSync(root)) {
    throw new KdError('KD_DATA_MISSING', `CIFAR folder ${root} does not exist`, {
      path: root,
      fix: `Download the binary version of ${opts.variant} and pass the extracted folder.`,
    });
  }
  const base =
    !isFile(path.join(root, layout.test[0])) && fs.existsSync(path.join(root, layout.sub))
      ? path.join(root, layout.sub)
      : root;

  const recordBytes = (opts.variant === 'cifar10' ? 1 : 2) + IMAGE_BYTES;
  const labelOffset = opts.variant === 'cifar10' || label === 'coarse' ? 0 : 1;
  const numClasses = opts.variant === 'cifar10' ? 10 : label === 'coarse' ? 20 : 100;
  const classNames =
    opts.variant === 'cifar10'
      ? (readNames(path.join(base, 'batches.meta.txt')) ?? CIFAR10_CLASSES.slice())
      : readNames(path.join(base, `${label}_label_names.txt`));

  const readSplit = (names: readonly string[], split: 'train' | 'test', limit?: number): Dataset => {
    if (limit !== undefined && !(Number.isInteger(limit) && limit >= 0)) {
      throw new KdError('KD_SPEC_INVALID', `limit.${split} must be a non-negative integer, got ${limit}`, {
        path: `limit.${split}`,
        fix: `Pass a whole number of examples, e.g. limit: { ${split}: 1000 }.`,
      });
    }
    const parts = names.map((n) => {
      const file = path.join(base, n);
      const buf = maybeGunzip(readDataFile(file, `${opts.variant} batch file`), file);
      if (buf.length === 0 || buf.length % recordBytes !== 0) {
        throw new KdError(
          'KD_DATA_CORRUPT',
          `${file}: expected a whole number of ${recordBytes}-byte records, found ${buf.length} bytes ` +
            `(${Math.floor(buf.length / recordBytes)} records + ${buf.length % recordBytes} bytes)`,
          {
            path: file,
            fix: 'Re-download or re-extract the CIFAR binary archive; the file is truncated or not a CIFAR batch.',
          },
        );
      }
      return { file, buf, n: buf.length / recordBytes };
    });
    const total = parts.reduce((a, p) => a + p.n, 0);
    const n = limit === undefined ? total : Math.min(total, limit);
    const images = new Float32Array(n * IMAGE_BYTES);
    const labels = new Int32Array(n);
    let r = 0;
    for (const { file, buf, n: count } of parts) {
      for (let i = 0; i < count && r < n; i++, r++) {
        const off = i * recordBytes;
        const l = buf[off + labelOffset];
        if (l >= numClasses) {
          throw new KdError(
            'KD_DATA_CORRUPT',
            `${file}: expected ${label} labels in [0, ${numClasses - 1}], found ${l} in record ${i}`,
            {
              path: file,
              fix: `Check that this is a ${opts.variant} file (variant and label options match the data).`,
            },
          );
        }
        labels[r] = l;
        const px = off + recordBytes - IMAGE_BYTES;
        const dst = r * IMAGE_BYTES;
        for (let c = 0; c < 3; c++) {
          for (let p = 0; p < PIXELS; p++) images[dst + p * 3 + c] = buf[px + c * PIXELS + p] / 255;
        }
      }
    }
    const ds: Dataset = {
      name: `${opts.variant}:${split}`,
      images,
      labels,
      shape: [32, 32, 3],
      numClasses,
      source: 'cifar',
    };
    if (classNames) ds.classNames = classNames.slice();
    if (n < total) ds.note = `limited to the first ${n} of ${total} ${split} images`;
    return ds;
  };

  return {
    train: readSplit(layout.train, 'train', opts.limit?.train),
    test: readSplit(layout.test, 'test', opts.limit?.test),
  };
}
