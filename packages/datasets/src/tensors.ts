/**
 * The one place that touches tfjs: turning a plain batch into tensors. tfjs-core is loaded lazily,
 * on the first call, so everything else in this package works without it installed.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import { KdError } from '@tfkd/kd-core';
import type { Batch } from './batching';

let tf: typeof tfc | undefined;

function loadTf(): typeof tfc {
  if (!tf) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      tf = require('@tensorflow/tfjs-core') as typeof tfc;
    } catch (e) {
      throw new KdError(
        'KD_BACKEND_UNAVAILABLE',
        'toTensors needs @tensorflow/tfjs-core, which is not installed',
        {
          path: '@tensorflow/tfjs-core',
          fix: 'npm install @tensorflow/tfjs-core (or @tensorflow/tfjs / @tensorflow/tfjs-node) next to @tfkd/datasets.',
          cause: e,
        },
      );
    }
  }
  return tf;
}

/** `x`: float32 [n, ...inputShape]; `y`: int32 [n]. The caller owns (and must dispose) both. */
export function toTensors(batch: Batch, inputShape: readonly number[]): { x: tfc.Tensor; y: tfc.Tensor1D } {
  const per = inputShape.reduce((a, b) => a * b, 1);
  if (
    !inputShape.every((d) => Number.isInteger(d) && d > 0) ||
    per * batch.n !== batch.x.length ||
    batch.y.length !== batch.n
  ) {
    throw new KdError(
      'KD_SHAPE_MISMATCH',
      `toTensors: a batch of ${batch.n} with ${batch.x.length} values and ${batch.y.length} labels does not fit inputShape [${inputShape.join(', ')}] ` +
        `(expected ${per * batch.n} values and ${batch.n} labels)`,
      {
        path: 'inputShape',
        fix: "Pass the dataset's shape ([H, W, C]) or a shape with the same number of values per example.",
      },
    );
  }
  const t = loadTf();
  return {
    x: t.tensor(batch.x, [batch.n, ...inputShape], 'float32'),
    y: t.tensor1d(batch.y, 'int32'),
  };
}
