// A role's view of a batch: the images it is given (optionally resized, and back) in its model's
// input shape. The step, the evaluation and whatever re-forwards data afterwards (the CLI's
// calibration pass) all go through here, so every route gives a role the same input.
import * as tf from '@tensorflow/tfjs-core';
import type { Tensor } from '@tensorflow/tfjs-core';
import { KdError, type ViewSpec } from '@tfkd/kd-core';
import type { RoleRuntime } from './roles';

/** A role's view of a batch: optional bilinear resize (and back), reshaped to the model's input. */
export function viewFor(r: RoleRuntime, x: Tensor): Tensor {
  return applyView(x, r.spec.view, r.inputShape, { name: r.info.name, specPath: r.specPath });
}

/**
 * A batch as a role with this `view` sees it: bilinear resize (aligned corners) to `view.resize`,
 * optionally back to the batch's size, then reshaped to the model's `inputShape` when only the
 * layout differs. Used by the step, the evaluation and anything that re-forwards data afterwards
 * (the CLI's calibration pass), so every route gives a role the same input.
 */
export function applyView(
  x: Tensor,
  view: ViewSpec | undefined,
  inputShape: readonly number[],
  role: { name: string; specPath: string },
): Tensor {
  let v = x;
  if (view?.resize && v.rank === 4) {
    const [h, w] = [v.shape[1] as number, v.shape[2] as number];
    v = tf.image.resizeBilinear(v as tf.Tensor4D, view.resize, true);
    if (view.upsample) v = tf.image.resizeBilinear(v as tf.Tensor4D, [h, w], true);
  }
  const want = [v.shape[0] as number, ...inputShape];
  if (want.length !== v.rank || want.some((d, i) => d !== v.shape[i])) {
    const n = want.slice(1).reduce((a, b) => a * b, 1);
    const have = v.shape.slice(1).reduce((a, b) => a * b, 1);
    if (n !== have) {
      throw new KdError(
        'KD_SHAPE_MISMATCH',
        `role '${role.name}' takes inputs [${inputShape}] but the batch is [${v.shape.slice(1)}]`,
        {
          path: `${role.specPath}.view`,
          fix: 'build the model for this dataset’s image shape, or give the role a `view: { resize: [h, w] }`',
        },
      );
    }
    v = tf.reshape(v, want);
  }
  return v;
}
