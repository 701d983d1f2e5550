import { crossEntropy, defineLoss, labelTargets, studentOption, targetLogits, teacherOption, temperatureOption, type WeightedTerm } from '@tfkd/kd-core';
import { z } from 'zod';
import { alphaOption, klReductionOption } from './common';
import { tfKdSelfTerms } from './tf-kd';

export const bornAgainSchema = z
  .object({
    generations: z
      .number()
      .int()
      .min(1)
      .max(20)
      .default(3)
      .describe('G, generations of the student trained one after another in one run (the kd CLI runs them); default 3'),
    generation: z
      .number()
      .int()
      .min(1)
      .default(1)
      .describe('which generation this engine run trains, set by the generations driver: 1 = from the labels, g ≥ 2 = taught by generation g − 1 (`teacher`); default 1'),
    alpha: alphaOption(0.5, 'KD-Lib BANN distil_weight'),
    temperature: temperatureOption(20, 'KD-Lib BANN temp'),
    reduction: klReductionOption('mean', 'KD-Lib BANN uses nn.KLDivLoss(), the mean over B·K'),
    student: studentOption,
    teacher: teacherOption,
  })
  .strict();
export type BornAgainOptions = z.output<typeof bornAgainSchema>;

/**
 * `self/born-again` (Furlanello et al. 2018): G generations of one architecture. Generation 1 learns
 * from the labels (term `:ce`); generation g ≥ 2 from the labels and generation g − 1:
 * (1 − α)·CE + α·T²·KL(p_{g−1}^T ‖ p_g^T) (terms `:ce`, `:kd`), as KD-Lib's BANN. `generations`
 * tells kd-core's `runGenerations` (the `kd run` driver) how many to train; each of its engine runs
 * sets `generation`.
 */
export const bornAgainLoss = defineLoss({
  id: 'self/born-again',
  describe:
    'born-again networks (Furlanello et al. 2018): G generations of the student in one run; generation 1 from the labels, generation g taught by g − 1 with (1 − α)·CE + α·T²·KL (KD-Lib BANN: α 0.5, T 20, KL mean over B·K); reports gen.1 … gen.G and their logit ensemble',
  options: bornAgainSchema,
  // DOT: the CE with the labels is the task loss, the KL to generation g − 1 distillation (generation 1 has no distillation term).
  objective: 'mixed',
  requires: (o) => ({ roles: o.generation > 1 ? [o.student, o.teacher] : [o.student] }),
  generations: (o) => o.generations,
  compute: (ctx, o): Record<string, WeightedTerm> => {
    const zs = ctx.outputs(o.student).logits;
    if (o.generation === 1) return { ce: { value: crossEntropy(zs, labelTargets(ctx.batch)), weight: 1, objective: 'task' } };
    const t = tfKdSelfTerms(zs, targetLogits(ctx, o.teacher), labelTargets(ctx.batch), { temperature: o.temperature, multiplier: 1, reduction: o.reduction });
    return { ce: { value: t.ce, weight: 1 - o.alpha, objective: 'task' }, kd: { value: t.kd, weight: o.alpha, objective: 'distill' } };
  },
});
