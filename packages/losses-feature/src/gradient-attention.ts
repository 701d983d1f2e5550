import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { defineLoss, KdError, labelTargets, oneHotFloat, stopGradient, studentOption, teacherOption, type PluginDeps, type StepContext } from '@tfkd/kd-core';
import { z } from 'zod';
import { flatten2d, l2Normalize } from './ops';
import { crossEntropySum, registerSecondOrderGradients, secondOrderBlockers } from './second-order';

export interface GradientAttentionOptions {
  /** β of β/2 · ‖J_s − J_t‖². */
  beta: number;
  /** `batchmean`: Σ_b ‖j_s,b − j_t,b‖² / B; `sum`: Σ_b ‖·‖²; `mean`: the mean over all B·D entries. */
  reduction: 'batchmean' | 'sum' | 'mean';
  /** `l2`: each sample's j divided by its L2 norm first (floored at 1e-12); `none`: the paper's eq. 4. */
  normalize: 'none' | 'l2';
}

const DEFAULTS: GradientAttentionOptions = { beta: 1, reduction: 'batchmean', normalize: 'none' };

/**
 * Input gradients J = ∂/∂x Σ_b CE(f(x)_b, t_b) [same shape as x]: row b is the gradient of sample
 * b's own cross-entropy (per-sample, whatever the batch size, for a model without cross-sample
 * layers). `f` runs inside the gradient, so J is differentiable in the weights `f` closes over when
 * this is called on a gradient tape (the double backward). `targets` [B, K]: one-hot or soft.
 */
export function inputGradient(f: (x: Tensor) => Tensor, x: Tensor, targets: Tensor): Tensor {
  return tf.grad((xx: Tensor) => crossEntropySum(f(xx), targets))(x);
}

/**
 * The same J from logits already computed from `x` on the current gradient tape (tfjs records every
 * op while a gradient is being taken, and a gradient taken inside another walks the outer tape): no
 * second forward, and the forward other losses of the step see. Throws where the logits are not
 * connected to `x` on a live tape (outside any gradient scope, or computed before it).
 */
export function tapedInputGradient(logits: Tensor, x: Tensor, targets: Tensor): Tensor {
  return tf.grad(() => crossEntropySum(logits, targets))(x);
}

/**
 * Gradient-based attention transfer (Zagoruyko & Komodakis, ICLR 2017, §3.2, eq. 4):
 * β/2 · ‖J_s − J_t‖² with J the input gradient of each network's cross-entropy, reduced as
 * `reduction` says over the batch; optionally (`normalize: 'l2'`) on per-sample unit-norm J.
 */
export function gradientAttention(js: Tensor, jt: Tensor, opts: Partial<GradientAttentionOptions> = {}): Scalar {
  const o = { ...DEFAULTS, ...opts };
  return tf.tidy(() => {
    const b = js.shape[0] as number;
    let s: Tensor = flatten2d(js);
    let t: Tensor = flatten2d(jt);
    if (s.shape[1] !== t.shape[1] || t.shape[0] !== b) {
      throw new KdError('KD_SHAPE_MISMATCH', `gradient attention: input gradients [${js.shape}] and [${jt.shape}] do not match`, {
        fix: 'both networks must see the same input images (the same `view:` for both roles)',
      });
    }
    if (o.normalize === 'l2') {
      s = l2Normalize(s, 1);
      t = l2Normalize(t, 1);
    }
    const sq = tf.squaredDifference(s, t);
    const reduced = o.reduction === 'mean' ? tf.mean(sq) : tf.sum(sq);
    const scale = (o.beta / 2) * (o.reduction === 'batchmean' ? 1 / b : 1);
    return tf.mul(reduced, scale) as Scalar;
  });
}

export const gradientAttentionSchema = z
  .object({
    student: studentOption.describe("role trained through the gradient of its input gradient: 'student', or 'student.0', … in a `students:` run"),
    teacher: teacherOption.describe("role whose input gradient is the target, computed in inference mode and held constant: 'teacher' (or a peer student)"),
    beta: z
      .number()
      .nonnegative()
      .default(1)
      .describe('β of β/2·‖J_s − J_t‖² (paper eq. 4); default 1: the reference repository has no gradient-AT code and no value of the paper was available; the spec weight multiplies it'),
    label: z
      .enum(['true', 'teacher'])
      .default('true')
      .describe("the class each network's cross-entropy L is taken against: 'true' (the labels, or a mixing augmentation's soft targets; the paper's L) or 'teacher' (the teacher's argmax)"),
    reduction: z
      .enum(['batchmean', 'sum', 'mean'])
      .default('batchmean')
      .describe("'batchmean': Σ_b ‖j_s − j_t‖² / B (J per sample); 'sum': Σ_b ‖j_s − j_t‖²; 'mean': the mean over all B·H·W·C entries"),
    normalize: z
      .enum(['none', 'l2'])
      .default('none')
      .describe("'none': the paper's J (eq. 4); 'l2': each sample's J divided by its L2 norm first"),
  })
  .strict();

type Options = z.output<typeof gradientAttentionSchema>;

/** The class targets [B, K] both cross-entropies are taken against. */
function targetsOf(ctx: StepContext, o: Options): Tensor {
  if (o.label === 'teacher') return oneHotFloat(tf.argMax(ctx.outputs(o.teacher).logits, 1), ctx.numClasses);
  const t = labelTargets(ctx.batch);
  return t.rank === 2 ? tf.cast(t, 'float32') : oneHotFloat(t, ctx.numClasses);
}

/**
 * A student layer without a complete second-order gradient: a KdError naming it. Run from `setup`, which
 * the planner calls too, so a spec with such a student fails before anything trains.
 */
function checkStudent(o: Options, deps: PluginDeps): void {
  const model = deps.model?.(o.student);
  if (!model) return; // hand-made deps (unit tests) carry no models
  const blockers = secondOrderBlockers(model);
  if (blockers.length === 0) return;
  const list = blockers.map((b) => `${b.layer} (${b.kernel})`).join(', ');
  throw new KdError('KD_PLUGIN_DEPENDENCY', `'${deps.name}' trains through the gradient of the input gradient of '${o.student}', and tfjs 4.22 has no complete second-order gradient for its layers ${list}`, {
    path: deps.specPath,
    fix: 'use a student of Dense/Conv2D/ReLU/MaxPooling2D layers (mlp-student, cnn-small, …) or activation-based AT (loss/attention); the teacher may use any layer',
  });
}

/** `loss/gradient-attention`. */
export const gradientAttentionLoss = defineLoss({
  id: 'loss/gradient-attention',
  describe:
    "Gradient-based attention transfer (Zagoruyko & Komodakis 2017, eq. 4): β/2·‖J_s − J_t‖², J = ∂CE/∂x the input gradient of each network's cross-entropy (per sample), reduced batchmean; trains the student through the gradient of its gradient (double backward); frozen teacher. Student layers: Dense, Conv2D, ReLU, MaxPooling2D, Flatten, Dropout (not tanh/sigmoid/softmax/elu/avg-pool, see README)",
  options: gradientAttentionSchema,
  requires: (o) => ({ roles: [o.student, o.teacher] }),
  setup(o, deps) {
    registerSecondOrderGradients(); // MaxPoolGrad and Conv2DBackpropFilter gradients, once per process
    checkStudent(o, deps);
    return {};
  },
  compute(ctx, o, deps) {
    const targets = targetsOf(ctx, o);
    // Student: its forward of this step (other losses' too), already on the step's gradient tape.
    const xs = ctx.input(o.student);
    const zs = ctx.outputs(o.student).logits;
    let js: Tensor;
    try {
      js = tapedInputGradient(zs, xs, targets);
    } catch (e) {
      throw new KdError('KD_PLUGIN_DEPENDENCY', `'${deps.name}': the input gradient of '${o.student}' could not be taken (its outputs were not computed on the step's gradient tape)`, {
        path: deps.specPath,
        fix: 'call it from the loss hook of an @tfkd/engine step',
        cause: e,
      });
    }
    // Teacher: a forward and backward of its own on the role's input, in inference mode; J_t is a
    // constant of the student's weights (stopGradient also covers a peer student named as teacher).
    const xt = ctx.input(o.teacher);
    const jt = stopGradient(inputGradient((x) => ctx.apply(o.teacher, x, { training: false, backward: true }), xt, targets));
    return gradientAttention(js, jt, o);
  },
});
