/**
 * Plain-data datasets: typed arrays only, no tensors, so they are cheap to copy, slice and test.
 * Batching, tensors and the seeded hold-out split are `@tfkd/kd-core`'s (`epochBatches`,
 * `batchTensors`, `selectSamples`, `holdOut`): this package only reads and makes data.
 */

/** Where a dataset came from. */
export type DatasetSource = 'full' | 'subset' | 'synthetic' | 'cifar' | 'idx';

export interface Dataset {
  name: string;
  /** N*H*W*C values, NHWC order, scaled to [0, 1]. */
  images: Float32Array;
  /** N class indices in [0, numClasses). */
  labels: Int32Array;
  /** Shape of one example: [H, W, C]. */
  shape: [number, number, number];
  numClasses: number;
  classNames?: string[];
  source: DatasetSource;
  /** Anything the caller should know (a fallback that was taken, a limit that was applied). */
  note?: string;
}

export interface DataSplits {
  train: Dataset;
  test: Dataset;
}

/** What `readIdx` returns for each IDX element type. */
export type IdxTypedArray = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

/** Number of examples in a dataset. */
export function datasetSize(ds: Dataset): number {
  return ds.labels.length;
}

/** Values per example (H*W*C). */
export function exampleSize(ds: Pick<Dataset, 'shape'>): number {
  return ds.shape[0] * ds.shape[1] * ds.shape[2];
}
