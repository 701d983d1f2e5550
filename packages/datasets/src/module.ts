import { DATASET_DEFINITION, KdError, type DatasetDefinition } from '@tfkd/kd-core';
import { ContainerModule } from 'inversify';
import * as path from 'path';
import { z } from 'zod';
import { readCifar } from './cifar';
import { loadFashionMnist } from './fashion-mnist';
import { fashionScenesTaskDataset } from './fashion-scenes';
import { loadIdxDataset } from './idx';
import { syntheticSplits } from './synthetic';

const limit = z
  .object({ train: z.number().int().positive().optional(), test: z.number().int().positive().optional() })
  .strict()
  .optional()
  .describe('keep only the first N examples of each split');

/** A data path from a spec: relative paths are relative to the spec's folder (as `load:` is), else to the working folder. */
function fromSpec(p: string, ctx?: { specDir?: string }): string {
  return path.resolve(ctx?.specDir ?? process.cwd(), p);
}

/**
 * Runs a loader whose option errors (KD_SPEC_INVALID) name the option key alone (`train`, `shape`),
 * as the loaders do when called directly, and reports them at the spec path (`data.train`).
 */
async function atSpecPath<T>(ctx: { specPath?: string } | undefined, load: () => T | Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (e) {
    const prefix = ctx?.specPath;
    if (!(e instanceof KdError) || e.code !== 'KD_SPEC_INVALID' || !prefix || e.path === undefined || path.isAbsolute(e.path) || e.path === prefix || e.path.startsWith(`${prefix}.`)) throw e;
    throw new KdError(e.code, e.message, { path: `${prefix}.${e.path}`, fix: e.fix, cause: e });
  }
}

/** `data: { name: fashion-mnist }` — full set if found (path, KD_DATA_DIR, Debian package), else the shipped subset. */
export const fashionMnistDataset: DatasetDefinition = {
  id: 'fashion-mnist',
  pathOptions: ['path'],
  describe: 'Fashion-MNIST (28x28x1, 10 classes): data.path, $KD_DATA_DIR, /usr/share/datasets/fashion-mnist, else the shipped 6000/2000 subset',
  options: z
    .object({
      path: z.string().optional().describe('folder holding the four IDX files'),
      subset: z.boolean().default(false).describe('force the shipped subset'),
      limit,
    })
    .strict(),
  async load(o, ctx) {
    const opts = o as { path?: string; subset?: boolean; limit?: { train?: number; test?: number } };
    return atSpecPath(ctx, () => loadFashionMnist({ ...opts, ...(opts.path ? { path: fromSpec(opts.path, ctx) } : {}) }));
  },
};

export const syntheticDataset: DatasetDefinition = {
  id: 'synthetic',
  describe: 'seeded class-conditional Gaussian blobs',
  options: z
    .object({
      train: z.number().int().positive().default(1000),
      test: z.number().int().positive().default(200),
      numClasses: z.number().int().min(2).default(10),
      shape: z.tuple([z.number().int().positive(), z.number().int().positive(), z.number().int().positive()]).default([28, 28, 1]),
      seed: z.number().int().min(0).optional().describe('default: the run seed'),
      noise: z.number().positive().default(0.15),
    })
    .strict(),
  async load(o, ctx) {
    const opts = o as { train: number; test: number; numClasses: number; shape: [number, number, number]; seed?: number; noise: number };
    return atSpecPath(ctx, () => syntheticSplits({ ...opts, seed: opts.seed ?? ctx.seed }));
  },
};

function cifar(variant: 'cifar10' | 'cifar100'): DatasetDefinition {
  return {
    id: variant,
    pathOptions: ['path'],
    describe: `${variant.toUpperCase()} binary version (32x32x3) from data.path`,
    options: z
      .object({ path: z.string().min(1), label: z.enum(['fine', 'coarse']).default('fine'), limit })
      .strict(),
    async load(o, ctx) {
      const opts = o as { path: string; label: 'fine' | 'coarse'; limit?: { train?: number; test?: number } };
      return atSpecPath(ctx, () => readCifar(fromSpec(opts.path, ctx), { variant, label: opts.label, limit: opts.limit }));
    },
  };
}

const split = z.object({ images: z.string().min(1), labels: z.string().min(1) }).strict();

export const idxDataset: DatasetDefinition = {
  id: 'idx',
  pathOptions: ['dir'],
  describe: 'any image/label pair of IDX files (MNIST-style), per split',
  options: z.object({ train: split, test: split, numClasses: z.number().int().min(2).optional(), dir: z.string().default('.') }).strict(),
  async load(o, ctx) {
    const opts = o as { train: z.infer<typeof split>; test: z.infer<typeof split>; numClasses?: number; dir: string };
    const at = (f: string) => path.resolve(fromSpec(opts.dir, ctx), f);
    const read = (s: z.infer<typeof split>, name: string) =>
      loadIdxDataset({ images: at(s.images), labels: at(s.labels), name, numClasses: opts.numClasses, source: 'idx' });
    return atSpecPath(ctx, () => ({ train: read(opts.train, 'idx:train'), test: read(opts.test, 'idx:test') }));
  },
};

export const DATASETS: readonly DatasetDefinition[] = [fashionMnistDataset, syntheticDataset, cifar('cifar10'), cifar('cifar100'), idxDataset, fashionScenesTaskDataset];

/** Binds every dataset definition to DATASET_DEFINITION. */
export const datasetsModule = new ContainerModule((o) => {
  for (const d of DATASETS) o.bind<DatasetDefinition>(DATASET_DEFINITION).toConstantValue(d);
});
export const kdModule = datasetsModule;
