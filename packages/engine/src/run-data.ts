import { holdOut, KdError, validate, type DataSplits, type RunSpec } from '@tfkd/kd-core';
import type { Registry } from './registry';

/**
 * A spec's data: the dataset definition named by `data.name`, its options validated at `data.*`,
 * relative paths resolved against the spec's folder (`specDir`, like `load:` and `packages:`), and
 * the `calibrate:` hold-out split off the training set. Loaded once per plan, shared by its runs.
 */
export async function loadRunData(spec: RunSpec, registry: Registry, specDir: string): Promise<DataSplits & { note?: string }> {
  const { name, ...rest } = spec.data;
  const def = registry.dataset(name, 'data.name');
  const options = validate(def.options, rest, { prefix: 'data' });
  const splits = await def.load(options as Record<string, unknown>, { seed: spec.seed, specPath: 'data', specDir });
  if (splits.train.labels.length === 0) {
    throw new KdError('KD_DATA_CORRUPT', `dataset '${name}' has no training samples`, { path: 'data', fix: 'check the data folder' });
  }
  if (spec.calibrate) {
    const { train, heldOut } = holdOut(splits.train, spec.calibrate.holdout, spec.seed);
    return { ...splits, train, validation: heldOut };
  }
  return splits;
}
