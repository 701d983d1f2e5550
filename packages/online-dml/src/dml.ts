import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { KdError, crossEntropy, defineLoss, labelTargets, klBatchMean, logSoftmaxT, softmaxT, stopGradient, temperatureOption, type StepContext, type WeightedTerm } from '@tfkd/kd-core';
import { z } from 'zod';
import { cohortRequirements, cohortRoles, studentsOption } from './common';

/** How a student's peers form its target: one KL per peer (DML) or one KL to the peers' mean (DML_e). */
export type PeerTarget = 'pairwise' | 'ensemble';

export interface DmlDivergenceOptions {
  temperature: number;
  target: PeerTarget;
  /**
   * DML_e only: the peers' target is the mean of their probabilities (`probs`, default: Zhang et al.,
   * distillistic) or the softmax of their mean logits (`logits`).
   */
  average?: 'probs' | 'logits';
}

export interface DmlTermOptions extends DmlDivergenceOptions {
  /** α: weight of the divergence in L_i = ceWeight · CE + α · D_i. */
  alpha: number;
  ceWeight?: number;
}

/**
 * D_i, the divergence of cohort member `i` from its peers, with every peer's logits gradient-stopped:
 * - `pairwise` (DML, Zhang et al. 2018): mean_{j≠i} KL(p_j^T ‖ p_i^T);
 * - `ensemble` (DML_e): KL(p̄ ‖ p_i^T), p̄ = mean_{j≠i} p_j^T (`average: 'probs'`, as distillistic) or
 *   softmax(mean_{j≠i} z_j / T) (`average: 'logits'`).
 * KL is summed over classes and averaged over the batch (`batchmean`); no T² factor. Since
 * ∂KL(p ‖ p_i)/∂z_i = (p_i − p)/(T·B) is linear in the target p, DML and DML_e with probability
 * averaging give the same gradients; only the logged divergence differs.
 */
export function dmlDivergence(logits: readonly Tensor[], i: number, opts: DmlDivergenceOptions): Scalar {
  if (logits.length < 2) throw new KdError('KD_PLUGIN_DEPENDENCY', `DML needs at least 2 students, got ${logits.length}`);
  const t = opts.temperature;
  return tf.tidy(() => {
    const logQ = logSoftmaxT(logits[i], t);
    const peers = logits.filter((_, j) => j !== i).map((z) => stopGradient(z));
    if (opts.target === 'pairwise') {
      return tf.div(tf.addN(peers.map((zj) => klBatchMean(logSoftmaxT(zj, t), logQ))), peers.length) as Scalar;
    }
    if (opts.average === 'logits') return klBatchMean(logSoftmaxT(tf.div(tf.addN(peers), peers.length), t), logQ);
    const mean = tf.div(tf.addN(peers.map((zj) => softmaxT(zj, t))), peers.length);
    return klBatchMean(tf.log(mean), logQ);
  });
}

/** Per cohort member: its cross-entropy with the labels and its divergence D_i (both unweighted). */
export function dmlTerms(logits: readonly Tensor[], labels: Tensor, opts: DmlDivergenceOptions): { ce: Scalar; kl: Scalar }[] {
  return logits.map((z, i) => ({ ce: crossEntropy(z, labels), kl: dmlDivergence(logits, i, opts) }));
}

/** L_i = ceWeight · CE(z_i, y) + α · D_i. */
export function dmlLoss(logits: readonly Tensor[], i: number, labels: Tensor, opts: DmlTermOptions): Scalar {
  return tf.tidy(() => tf.add(tf.mul(crossEntropy(logits[i], labels), opts.ceWeight ?? 1), tf.mul(dmlDivergence(logits, i, opts), opts.alpha)) as Scalar);
}

export const dmlSchema = z
  .object({
    alpha: z.number().min(0).default(0.5).describe('α, weight of the divergence D_i in L_i = CE + α·D_i; default 0.5 (distillistic/KD-Lib distil_weight)'),
    temperature: temperatureOption(1, 'Zhang et al. 2018 (plain softmax)'),
    ceWeight: z
      .number()
      .min(0)
      .default(1)
      .describe('weight of each CE(z_i, y); default 1 (Zhang et al.); 1 − α reproduces distillistic’s (1 − α)·CE + α·D'),
    students: studentsOption,
  })
  .strict();
export type DmlOptions = z.output<typeof dmlSchema>;

export const dmlEnsembleSchema = dmlSchema.extend({
  average: z
    .enum(['probs', 'logits'])
    .default('probs')
    .describe("peers' target: 'probs' = mean of their softmax(z/T) (Zhang et al., distillistic; same gradients as online/dml) or 'logits' = softmax of their mean z/T"),
});
export type DmlEnsembleOptions = z.output<typeof dmlEnsembleSchema>;

/**
 * The step's terms of both ids, per cohort member in cohort order: `<role>:ce` (weight ceWeight; under
 * DOT the task loss) and `<role>:kl` (weight α; distillation).
 */
function cohortTerms(ctx: StepContext, cohort: readonly string[], o: DmlOptions & { average?: 'probs' | 'logits' }, target: PeerTarget): Record<string, WeightedTerm> {
  const logits = cohort.map((role) => ctx.outputs(role).logits);
  const terms: Record<string, WeightedTerm> = {};
  dmlTerms(logits, labelTargets(ctx.batch), { temperature: o.temperature, target, average: o.average }).forEach((t, i) => {
    // DOT: each member's CE with the labels is the task loss, its divergence from its peers distillation.
    terms[`${cohort[i]}:ce`] = { value: t.ce, weight: o.ceWeight, objective: 'task' };
    terms[`${cohort[i]}:kl`] = { value: t.kl, weight: o.alpha, objective: 'distill' };
  });
  return terms;
}

/** `online/dml`: Deep Mutual Learning, every student of the run trained with CE + α · mean pairwise KL to its peers. */
export const dmlLossDefinition = defineLoss({
  id: 'online/dml',
  describe:
    'Deep Mutual Learning (Zhang et al. 2018): for every student i, CE(z_i, y) + α·mean_{j≠i} KL(stopgrad(p_j^T) ‖ p_i^T), α = 0.5, T = 1; terms <name>:<role>:ce and :kl',
  options: dmlSchema,
  objective: 'mixed',
  requires: cohortRequirements,
  setup: (o, deps) => ({ cohort: cohortRoles(deps, o.students) }),
  compute: (ctx, o, _deps, { cohort }) => cohortTerms(ctx, cohort, o, 'pairwise'),
});

/** `online/dml-ensemble`: DML_e, the KL to the mean of the peers' probabilities. */
export const dmlEnsembleLossDefinition = defineLoss({
  id: 'online/dml-ensemble',
  describe:
    "DML_e (Zhang et al. 2018): for every student i, CE(z_i, y) + α·KL(mean_{j≠i} stopgrad(p_j^T) ‖ p_i^T), α = 0.5, T = 1; `average: logits` uses softmax of the peers' mean logits",
  options: dmlEnsembleSchema,
  objective: 'mixed',
  requires: cohortRequirements,
  setup: (o, deps) => ({ cohort: cohortRoles(deps, o.students) }),
  compute: (ctx, o, _deps, { cohort }) => cohortTerms(ctx, cohort, o, 'ensemble'),
});
