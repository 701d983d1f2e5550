import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { KdError, crossEntropy, defineLoss, labelTargets, klBatchMean, logSoftmaxT, stopGradient, temperatureOption } from '@tfkd/kd-core';
import { z } from 'zod';

/** z_e = Σ_i g_i · z_i: branch logits `[B, K]` each, gate `[B, m]` (softmax weights). */
export function gatedEnsemble(branches: readonly Tensor[], gate: Tensor): Tensor {
  if (gate.rank !== 2 || gate.shape[1] !== branches.length) {
    throw new KdError('KD_SHAPE_MISMATCH', `ONE: the gate has shape [${gate.shape}], expected [batch, ${branches.length}] (one weight per branch)`);
  }
  return tf.tidy(() => {
    const cols = tf.split(gate, branches.length, 1);
    return tf.addN(branches.map((z, i) => tf.mul(cols[i], z)));
  });
}

export interface OneTerms {
  /** Σ_i CE(z_i, y) over the branches. */
  ce: Scalar;
  /** CE(z_e, y) of the gated ensemble. */
  ceEnsemble: Scalar;
  /** T² Σ_i KL(stopgrad(p_e^T) ‖ p_i^T), batch mean. */
  kl: Scalar;
}

/**
 * The three parts of the ONE loss (Lan et al. 2018), L = Σ_i CE(z_i) + CE(z_e) + T² Σ_i KL(p_e^T ‖ p_i^T).
 * The ensemble target p_e^T is gradient-stopped in the KL only: CE(z_e) trains the gate and, through
 * z_e, every branch (as the official code, where only the KL target is detached).
 */
export function oneTerms(branches: readonly Tensor[], gate: Tensor, labels: Tensor, opts: { temperature: number }): OneTerms {
  const t = opts.temperature;
  return tf.tidy(() => {
    const ze = gatedEnsemble(branches, gate);
    const target = logSoftmaxT(stopGradient(ze), t);
    const ce = tf.addN(branches.map((z) => crossEntropy(z, labels))) as Scalar;
    const kl = tf.mul(tf.addN(branches.map((z) => klBatchMean(target, logSoftmaxT(z, t)))), t * t) as Scalar;
    return { ce, ceEnsemble: crossEntropy(ze, labels), kl };
  });
}

/** L = ce + ceEnsemble + rampup · kl. */
export function oneLoss(branches: readonly Tensor[], gate: Tensor, labels: Tensor, opts: { temperature: number; klWeight?: number }): Scalar {
  return tf.tidy(() => {
    const p = oneTerms(branches, gate, labels, opts);
    return tf.addN([p.ce, p.ceEnsemble, tf.mul(p.kl, opts.klWeight ?? 1)]) as Scalar;
  });
}

/**
 * Sigmoid ramp-up exp(−5 (1 − e/R)²) of the official ONE code (from Laine & Aila's temporal
 * ensembling), e the 0-based epoch, clipped at R; R = 0 disables it (weight 1).
 */
export function sigmoidRampup(epoch0: number, rampup: number): number {
  if (rampup <= 0) return 1;
  const phase = 1 - Math.min(Math.max(epoch0, 0), rampup) / rampup;
  return Math.exp(-5 * phase * phase);
}

export const oneSchema = z
  .object({
    temperature: temperatureOption(3, 'Lan et al. 2018 (official KLLoss T = 3)'),
    branches: z.number().int().min(2).max(16).default(3).describe('number of branches m; the model must have taps branch0..branch{m−1} and gate'),
    student: z.string().min(1).default('student').describe('role of the ONE model (a one-mlp / one-cnn or any model with those taps)'),
    rampup: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe('epochs of sigmoid ramp-up of the KL weight (official code: 80 of 300); default 0 = no ramp-up (the paper’s loss)'),
  })
  .strict();
export type OneOptions = z.output<typeof oneSchema>;

export function branchTap(i: number): string {
  return `branch${i}`;
}
export const GATE_TAP = 'gate';

/** `online/one`: On-the-fly Native Ensemble on one multi-branch model. */
export const oneLossDefinition = defineLoss({
  id: 'online/one',
  describe:
    'ONE (Lan et al. 2018): Σ_i CE(z_i) + CE(z_e) + T²·Σ_i KL(stopgrad(p_e^T) ‖ p_i^T), z_e = Σ_i g_i z_i, T = 3, m = 3; reads the taps branch0..2 and gate; terms :ce, :ce-ensemble, :kl',
  options: oneSchema,
  // DOT: the CEs with the labels (branches and gated ensemble) are the task loss, the KL to the ensemble distillation.
  objective: 'mixed',
  requires: (o) => ({
    roles: [o.student],
    taps: [...Array.from({ length: o.branches }, (_, i) => `${o.student}.${branchTap(i)}`), `${o.student}.${GATE_TAP}`],
  }),
  setup(o, deps) {
    const gateShape = deps.tapShape(`${o.student}.${GATE_TAP}`);
    if (gateShape.length !== 1 || gateShape[0] !== o.branches) {
      throw new KdError('KD_SHAPE_MISMATCH', `'${deps.name}': the tap '${o.student}.${GATE_TAP}' has shape [${gateShape}], expected [${o.branches}] (branches: ${o.branches})`, {
        path: `${deps.specPath}.with.branches`,
        fix: 'set `branches:` to the model’s number of branches (the `branches` option of one-mlp / one-cnn)',
      });
    }
    for (let i = 0; i < o.branches; i++) {
      const s = deps.tapShape(`${o.student}.${branchTap(i)}`);
      if (s.length !== 1 || s[0] !== deps.numClasses) {
        throw new KdError('KD_SHAPE_MISMATCH', `'${deps.name}': the tap '${o.student}.${branchTap(i)}' has shape [${s}], expected logits [${deps.numClasses}]`, {
          path: deps.specPath,
          fix: 'the branch taps must be the branch logits (one-mlp / one-cnn name them branch0, branch1, …)',
        });
      }
    }
    return {};
  },
  compute(ctx, o) {
    const { taps } = ctx.outputs(o.student);
    const branches = Array.from({ length: o.branches }, (_, i) => taps[branchTap(i)]);
    const p = oneTerms(branches, taps[GATE_TAP], labelTargets(ctx.batch), o);
    return {
      ce: { value: p.ce, weight: 1, objective: 'task' },
      'ce-ensemble': { value: p.ceEnsemble, weight: 1, objective: 'task' },
      kl: { value: p.kl, weight: sigmoidRampup(ctx.epoch - 1, o.rampup), objective: 'distill' },
    };
  },
});
