import { holdOut, KdError, keepClassFractions, runTask, supportedTasks, taskMismatch, validate, type DataSplits, type RunSpec } from '@tfkd/kd-core';
import type { Registry } from './registry';

/**
 * A run's data. `runSeed`: the run's `seed` when the samples depend on it — the dataset read it (its
 * own seed option left out: `synthetic`, `fashion-scenes`) or `calibrate:` held out a part chosen by
 * it; absent when every run seed gets the same samples. A teacher trained on them is keyed by it.
 */
export type RunData = DataSplits & { note?: string; runSeed?: number };

/**
 * A spec's data: the dataset definition named by `data.name`, its options validated at `data.*`,
 * relative paths resolved against the spec's folder (`specDir`, like `load:` and `packages:`), and
 * then the generic data options — `classFractions` (class imbalance), `validation` (the test split
 * replaced by a held-out part of the training set) — and the `calibrate:` hold-out split off the
 * training set, in that order. Loaded once per plan, shared by its runs.
 */
export async function loadRunData(spec: RunSpec, registry: Registry, specDir: string): Promise<RunData> {
  const { name, validation, classFractions, ...rest } = spec.data;
  const def = registry.dataset(name, 'data.name');
  const task = runTask(spec);
  if (!supportedTasks(def).includes(task)) {
    throw taskMismatch(`dataset '${name}'`, supportedTasks(def), task, 'data.name', registry.datasets().filter((d) => supportedTasks(d).includes(task)).map((d) => d.id));
  }
  if (task !== 'classification' && (classFractions || spec.calibrate)) {
    // Both are defined on class labels: per-image classes (imbalance) and softmax confidences (temperature).
    const at = classFractions ? 'data.classFractions' : 'calibrate';
    throw new KdError('KD_TASK_MISMATCH', `\`${at}\` is defined for classification only; this run's task is ${task}`, { path: at, fix: `remove \`${at}\` from the ${task} spec` });
  }
  const options = validate(def.options, rest, { prefix: 'data' });
  // A loader that reads the run's seed (its own `seed` option left out) draws other samples for another.
  let readSeed = false;
  const ctx = {
    get seed() {
      readSeed = true;
      return spec.seed;
    },
    specPath: 'data',
    specDir,
    ...(spec.task ? { task } : {}),
  };
  let splits: RunData = await def.load(options as Record<string, unknown>, ctx);
  const missing = (['train', 'test'] as const).find((k) => (task === 'detection' && !splits[k].objects) || (task === 'segmentation' && !splits[k].masks));
  if (missing) {
    throw new KdError('KD_TASK_MISMATCH', `dataset '${name}' declares ${task} but its ${missing} split has no ${task === 'detection' ? 'objects' : 'masks'}`, {
      path: 'data.name',
      fix: `the dataset's load() must set \`${task === 'detection' ? 'objects' : 'masks'}\` for task ${task} (kd-core's Dataset)`,
    });
  }
  if (splits.train.labels.length === 0) {
    throw new KdError('KD_DATA_CORRUPT', `dataset '${name}' has no training samples`, { path: 'data', fix: 'check the data folder' });
  }
  if (classFractions) {
    if (classFractions.length !== splits.train.numClasses) {
      throw new KdError('KD_SPEC_INVALID', `data.classFractions has ${classFractions.length} entries, the dataset has ${splits.train.numClasses} classes`, {
        path: 'data.classFractions',
        fix: `Give one fraction per class (${splits.train.numClasses} numbers in [0, 1]).`,
      });
    }
    splits = { ...splits, train: keepClassFractions(splits.train, classFractions) };
  }
  if (validation) {
    const { train, heldOut } = holdOut(splits.train, validation.fraction, validation.seed);
    splits = { ...splits, train, test: { ...heldOut, name: `${heldOut.name}, in place of the test split` } };
  }
  if (splits.train.labels.length === 0) {
    throw new KdError('KD_DATA_CORRUPT', `dataset '${name}' has no training samples left after data.classFractions/validation`, {
      path: 'data',
      fix: 'raise the class fractions or lower validation.fraction',
    });
  }
  if (spec.calibrate) {
    const { train, heldOut } = holdOut(splits.train, spec.calibrate.holdout, spec.seed);
    // the hold-out is drawn with the run's seed, and so are the training samples left
    return { ...splits, train, validation: heldOut, runSeed: spec.seed };
  }
  return readSeed ? { ...splits, runSeed: spec.seed } : splits;
}
