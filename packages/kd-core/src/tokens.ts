import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { Task } from './task';

/**
 * DI tokens. Few and global (`Symbol.for`) so that two copies of kd-core in one process (a
 * third-party plugin with its own install) still agree on them.
 */
export const PLUGIN_DEFINITION = Symbol.for('kd.PluginDefinition');
export const MODEL_DEFINITION = Symbol.for('kd.ModelDefinition');
export const DATASET_DEFINITION = Symbol.for('kd.DatasetDefinition');

/** Options every zoo model accepts; a model may accept more (validated by its own schema). */
export interface ModelBuildOptions {
  /** NHWC input shape of one image, e.g. [28, 28, 1]. */
  inputShape: number[];
  numClasses: number;
  /** Initialiser seed, so a run is reproducible. */
  seed?: number;
  [key: string]: unknown;
}

export interface ModelDefinition {
  /** Zoo id as written in a spec (`model: cnn-small`). */
  id: string;
  describe: string;
  /** Names of the layers exposed as taps, shallow to deep. */
  taps: string[];
  /** The run tasks the model is made for (its heads); absent: classification only. */
  tasks?: readonly Task[];
  build(options: ModelBuildOptions): LayersModel;
}

/** One split of a dataset: plain typed arrays, no tensors (they are made per batch). */
export interface Dataset {
  name: string;
  /** N·H·W·C floats in [0, 1], NHWC. */
  images: Float32Array;
  labels: Int32Array;
  shape: [number, number, number];
  numClasses: number;
  classNames?: string[];
  /** `full`, `subset`, `synthetic`, `cifar`, `idx`. */
  source: string;
  note?: string;
  /**
   * Detection targets (a dataset loaded for `task: detection`): the objects of every sample, flat.
   * `labels` then holds no class (zeros: one entry per sample).
   */
  objects?: DatasetObjects;
  /** Segmentation targets (`task: segmentation`): N·H·W class indices in [0, numClasses), sample-major. */
  masks?: Int32Array;
}

/** Objects stored flat: sample i owns objects offsets[i] … offsets[i + 1] − 1. */
export interface DatasetObjects {
  /** 4 per object: x1, y1, x2, y2 in pixels (edges: a one-pixel object at column 5, row 7 is [5, 7, 6, 8]). */
  boxes: Float32Array;
  /** One class per object, in [0, numClasses). */
  classes: Int32Array;
  /** N + 1 entries. */
  offsets: Int32Array;
}

export interface DataSplits {
  train: Dataset;
  test: Dataset;
  /** Held out of the training data (spec `calibrate:`), never trained on. */
  validation?: Dataset;
}

/** What a dataset package binds to DATASET_DEFINITION; a spec picks one by `data.name`. */
export interface DatasetDefinition {
  id: string;
  describe: string;
  /** Schema of the spec's `data:` block (without `name`). */
  options: import('zod').ZodType;
  /** Option keys that are file paths (relative ones are relative to the spec's folder): a resolved spec makes them absolute. */
  pathOptions?: string[];
  /** The run tasks whose targets the dataset yields; absent: classification only. `load` gets the run's task. */
  tasks?: readonly Task[];
  /**
   * `specDir`: the spec's folder; relative paths among the options are resolved against it (absent
   * when a dataset is loaded outside a spec, e.g. `kd eval --data-path`: then the working folder).
   */
  load(options: Record<string, unknown>, ctx: { seed: number; specPath: string; specDir?: string; task?: Task }): Promise<DataSplits>;
}

/** Model services the engine needs and the models package provides (bound to MODEL_TOOLS). */
export interface ModelTools {
  /** Forward FLOPs per image. */
  countFlops(model: LayersModel): number;
  save(model: LayersModel, dir: string): Promise<void>;
  load(dir: string): Promise<LayersModel>;
}
export const MODEL_TOOLS = Symbol.for('kd.ModelTools');

/** A tfjs backend the engine can select (`backend:` in the spec). Bound to BACKEND_PROVIDER. */
export interface BackendProvider {
  name: 'wasm' | 'cpu' | 'tensorflow';
  /** Higher wins when several providers offer the same name. */
  priority: number;
  /** What this provider adds, for metrics.json (`wasm + training kernels`). */
  label: string;
  /** Initialise and `setBackend`; false (not throw) when it cannot be used here. */
  init(): Promise<boolean>;
}
export const BACKEND_PROVIDER = Symbol.for('kd.BackendProvider');
