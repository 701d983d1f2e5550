import { KdError } from './errors';

/**
 * What a run trains its models for (spec `task:`). A dataset yields that task's targets (class
 * labels; boxes and classes per image; per-pixel class maps), models expose its heads as named
 * outputs, and evaluation runs its metric. Plugins, datasets and zoo models declare the tasks they
 * support (`tasks:`; absent: classification only), and the plan refuses any other combination.
 */
export const TASKS = ['classification', 'detection', 'segmentation'] as const;
export type Task = (typeof TASKS)[number];

/** The run's task: the spec's `task:`, classification when absent (a classification spec has no `task` key, so its hash is unchanged). */
export function runTask(spec: { task?: Task }): Task {
  return spec.task ?? 'classification';
}

/** The tasks a plugin, dataset or model definition supports (`tasks`, default classification only). */
export function supportedTasks(def: { tasks?: readonly Task[] }): readonly Task[] {
  return def.tasks ?? ['classification'];
}

/**
 * Per task: the label loss a teacher trained from labels uses, and the metric every evaluation
 * computes (`metric/<id>`; classification's accuracy and NLL are the engine's own).
 */
export const TASK_DEFAULTS: Readonly<Record<Task, { labelLoss: string; metric: string | null }>> = {
  classification: { labelLoss: 'loss/cross-entropy', metric: null },
  detection: { labelLoss: 'loss/detection', metric: 'metric/map' },
  segmentation: { labelLoss: 'loss/seg-cross-entropy', metric: 'metric/miou' },
};

/** The objects of one image (detection targets): 4 numbers per object (x1, y1, x2, y2 in pixels, edges) and one class each. */
export interface ObjectList {
  boxes: ArrayLike<number>;
  classes: ArrayLike<number>;
}

/**
 * KD_TASK_MISMATCH: `what` (`'loss/hinton-kd'`, `dataset 'fashion-mnist'`) supports `supports`,
 * not the run's `task`. `alternatives` are ids that would fit (named in the fix).
 */
export function taskMismatch(what: string, supports: readonly Task[], task: Task, path: string, alternatives: readonly string[] = []): KdError {
  const other = supports.filter((t) => t !== task);
  const instead = alternatives.length ? `use one made for ${task} (${alternatives.slice(0, 8).join(', ')}${alternatives.length > 8 ? ', …' : ''})` : `use one made for ${task} (\`kd list\` shows each one's tasks)`;
  return new KdError('KD_TASK_MISMATCH', `${what} supports ${supports.join(', ')}; this run's task is ${task}`, {
    path,
    fix: `${instead}, or set \`task: ${other[0] ?? supports[0]}\` if the run is meant to be ${other[0] ?? supports[0]}`,
  });
}
