import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { defineLoss } from '@tfkd/kd-core';
import { z } from 'zod';
import { Adapter, planAdapter } from './adapters';
import { pairMismatch, pairTaps, pairsOption, readTap, type TapPair } from './common';
import { sumScalars } from './ops';

/**
 * Activation-boundary loss (Heo et al. 2019, RepDistiller `ABLoss.criterion_alternative_l2`), mean
 * over elements, r = connector output, t = teacher pre-activation (or activation) map:
 *
 *   (r + μ)² · 1[r > −μ] · 1[t ≤ 0]  +  (r − μ)² · 1[r < μ] · 1[t > 0]
 *
 * i.e. where the teacher neuron is off, push r below −μ; where it is on, push r above μ. The
 * student-side indicators are folded into ReLUs — (r + μ)²·1[r > −μ] = relu(r + μ)², (μ − r)²·1[r < μ]
 * = relu(μ − r)² — so no comparison op is applied to the student (it has no gradient in tfjs). The
 * teacher mask is `tf.step(t)` = 1[t > 0], which has a (zero) gradient, so it is safe on the tape
 * even for a peer-student target.
 */
export function activationBoundary(r: Tensor, t: Tensor, margin = 1): Scalar {
  return tf.tidy(() => {
    const on = tf.step(t); // 1[t > 0]
    const off = tf.sub(1, on); // 1[t ≤ 0]
    const down = tf.square(tf.relu(tf.add(r, margin)));
    const up = tf.square(tf.relu(tf.sub(margin, r)));
    return tf.mean(tf.add(tf.mul(down, off), tf.mul(up, on))) as Scalar;
  });
}

export const activationBoundarySchema = z
  .object({
    pairs: pairsOption('[[student.block2, teacher.block2]]'),
    margin: z.number().positive().default(1).describe('margin μ; default 1 (RepDistiller ABLoss margin=1.0)'),
  })
  .strict();

/** `loss/activation-boundary`. Connector: identity when the shapes are equal, else a conv regressor without ReLU. */
export const activationBoundaryLoss = defineLoss({
  id: 'loss/activation-boundary',
  describe:
    'Activation boundaries (Heo et al. 2019): mean of relu(r+μ)²·1[t≤0] + relu(μ−r)²·1[t>0], r = trainable connector(f_s), μ = 1; trained jointly (RepDistiller uses it only in a 30-epoch init stage); suggested weight 1',
  options: activationBoundarySchema,
  requires: (o) => ({ taps: pairTaps(o.pairs) }),
  setup(o, deps) {
    const connectors = o.pairs.map((pair, i) => {
      const ss = deps.tapShape(pair[0]);
      const ts = deps.tapShape(pair[1]);
      if (ss.length === ts.length && ss.every((d, k) => d === ts[k])) return null;
      const plan = planAdapter(ss, ts);
      if (!plan) {
        throw pairMismatch(deps, `pairs[${i}]`, pair as TapPair, 'cannot be matched by a connector (it never upsamples and keeps the rank)', (a, b) => planAdapter(a, b) !== null, o.pairs.flat());
      }
      return new Adapter(plan, deps.rng.fork(i), false, `${deps.name}_${i}`);
    });
    return { connectors, variables: connectors.flatMap((c) => c?.variables ?? []) };
  },
  compute: (ctx, o, _deps, { connectors }) =>
    sumScalars(
      o.pairs.map(([s, t], i) => {
        const fs = readTap(ctx, s, false);
        const c = connectors[i];
        return activationBoundary(c ? c.apply(fs) : fs, readTap(ctx, t, true), o.margin);
      }),
    ),
});
