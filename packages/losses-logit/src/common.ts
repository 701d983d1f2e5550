import type { Tensor, Tensor1D } from '@tensorflow/tfjs-core';
import { KdError, assertSameShape, type StepContext } from '@tfkd/kd-core';

// The option and role helpers these losses share with other packages (studentOption, teacherOption,
// temperatureOption, targetLogits) live in kd-core; what only the logit losses use is here.

/** Logits of the trained role `[B, K]`. */
export function studentLogits(ctx: StepContext, role: string): Tensor {
  return ctx.outputs(role).logits;
}

/** Integer labels of the current batch `[B]`. */
export function batchLabels(ctx: StepContext): Tensor1D {
  return ctx.batch.y as Tensor1D;
}

/** Check that the student and target logits are `[B, K]` with the same shape. */
export function assertLogitPair(zs: Tensor, zt: Tensor, what: string): void {
  if (zs.rank !== 2) {
    throw new KdError('KD_SHAPE_MISMATCH', `${what}: logits must be [batch, classes], got shape [${zs.shape}]`);
  }
  assertSameShape(zs, zt, `${what}: student and target logits`);
}
