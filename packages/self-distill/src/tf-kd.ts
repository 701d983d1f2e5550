import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { crossEntropy, defineLoss, labelTargets, logSoftmaxT, studentOption, targetLogits, teacherOption, temperatureOption, type LossObjective, type WeightedTerm } from '@tfkd/kd-core';
import { z } from 'zod';
import { alphaOption, klDivergence, klReductionOption, virtualTeacher, type KlReduction } from './common';

/**
 * How a Tf-KD virtual-teacher loss is computed. All variants build the same virtual teacher v
 * (`a` on the true class, (1 − a)/(K − 1) elsewhere) and then differ:
 * - `softenTeacher`: the target is softmax(v / T) — v, a probability vector, softened as if it were
 *   logits (every reference does this); otherwise v itself;
 * - `softenStudent`: the student side is log softmax(z / T) (else log softmax(z));
 * - `t2`: the divergence is multiplied by T²;
 * - `reduction` and `multiplier` (a plain factor on the divergence).
 */
export interface VirtualTeacherParams {
  correctProb: number;
  temperature: number;
  alpha: number;
  softenTeacher: boolean;
  softenStudent: boolean;
  t2: boolean;
  reduction: KlReduction;
  multiplier: number;
}

type TermParams = Omit<VirtualTeacherParams, 'alpha'>;

/**
 * log of the distribution the student is pulled to: log softmax(v / T) (`softenTeacher`) or log v. `[B, K]`.
 *
 * With soft targets t `[B, K]` (mixup/CutMix) it is the log of the targets' mixture of the per-label
 * targets, Σ_c t_c·softmax(v(c) / T): softened per label, then mixed. The divergence to that mixture
 * has the gradient of the mixup reference form λ·L(a) + (1 − λ)·L(b) (the divergence is the cross-
 * entropy to the target minus its entropy, and the cross-entropy is linear in the target); its value
 * differs from that form by a constant, the mixture's entropy minus the per-label target's.
 */
export function virtualTargetLog(labels: Tensor, numClasses: number, p: Pick<TermParams, 'correctProb' | 'temperature' | 'softenTeacher'>): Tensor {
  return tf.tidy(() => {
    if (labels.rank === 2 && p.softenTeacher) {
      // softmax(v(c) / T) is again `a'` on c and `rest'` elsewhere: one per-label pair, then mixed.
      const [aSoft, restSoft] = tf.tidy(() => {
        const one = logSoftmaxT(virtualTeacher(tf.tensor1d([0], 'int32'), numClasses, p.correctProb), p.temperature);
        const v = tf.exp(one).dataSync();
        return [v[0], v[1]];
      });
      return tf.log(tf.add(tf.mul(tf.cast(labels, 'float32'), aSoft - restSoft), restSoft));
    }
    const v = virtualTeacher(labels, numClasses, p.correctProb);
    return p.softenTeacher ? logSoftmaxT(v, p.temperature) : tf.log(v);
  });
}

/** The two terms of Tf-KD, unweighted: `ce` = CE(z, y) and `kd` = the (scaled) divergence to the virtual teacher. */
export function virtualTeacherTerms(z: Tensor, labels: Tensor, p: TermParams): { ce: Scalar; kd: Scalar } {
  return tf.tidy(() => {
    const logTarget = virtualTargetLog(labels, z.shape[z.rank - 1] as number, p);
    const logStudent = logSoftmaxT(z, p.softenStudent ? p.temperature : 1);
    const scale = p.multiplier * (p.t2 ? p.temperature * p.temperature : 1);
    const kd = tf.mul(klDivergence(logTarget, logStudent, p.reduction), scale) as Scalar;
    return { ce: crossEntropy(z, labels), kd };
  });
}

/** (1 − α)·ce + α·kd, the whole Tf-KD loss as one scalar (tests, direct use). */
export function virtualTeacherLoss(z: Tensor, labels: Tensor, p: VirtualTeacherParams): Scalar {
  return tf.tidy(() => {
    const t = virtualTeacherTerms(z, labels, p);
    return tf.add(tf.mul(t.ce, 1 - p.alpha), tf.mul(t.kd, p.alpha)) as Scalar;
  });
}

export type VirtualVariant = 'official' | 'kd-lib' | 'distillistic';

/**
 * The variants' defaults and formulas, as their code has them:
 * - `official` — yuanli2333/Teacher-free-Knowledge-Distillation `my_loss_function.py`
 *   `loss_kd_regularization`: a = 0.99; target softmax(v/T); student log_softmax(z) (not softened);
 *   `nn.KLDivLoss()` (mean over B·K) × `multiplier`, no T². T, α, multiplier from
 *   `experiments/base_experiments/base_resnet18/params.json` (main.py's default model_dir):
 *   reg_temperature 20, reg_alpha 0.1, multiplier 100.
 * - `kd-lib` — SforAiDl/KD_Lib `KD_Lib/KD/vision/teacher_free/virtual_teacher.py`: the official
 *   formula with correct_prob 0.9, temp 10, distil_weight 0.5 and no multiplier.
 * - `distillistic` — PiaCuk/distillistic `distillistic/tf_kd/virtual_teacher.py` (smooth_teacher
 *   on): student softened too, T²·KL batchmean; correct_prob 0.9, temp 10, distil_weight 0.5.
 */
export const VIRTUAL_VARIANTS: Record<VirtualVariant, VirtualTeacherParams> = {
  official: { correctProb: 0.99, temperature: 20, alpha: 0.1, softenTeacher: true, softenStudent: false, t2: false, reduction: 'mean', multiplier: 100 },
  'kd-lib': { correctProb: 0.9, temperature: 10, alpha: 0.5, softenTeacher: true, softenStudent: false, t2: false, reduction: 'mean', multiplier: 1 },
  distillistic: { correctProb: 0.9, temperature: 10, alpha: 0.5, softenTeacher: true, softenStudent: true, t2: true, reduction: 'batchmean', multiplier: 1 },
};

const optionalRate = (what: string) => z.number().gt(0).lt(1).optional().describe(what);

export const tfKdVirtualSchema = z
  .object({
    variant: z
      .enum(['official', 'kd-lib', 'distillistic'])
      .default('official')
      .describe(
        "whose formula: 'official' (Yuan et al. code: target softmax(v/T), student at T = 1, nn.KLDivLoss() mean × multiplier), 'kd-lib' (the same formula, KD-Lib defaults) or 'distillistic' (student softened too, T²·KL batchmean); default 'official'",
      ),
    correctProb: optionalRate('a, probability of the true class in the virtual teacher; default by variant: official 0.99, kd-lib/distillistic 0.9'),
    temperature: z.number().positive().optional().describe('T; default by variant: official 20 (base_resnet18 reg_temperature), kd-lib/distillistic 10'),
    alpha: z.number().min(0).max(1).optional().describe('α (distillation weight; CE gets 1 − α); default by variant: official 0.1 (base_resnet18 reg_alpha), kd-lib/distillistic 0.5'),
    multiplier: z.number().positive().optional().describe('factor on the divergence; default by variant: official 100 (base_resnet18 multiplier), others 1'),
    student: studentOption,
  })
  .strict();
export type TfKdVirtualOptions = z.output<typeof tfKdVirtualSchema>;

/** The variant's parameters with the options given in the spec laid over them. */
export function resolveVirtual(o: TfKdVirtualOptions): VirtualTeacherParams {
  const base = VIRTUAL_VARIANTS[o.variant];
  return {
    ...base,
    ...(o.correctProb !== undefined ? { correctProb: o.correctProb } : {}),
    ...(o.temperature !== undefined ? { temperature: o.temperature } : {}),
    ...(o.alpha !== undefined ? { alpha: o.alpha } : {}),
    ...(o.multiplier !== undefined ? { multiplier: o.multiplier } : {}),
  };
}

/**
 * The terms `ce` (weight 1 − α) and `kd` (α), labelled for DOT: `ce` is the task loss; `kd` is the task
 * loss too when its target is the virtual teacher (made from the labels alone, a label-smoothing-like
 * regulariser), distillation when it is a real teacher.
 */
function weighted(t: { ce: Scalar; kd: Scalar }, alpha: number, kd: LossObjective): Record<string, WeightedTerm> {
  return { ce: { value: t.ce, weight: 1 - alpha, objective: 'task' }, kd: { value: t.kd, weight: alpha, objective: kd } };
}

/** `self/tf-kd-virtual`: terms `:ce` (weight 1 − α) and `:kd` (weight α). */
export const tfKdVirtualLoss = defineLoss({
  id: 'self/tf-kd-virtual',
  describe:
    "Tf-KD with a virtual teacher (Yuan et al. 2020): (1 − α)·CE + α·D(virtual teacher ‖ student), v = a on the true class, (1 − a)/(K − 1) elsewhere; `variant` picks the official code's formula (default) or KD-Lib's / distillistic's",
  options: tfKdVirtualSchema,
  // DOT: both terms are the task loss — the virtual teacher is built from the labels alone (no teacher to distil).
  objective: 'task',
  requires: (o) => ({ roles: [o.student] }),
  compute: (ctx, o) => {
    const p = resolveVirtual(o);
    return weighted(virtualTeacherTerms(ctx.outputs(o.student).logits, labelTargets(ctx.batch), p), p.alpha, 'task');
  },
});

export const tfKdCalibratedSchema = z
  .object({
    correctProb: z.number().gt(0).lt(1).default(0.9).describe('a, probability of the true class in v; default 0.9 (distillistic correct_prob)'),
    alpha: alphaOption(0.5, 'distillistic distil_weight'),
    student: studentOption,
  })
  .strict();

/** The calibrated Tf-KD of the distillistic thesis: no softening, T = 1 — terms CE and KL(v ‖ p_s) (batchmean). */
export function calibratedTerms(z: Tensor, labels: Tensor, correctProb: number): { ce: Scalar; kd: Scalar } {
  return virtualTeacherTerms(z, labels, { correctProb, temperature: 1, softenTeacher: false, softenStudent: false, t2: false, reduction: 'batchmean', multiplier: 1 });
}

/** `self/tf-kd-calibrated`: (1 − α)·CE + α·KL(v ‖ softmax(z)), α = 0.5. */
export const tfKdCalibratedLoss = defineLoss({
  id: 'self/tf-kd-calibrated',
  describe:
    'calibrated Tf-KD (distillistic thesis; distillistic virtual_teacher.py with smooth_teacher off, T = 1): (1 − α)·CE + α·KL(v ‖ softmax(z)), v = a on the true class, (1 − a)/(K − 1) elsewhere; a = 0.9, α = 0.5',
  options: tfKdCalibratedSchema,
  // DOT: both terms are the task loss, as for self/tf-kd-virtual.
  objective: 'task',
  requires: (o) => ({ roles: [o.student] }),
  compute: (ctx, o) => weighted(calibratedTerms(ctx.outputs(o.student).logits, labelTargets(ctx.batch), o.correctProb), o.alpha, 'task'),
});

export const tfKdSelfSchema = z
  .object({
    alpha: alphaOption(0.95, 'resnet18_self_teacher/params.json'),
    temperature: temperatureOption(6, 'resnet18_self_teacher/params.json'),
    multiplier: z.number().positive().default(50).describe('factor on the divergence; default 50: resnet18_self_teacher/params.json (1 for MobileNetV2/ShuffleNetV2, 100 for ResNeXt29)'),
    reduction: klReductionOption('mean', 'loss_kd_self uses nn.KLDivLoss(), the mean over B·K'),
    student: studentOption,
    teacher: teacherOption,
  })
  .strict();
export type TfKdSelfOptions = z.output<typeof tfKdSelfSchema>;

/**
 * Tf-KD self-training (`loss_kd_self` of the official code): CE(z_s, y) and
 * multiplier · T² · KL(p_t^T ‖ p_s^T), the teacher being a trained copy of the student's architecture.
 */
export function tfKdSelfTerms(zs: Tensor, zt: Tensor, labels: Tensor, o: Pick<TfKdSelfOptions, 'temperature' | 'multiplier' | 'reduction'>): { ce: Scalar; kd: Scalar } {
  return tf.tidy(() => {
    const t = o.temperature;
    const kd = tf.mul(klDivergence(logSoftmaxT(zt, t), logSoftmaxT(zs, t), o.reduction), o.multiplier * t * t) as Scalar;
    return { ce: crossEntropy(zs, labels), kd };
  });
}

/** `self/tf-kd-self`: terms `:ce` (1 − α) and `:kd` (α). The spec gives the teacher: `teacher: { model: <the student's>, train: {…} }`. */
export const tfKdSelfLoss = defineLoss({
  id: 'self/tf-kd-self',
  describe:
    "Tf-KD self-training (Yuan et al. 2020, loss_kd_self): (1 − α)·CE + α·multiplier·T²·KL(p_t^T ‖ p_s^T), the teacher a pre-trained copy of the student's architecture (`teacher: { model: <student's>, train: {…} }`); α = 0.95, T = 6, multiplier 50, KL mean over B·K (ResNet18 self-teacher config)",
  options: tfKdSelfSchema,
  // DOT: the CE with the labels is the task loss, the KL to the pre-trained teacher distillation.
  objective: 'mixed',
  requires: (o) => ({ roles: [o.student, o.teacher] }),
  compute: (ctx, o) => weighted(tfKdSelfTerms(ctx.outputs(o.student).logits, targetLogits(ctx, o.teacher), labelTargets(ctx.batch), o), o.alpha, 'distill'),
});
