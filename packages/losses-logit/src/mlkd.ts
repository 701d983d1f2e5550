import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor, Tensor1D } from '@tensorflow/tfjs-core';
import { crossEntropy, defineLoss, KdError, labelTargets, softmaxT, stopGradient, studentOption, teacherOption, ViewName, type StepContext } from '@tfkd/kd-core';
import { z } from 'zod';
import { assertLogitPair } from './common';
import { hintonKd } from './hinton-kd';

// Multi-level logit distillation (Jin, Wang & Lin, CVPR 2023), as the reference code computes it:
// Jin-Ying/Multi-Level-Logit-Distillation, mdistiller/distillers/KD_ours.py (class KD_ours),
// commit 5ee473f. Differences: packages/losses-logit/README.md.

/** The four logits MLKD compares: student and teacher, each on the weak and the strong view, `[B, K]`. */
export interface MlkdLogits {
  studentWeak: Tensor;
  studentStrong: Tensor;
  /** The teacher's logits are targets: the plugin passes them gradient-stopped. */
  teacherWeak: Tensor;
  teacherStrong: Tensor;
}

export interface MlkdTerms {
  /**
   * Every weak-view term (instance KL masked, class correlation, batch correlation) is summed over
   * these temperatures. Reference: [cfg.KD.TEMPERATURE, 3, 5, 2, 6] = [4, 3, 5, 2, 6] on CIFAR-100.
   */
  temperatures: readonly number[];
  /** Unmasked instance KL between the strong views, at each of these (reference: [T, 3, 5]). */
  strongTemperatures: readonly number[];
  /**
   * Unmasked instance KL between the weak views again, at each of these: the reference's
   * "strong" KD sum reads the weak logits at T = 2 and T = 6 (reference: [2, 6]).
   */
  unmaskedWeakTemperatures: readonly number[];
  /** Percentile of the teacher's confidences both masks threshold at (numpy, linear): 50 in the reference. */
  percentile: number;
}

export interface MlkdOptions extends MlkdTerms {
  /** Weight of CE(weak) + CE(strong) (cfg.KD.LOSS.CE_WEIGHT: 0.1 on CIFAR-100, 0.5 on ImageNet). */
  ceWeight: number;
  /** Weight of the kd, cc and bc sums (cfg.KD.LOSS.KD_WEIGHT: 0.9 on CIFAR-100, 0.5 on ImageNet). */
  kdWeight: number;
  /**
   * Extra factor on the class-correlation sum (total weight kdWeight·ccScale); 1 in the reference. Not a
   * reference option: cc sums (pᵀp)² over a K×K matrix whose entries grow with the batch, so its size
   * relative to the KL terms goes as B²/K³ — 4000× larger at B = 128, K = 10 than at the reference's
   * B = 64, K = 100 (docs/results.md, MLKD).
   */
  ccScale: number;
  /** Extra factor on the batch-correlation sum (total weight kdWeight·bcScale); 1 in the reference. Not a reference option. */
  bcScale: number;
}

/** The parts of MLKD, unweighted: the reference's `loss_ce`, `loss_kd`, `loss_cc`, `loss_bc` divided by their weights. */
export interface MlkdParts {
  /** CE(z_s,weak, y) + CE(z_s,strong, y). */
  ce: Scalar;
  /** Instance level: the masked weak KL sum, the strong KL sum and the unmasked weak KL sum. */
  kd: Scalar;
  /** Class level (C×C class correlation), weak views, scaled by the class mask's kept fraction. */
  cc: Scalar;
  /** Batch level (B×B sample correlation), weak views, scaled by the sample mask's kept fraction. */
  bc: Scalar;
  /** Fraction of samples whose teacher confidence is at or below its percentile (½ at the 50th, without ties). */
  sampleMask: Scalar;
  /** Fraction of classes whose summed teacher probability is at or below its percentile. */
  classMask: Scalar;
}

/**
 * Class-level alignment, the reference's `cc_loss`: with p = softmax(z/T) `[B, K]` and the class
 * correlation G = pᵀp `[K, K]`, Σ (G_t − G_s)² / K. No T².
 */
export function classCorrelationLoss(zs: Tensor, zt: Tensor, temperature: number): Scalar {
  assertLogitPair(zs, zt, 'mlkd');
  return tf.tidy(() => {
    const ps = softmaxT(zs, temperature);
    const pt = softmaxT(zt, temperature);
    const diff = tf.sub(tf.matMul(pt, pt, true, false), tf.matMul(ps, ps, true, false));
    return tf.div(tf.sum(tf.square(diff)), zs.shape[1] as number) as Scalar;
  });
}

/**
 * Batch-level alignment, the reference's `bc_loss`: with the sample correlation M = ppᵀ `[B, B]`,
 * Σ (M_t − M_s)² / B. No T².
 */
export function batchCorrelationLoss(zs: Tensor, zt: Tensor, temperature: number): Scalar {
  assertLogitPair(zs, zt, 'mlkd');
  return tf.tidy(() => {
    const ps = softmaxT(zs, temperature);
    const pt = softmaxT(zt, temperature);
    const diff = tf.sub(tf.matMul(pt, pt, false, true), tf.matMul(ps, ps, false, true));
    return tf.div(tf.sum(tf.square(diff)), zs.shape[0] as number) as Scalar;
  });
}

/**
 * The fraction of the entries of `v` `[n]` at or below its `q`-th percentile, the percentile as
 * numpy's `np.percentile(v, q)` (linear interpolation between the order statistics at
 * ⌊(n − 1)·q/100⌋ and the next, numpy's lerp) — the mean of the reference's `v.le(np.percentile(v, q))`.
 *
 * Without sorting: the k-th order statistic is the least value with at least k + 1 entries at or
 * below it, from an n×n comparison. Only ops that have a gradient in tfjs are used (the result has
 * none): `greaterEqual`, not `lessEqual` or `topk`, so that a target depending on trainable
 * variables (a DML peer, gradient-stopped) does not break the backward pass.
 */
export function fractionAtOrBelowPercentile(v: Tensor1D, q: number): Scalar {
  const n = v.shape[0];
  const at = (q / 100) * (n - 1);
  const lo = Math.floor(at);
  const gamma = at - lo;
  return tf.tidy(() => {
    // le[i] = #{j : v[j] ≤ v[i]}
    const le = tf.sum(tf.cast(tf.greaterEqual(tf.reshape(v, [n, 1]), tf.reshape(v, [1, n])), 'float32'), 1);
    const none = tf.fill([n], Infinity);
    const order = (k: number) => tf.min(tf.where(tf.greaterEqual(le, k + 1), v, none));
    let threshold: Tensor;
    if (gamma === 0) {
      threshold = order(lo);
    } else {
      const a = order(lo);
      const b = order(Math.min(lo + 1, n - 1));
      const d = tf.sub(b, a);
      // numpy's _lerp: b − (b − a)·(1 − γ) from γ = 0.5 on, a + (b − a)·γ below
      threshold = gamma >= 0.5 ? tf.sub(b, tf.mul(d, 1 - gamma)) : tf.add(a, tf.mul(d, gamma));
    }
    return tf.div(tf.sum(tf.cast(tf.greaterEqual(threshold, v), 'float32')), n) as Scalar;
  });
}

/**
 * The reference's confidence masks as they enter its loss: computed on the teacher's **weak-view**
 * probabilities at T = 1, softmax(z_t,weak). Sample mask: max_k p[b, k] ≤ its percentile; class
 * mask: Σ_b p[b, k] ≤ its percentile. The reference multiplies a term that is already averaged over
 * the batch (a 0-d tensor) by the boolean mask and takes the mean, so each mask only scales its terms
 * by the fraction it keeps: these fractions are returned.
 */
export function mlkdMaskFractions(teacherWeak: Tensor, percentile: number): { sample: Scalar; class: Scalar } {
  return tf.tidy(() => {
    const p = tf.softmax(teacherWeak);
    return {
      sample: fractionAtOrBelowPercentile(tf.max(p, 1) as Tensor1D, percentile),
      class: fractionAtOrBelowPercentile(tf.sum(p, 0) as Tensor1D, percentile),
    };
  });
}

/**
 * MLKD's parts, unweighted, as `KD_ours.forward_train` combines them (m = sample-mask fraction,
 * c = class-mask fraction, KL_T = T²·mean_b KL(p_t^T ‖ p_s^T) = mdistiller's `kd_loss`):
 * - ce = CE(z_s,w, y) + CE(z_s,s, y)
 * - kd = Σ_{T ∈ temperatures} m·KL_T(w) + Σ_{T ∈ strongTemperatures} KL_T(s) + Σ_{T ∈ unmaskedWeakTemperatures} KL_T(w)
 * - cc = Σ_{T ∈ temperatures} c·cc_T(w),  bc = Σ_{T ∈ temperatures} m·bc_T(w)
 * where (w) pairs the student's and the teacher's weak-view logits, (s) their strong-view logits.
 * `y`: integer labels `[B]` or soft targets `[B, K]`.
 */
export function mlkdParts(l: MlkdLogits, y: Tensor, o: MlkdTerms): MlkdParts {
  assertLogitPair(l.studentWeak, l.teacherWeak, 'mlkd (weak view)');
  assertLogitPair(l.studentStrong, l.teacherStrong, 'mlkd (strong view)');
  assertLogitPair(l.studentWeak, l.studentStrong, 'mlkd (weak and strong views)');
  return tf.tidy(() => {
    const masks = mlkdMaskFractions(l.teacherWeak, o.percentile);
    const klWeak = new Map<number, Scalar>();
    const weak = (t: number) => {
      const hit = klWeak.get(t);
      if (hit) return hit;
      const v = hintonKd(l.studentWeak, l.teacherWeak, { temperature: t });
      klWeak.set(t, v);
      return v;
    };
    const sum = (xs: Tensor[]): Scalar => (xs.length === 0 ? tf.scalar(0) : (tf.addN(xs) as Scalar));
    const kd = tf.add(
      tf.add(tf.mul(sum(o.temperatures.map(weak)), masks.sample), sum(o.strongTemperatures.map((t) => hintonKd(l.studentStrong, l.teacherStrong, { temperature: t })))),
      sum(o.unmaskedWeakTemperatures.map(weak)),
    ) as Scalar;
    const cc = tf.mul(sum(o.temperatures.map((t) => classCorrelationLoss(l.studentWeak, l.teacherWeak, t))), masks.class) as Scalar;
    const bc = tf.mul(sum(o.temperatures.map((t) => batchCorrelationLoss(l.studentWeak, l.teacherWeak, t))), masks.sample) as Scalar;
    const ce = tf.add(crossEntropy(l.studentWeak, y), crossEntropy(l.studentStrong, y)) as Scalar;
    return { ce, kd, cc, bc, sampleMask: masks.sample, classMask: masks.class };
  });
}

/**
 * The reference's total, `sum(losses_dict.values())`: ceWeight·ce + kdWeight·(kd + ccScale·cc + bcScale·bc)
 * (ccScale = bcScale = 1 in the reference).
 */
export function mlkd(l: MlkdLogits, y: Tensor, o: MlkdOptions): Scalar {
  return tf.tidy(() => {
    const p = mlkdParts(l, y, o);
    const distill = tf.addN([p.kd, tf.mul(p.cc, o.ccScale), tf.mul(p.bc, o.bcScale)]);
    return tf.add(tf.mul(p.ce, o.ceWeight), tf.mul(distill, o.kdWeight)) as Scalar;
  });
}

const temperatureList = (def: number[], what: string, min = 0) => z.array(z.number().positive()).min(min).default(def).describe(what);

export const mlkdSchema = z
  .object({
    temperatures: temperatureList(
      [4, 3, 5, 2, 6],
      'temperatures of the weak-view terms (masked instance KL, class and batch correlation): the reference’s [cfg.KD.TEMPERATURE, 3, 5, 2, 6], TEMPERATURE = 4 on CIFAR-100 (ImageNet: 1)',
      1,
    ),
    strongTemperatures: temperatureList([4, 3, 5], 'temperatures of the unmasked strong-view instance KL: the reference’s [TEMPERATURE, 3, 5] (ImageNet: [1, 3, 5])'),
    unmaskedWeakTemperatures: temperatureList(
      [2, 6],
      'temperatures at which the reference’s strong KD sum reads the weak views again, unmasked ([2, 6]); [] with strongTemperatures [2, 3, 4, 5, 6] for the evident intent',
    ),
    percentile: z.number().min(0).max(100).default(50).describe('percentile of the teacher’s weak-view confidences (and class sums) the masks keep at or below; 50 in the reference'),
    ceWeight: z.number().min(0).default(0.1).describe('weight of CE(weak) + CE(strong): mdistiller CFG.KD.LOSS.CE_WEIGHT 0.1 (CIFAR-100; ImageNet config 0.5)'),
    kdWeight: z.number().min(0).default(0.9).describe('weight of the kd, cc and bc terms: mdistiller CFG.KD.LOSS.KD_WEIGHT 0.9 (CIFAR-100; ImageNet config 0.5)'),
    ccScale: z
      .number()
      .min(0)
      .default(1)
      .describe('factor on the class-correlation term (its weight is kdWeight·ccScale); 1 = the reference. Not in the reference: its size relative to the KL terms grows as B²/K³ (docs/results.md, MLKD)'),
    bcScale: z.number().min(0).default(1).describe('factor on the batch-correlation term (its weight is kdWeight·bcScale); 1 = the reference. Not in the reference'),
    weakView: ViewName.default('weak').describe('image view the weak terms read (an augmentation with `view: weak` writes it): random crop + flip in the reference'),
    strongView: ViewName.default('strong').describe('image view the strong terms read (`view: strong`): crop + flip + RandAugment in the reference'),
    student: studentOption,
    teacher: teacherOption,
  })
  .strict()
  .refine((o) => o.weakView !== o.strongView, { message: 'the weak and the strong view must be two different views', path: ['strongView'] });

/**
 * The four logits of a step: both roles run on both views (`ctx.input(role, view)`: the view as the
 * role sees it, resized and reshaped) through `ctx.apply` — the student in training mode on the
 * gradient tape, the teacher in inference mode and gradient-stopped. A view no plugin wrote this step
 * would silently be the main images (`ctx.input` falls back to `x`): refused with KD_PLUGIN_DEPENDENCY.
 */
export function mlkdLogits(ctx: StepContext, o: { weakView: string; strongView: string; student: string; teacher: string }, who: { name: string; specPath?: string }): MlkdLogits {
  const views = ctx.batch.views ?? {};
  const missing = [o.weakView, o.strongView].filter((v) => views[v] === undefined);
  if (missing.length > 0) {
    const written = Object.keys(views);
    throw new KdError(
      'KD_PLUGIN_DEPENDENCY',
      `'${who.name}' reads the image views '${o.weakView}' and '${o.strongView}', and no plugin wrote ${missing.map((v) => `'${v}'`).join(' or ')} in this step (${written.length ? `views written: ${written.join(', ')}` : 'no view was written'})`,
      {
        path: who.specPath,
        fix: `list augmentations that write them before the loss, e.g. \`- use: augment/flip\` \`with: { view: ${o.weakView} }\` and \`- use: augment/randaugment\` \`with: { view: ${o.strongView} }\` (docs/spec.md, "Image views"), active in every stage where '${who.name}' is; or point \`weakView\`/\`strongView\` at the views the spec writes`,
      },
    );
  }
  const student = (view: string) => ctx.apply(o.student, ctx.input(o.student, view), { training: true });
  const teacher = (view: string) => stopGradient(ctx.apply(o.teacher, ctx.input(o.teacher, view), { training: false }));
  return { studentWeak: student(o.weakView), studentStrong: student(o.strongView), teacherWeak: teacher(o.weakView), teacherStrong: teacher(o.strongView) };
}

/** `loss/mlkd`. Its terms are logged as `<name>:ce`, `:kd`, `:cc`, `:bc` (the reference's `losses_dict`). */
export const mlkdLoss = defineLoss({
  id: 'loss/mlkd',
  describe:
    'Multi-level logit distillation (CVPR 2023) on a weak and a strong image view: CE on both, instance KL over temperatures [4, 3, 5, 2, 6], class- and batch-correlation alignment, confidence masks from the teacher’s weak view; CE 0.1, KD 0.9 (reference KD_ours); needs augmentations with `view: weak` and `view: strong`',
  options: mlkdSchema,
  // DOT: CE(weak) + CE(strong) with the labels is the task loss, the kd, cc and bc alignments distillation.
  objective: 'mixed',
  requires: (o) => ({ roles: [o.student, o.teacher], views: [o.weakView, o.strongView] }),
  compute: (ctx, o, deps) => {
    const p = mlkdParts(mlkdLogits(ctx, o, deps), labelTargets(ctx.batch), o);
    return {
      ce: { value: p.ce, weight: o.ceWeight, objective: 'task' },
      kd: { value: p.kd, weight: o.kdWeight, objective: 'distill' },
      cc: { value: p.cc, weight: o.kdWeight * o.ccScale, objective: 'distill' },
      bc: { value: p.bc, weight: o.kdWeight * o.bcScale, objective: 'distill' },
    };
  },
});
