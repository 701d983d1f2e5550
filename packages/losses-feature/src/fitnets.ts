import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { defineLoss } from '@tfkd/kd-core';
import { z } from 'zod';
import { Adapter, planAdapter } from './adapters';
import { pairMismatch, pairTaps, pairsOption, readTap, type TapPair } from './common';
import { sumScalars } from './ops';

/** FitNets hint for one pair: mean((r(f_s) − f_t)²) over every element (torch `MSELoss`). */
export function hintLoss(adapted: Tensor, ft: Tensor): Scalar {
  return tf.tidy(() => tf.mean(tf.squaredDifference(adapted, ft)) as Scalar);
}

export const fitnetsSchema = z
  .object({
    pairs: pairsOption('[[student.block2, teacher.block2]]'),
    relu: z
      .boolean()
      .default(true)
      .describe('ReLU after the adapter, as RepDistiller ConvReg(use_relu=True) for hints; set false for pre-activation targets'),
  })
  .strict();

/** `loss/fitnets`: one trainable adapter per pair, built from the tap shapes at start-up. */
export const fitnetsLoss = defineLoss({
  id: 'loss/fitnets',
  describe:
    'FitNets hints (Romero et al. 2015): Σ_pairs mean((r(f_s) − f_t)²), r a trainable regressor (1×1 conv, RepDistiller ConvReg geometry for a larger student map, dense for rank-2 taps); recommended weight 100 (RepDistiller -b 100)',
  options: fitnetsSchema,
  requires: (o) => ({ taps: pairTaps(o.pairs) }),
  setup(o, deps) {
    const adapters = o.pairs.map((pair, i) => {
      const plan = planAdapter(deps.tapShape(pair[0]), deps.tapShape(pair[1]));
      if (!plan) {
        throw pairMismatch(
          deps,
          `pairs[${i}]`,
          pair as TapPair,
          'cannot be matched by a regressor: it maps rank-2 to rank-2 or NHWC to NHWC, and never upsamples (the student map must be at least as large as the target map)',
          (a, b) => planAdapter(a, b) !== null,
          o.pairs.flat(),
        );
      }
      return new Adapter(plan, deps.rng.fork(i), o.relu, `${deps.name}_${i}`);
    });
    return { adapters, variables: adapters.flatMap((a) => a.variables) };
  },
  compute: (ctx, o, _deps, { adapters }) =>
    sumScalars(o.pairs.map(([s, t], i) => hintLoss(adapters[i].apply(readTap(ctx, s, false)), readTap(ctx, t, true)))),
});
