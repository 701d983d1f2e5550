import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor, Variable } from '@tensorflow/tfjs-core';
import { defineLoss, klBatchMean, studentOption, targetLogits, teacherOption } from '@tfkd/kd-core';
import { z } from 'zod';
import { assertLogitPair, studentLogits } from './common';

/** Initial value of the learnable temperature parameter θ: the reference's `torch.ones(1)`. */
export const CTKD_THETA_INIT = 1;

export interface CtkdTemperatureOptions {
  /** Lower end of the temperature (the reference's `--t_start`). */
  tStart: number;
  /** Width of the temperature range (the reference's `--t_end`): T = tStart + tEnd · sigmoid(θ). */
  tEnd: number;
}

export interface CtkdScheduleOptions {
  /** λ at epoch 0. */
  lambdaMin: number;
  /** λ from epoch `lambdaEpochs` on. */
  lambdaMax: number;
  /** Epochs of the cosine ramp (the reference's `--decay_loops`). */
  lambdaEpochs: number;
}

/**
 * Gradient reversal layer (Ganin & Lempitsky 2015): identity in the forward pass; the backward pass
 * multiplies the incoming gradient by −λ. λ ≥ 0 here is the paper's λ; the reference's
 * `GradientReversalFunction` multiplies by its schedule value directly, which runs from 0 to −1 (=
 * −λ).
 */
export function gradientReversal<T extends Tensor>(x: T, lambda: number): T {
  const f = tf.customGrad(((input: Tensor) => ({
    value: tf.clone(input),
    gradFunc: (dy: Tensor) => tf.mul(dy, -lambda),
  })) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x) as T;
}

/**
 * The reference's `CosineDecay` in the paper's sign: λ(e) = λ_min + (λ_max − λ_min) · (1 − cos(π·e'/L)) / 2,
 * e' = e clamped to [0, L], L = `lambdaEpochs`; epochs counted from 1 (the reference calls it with
 * `epoch` = 1 … epochs). The reference's script (`decay_max 0, decay_min −1, decay_loops 10`) is
 * λ_min = 0, λ_max = 1, L = 10: 0.024472 at epoch 1, 0.5 at epoch 5, 1 from epoch 10 on.
 */
export function ctkdLambda(epoch: number, o: CtkdScheduleOptions): number {
  const e = Math.min(Math.max(epoch, 0), o.lambdaEpochs);
  return o.lambdaMin + ((o.lambdaMax - o.lambdaMin) * (1 - Math.cos((e * Math.PI) / o.lambdaEpochs))) / 2;
}

/** The temperature from its parameter, as the reference's loop: T = tStart + tEnd · sigmoid(θ). */
export function ctkdTemperature(theta: Tensor, o: CtkdTemperatureOptions): Tensor {
  return tf.tidy(() => tf.add(tf.mul(tf.sigmoid(theta), o.tEnd), o.tStart));
}

/** Hinton KD at a temperature held in a tensor (a scalar, differentiable): T² · mean_b KL(p_t^T ‖ p_s^T). */
export function kdAtTemperature(zs: Tensor, zt: Tensor, temperature: Tensor): Scalar {
  assertLogitPair(zs, zt, 'ctkd');
  return tf.tidy(() => {
    const kl = klBatchMean(tf.logSoftmax(tf.div(zt, temperature)), tf.logSoftmax(tf.div(zs, temperature)));
    return tf.reshape(tf.mul(kl, tf.square(temperature)), []) as Scalar;
  });
}

/**
 * Curriculum temperature KD (Li et al., AAAI 2023), global temperature: the reference's
 * `DistillKL(y_s, y_t, t_start + t_end · sigmoid(GRL(θ, λ)))`. The value is Hinton KD at that T;
 * the gradient w.r.t. θ is −λ times the plain one, so the optimizer moves T to *raise* the loss.
 */
export function ctkd(zs: Tensor, zt: Tensor, theta: Tensor, o: CtkdTemperatureOptions & { lambda: number }): Scalar {
  return tf.tidy(() => kdAtTemperature(zs, zt, ctkdTemperature(gradientReversal(theta, o.lambda), o)));
}

export const ctkdSchema = z
  .object({
    tStart: z.number().positive().default(1).describe("lowest temperature: T = tStart + tEnd·sigmoid(θ); default 1 (the reference's --t_start)"),
    tEnd: z
      .number()
      .min(0)
      .default(20)
      .describe("width of the temperature range, T in (tStart, tStart + tEnd); default 20 (the reference's --t_end); θ starts at 1, so T starts at tStart + 0.731·tEnd (15.62 with the defaults)"),
    lambdaMin: z.number().min(0).default(0).describe('λ of the gradient reversal at the start of the cosine ramp; default 0 (the reference script: --decay_max 0)'),
    lambdaMax: z.number().min(0).default(1).describe('λ at the end of the ramp and after; default 1 (the reference script: --decay_min -1)'),
    lambdaEpochs: z
      .number()
      .positive()
      .default(10)
      .describe('epochs of the cosine ramp of λ, counted from 1 within the phase; default 10 (the reference script: --decay_loops 10)'),
    student: studentOption,
    teacher: teacherOption,
  })
  .strict();

let thetasMade = 0;

/**
 * `loss/ctkd`. Owns one trainable variable, θ (a scalar, initial value 1), trained with the first
 * student by its optimizer (with its weight decay, as the reference's SGD over `trainable_list`);
 * each epoch end logs the temperature.
 */
export const ctkdLoss = defineLoss({
  id: 'loss/ctkd',
  describe:
    'Curriculum temperature KD (AAAI 2023), global temperature: T²·KL(p_t^T ‖ p_s^T) with T = tStart + tEnd·sigmoid(θ), θ a trainable scalar behind a gradient reversal layer (gradient × −λ), λ ramped 0 → 1 by a cosine over 10 epochs; T in (1, 21) with the defaults; the reference stacks it at weight 0.9 with loss/cross-entropy at weight 0.1',
  options: ctkdSchema,
  requires: (o) => ({ roles: [o.student, o.teacher] }),
  setup(o, deps) {
    const label = deps.name.replace(/[^A-Za-z0-9_]/g, '_');
    const theta: Variable = tf.tidy(() => tf.variable(tf.scalar(CTKD_THETA_INIT), true, `${label}_theta_${thetasMade++}`));
    const temperatureNow = () => o.tStart + o.tEnd / (1 + Math.exp(-theta.dataSync()[0]));
    return {
      theta,
      variables: [theta],
      hooks: {
        epochEnd: (e) =>
          deps.log?.(`${deps.name}: ${e.phase} epoch ${e.epoch}: temperature ${temperatureNow().toFixed(4)} (λ = ${ctkdLambda(e.epoch, o).toFixed(4)})`),
      },
    };
  },
  compute: (ctx, o, _deps, { theta }) =>
    ctkd(studentLogits(ctx, o.student), targetLogits(ctx, o.teacher), theta, { ...o, lambda: ctkdLambda(ctx.epoch, o) }),
});
