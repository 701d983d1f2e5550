import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import {
  CalibrationAccumulator,
  KdError,
  crossEntropy,
  defineLoss,
  labelTargets,
  klBatchMean,
  logSoftmaxT,
  stopGradient,
  studentOption,
  temperatureOption,
  type EvalBatch,
  type EvalReport,
  type PluginDeps,
  type WeightedTerm,
} from '@tfkd/kd-core';
import { z } from 'zod';
import { alphaOption } from './common';

/** One classifier of the network: its logits `[B, K]` and its feature `[B, C]`. */
export interface ByotExit {
  logits: Tensor;
  feature: Tensor;
}

export interface ByotTermValues {
  /** CE of the deepest classifier. */
  deepCe: Scalar;
  /** Per shallow head: CE(z_i, y), T²·KL(sg(p_deep^T) ‖ p_i^T), Σ (f_i − sg(f_deep))². */
  heads: { ce: Scalar; kl: Scalar; feature: Scalar }[];
}

/**
 * The terms of Be Your Own Teacher (Zhang et al. 2019), unweighted. The deepest classifier teaches
 * every shallow head i through its softened output and its feature, both gradient-stopped (kd-core
 * `stopGradient`), so a head's terms send no gradient into the deepest classifier. The feature term
 * is summed over the batch and the feature entries, as the reference (`feature_loss_function`).
 */
export function byotTerms(deep: ByotExit, heads: readonly ByotExit[], labels: Tensor, o: { temperature: number }): ByotTermValues {
  const t = o.temperature;
  return {
    deepCe: crossEntropy(deep.logits, labels),
    heads: heads.map((h) =>
      tf.tidy(() => {
        const target = logSoftmaxT(stopGradient(deep.logits), t);
        return {
          ce: crossEntropy(h.logits, labels),
          kl: tf.mul(klBatchMean(target, logSoftmaxT(h.logits, t)), t * t) as Scalar,
          feature: tf.sum(tf.squaredDifference(h.feature, stopGradient(deep.feature))) as Scalar,
        };
      }),
    ),
  };
}

/** deepCeWeight·CE_deep + Σ_i [(1 − α)·CE_i + α·KL_i + λ·F_i] as one scalar. */
export function byotLoss(
  deep: ByotExit,
  heads: readonly ByotExit[],
  labels: Tensor,
  o: { alpha: number; temperature: number; lambda: number; deepCeWeight: number },
): Scalar {
  return tf.tidy(() => {
    const v = byotTerms(deep, heads, labels, o);
    const parts = [tf.mul(v.deepCe, o.deepCeWeight), ...v.heads.flatMap((h) => [tf.mul(h.ce, 1 - o.alpha), tf.mul(h.kl, o.alpha), tf.mul(h.feature, o.lambda)])];
    return tf.addN(parts) as Scalar;
  });
}

export const byotSchema = z
  .object({
    alpha: alphaOption(0.1, 'pytorch-be-your-own-teacher train.py --alpha'),
    temperature: temperatureOption(3, 'pytorch-be-your-own-teacher train.py --temperature'),
    lambda: z.number().min(0).default(1e-6).describe('λ, weight of each Σ(f_i − sg(f_deep))² (summed over batch and features); default 1e-6: pytorch-be-your-own-teacher train.py --beta'),
    deepCeWeight: z
      .number()
      .min(0)
      .optional()
      .describe('weight of the deepest classifier’s CE; default 1 − α, as the reference ((1 − α)·(CE_deep + Σ CE_i)); 1 gives the paper’s plain CE'),
    heads: z.array(z.string().min(1)).min(1).default(['head1', 'head2']).describe("layers giving the shallow heads' logits; default byot-resnet's ['head1', 'head2']"),
    features: z
      .array(z.string().min(1))
      .min(1)
      .default(['head1_feat', 'head2_feat'])
      .describe("layers giving the shallow heads' features, one per head; default ['head1_feat', 'head2_feat']"),
    deepFeature: z.string().min(1).default('embedding').describe("layer giving the deepest classifier's feature; default 'embedding'"),
    deep: z.string().min(1).default('logits').describe("layer of the deepest classifier's logits (the model's first output), for its FLOPs; default 'logits'"),
    student: studentOption,
  })
  .strict();
export type ByotOptions = z.output<typeof byotSchema>;

const tapsOf = (o: ByotOptions) => [...o.heads, ...o.features, o.deepFeature].map((l) => `${o.student}.${l}`);

function checkShapes(o: ByotOptions, deps: PluginDeps): void {
  if (o.heads.length !== o.features.length) {
    throw new KdError('KD_PLUGIN_OPTIONS', `'${deps.name}': ${o.heads.length} heads but ${o.features.length} features`, {
      path: `${deps.specPath}.with.features`,
      fix: 'give one feature layer per head, in the same order',
    });
  }
  const deepShape = deps.tapShape(`${o.student}.${o.deepFeature}`);
  o.features.forEach((f, i) => {
    const s = deps.tapShape(`${o.student}.${f}`);
    if (s.length !== deepShape.length || s.some((d, j) => d !== deepShape[j])) {
      throw new KdError('KD_SHAPE_MISMATCH', `'${deps.name}': feature '${f}' is [${s}] and the deepest feature '${o.deepFeature}' is [${deepShape}]`, {
        path: `${deps.specPath}.with.features[${i}]`,
        fix: 'name head features of the deepest feature’s shape (byot-resnet’s headI_feat match its embedding)',
      });
    }
  });
}

/**
 * Per-exit evaluation: on the student's test batches, accuracy, NLL and ECE (15 bins) of every
 * shallow head (the model's auxiliary outputs), of the deepest classifier and of the mean of all
 * their logits, with the forward FLOPs per image needed to reach each. Report entries
 * `<student>:<head>`, `<student>:deep`, `<student>:ensemble`.
 */
class ExitEvaluation {
  private readonly accs = new Map<string, CalibrationAccumulator>();
  private readonly flops: Record<string, number> = {};

  constructor(
    private readonly o: ByotOptions,
    deps: PluginDeps,
  ) {
    if (deps.tapFlops) {
      for (const h of o.heads) this.flops[h] = deps.tapFlops(`${o.student}.${h}`);
      this.flops.deep = deps.tapFlops(`${o.student}.${o.deep}`);
      this.flops.ensemble = deps.tapFlops([...o.heads, o.deep].map((l) => `${o.student}.${l}`));
    }
  }

  private acc(name: string): CalibrationAccumulator {
    let a = this.accs.get(name);
    if (!a) this.accs.set(name, (a = new CalibrationAccumulator({ bins: 15, input: 'logits' })));
    return a;
  }

  batch(e: EvalBatch): void {
    if (e.role !== this.o.student) return;
    const labels = e.labels.dataSync();
    const deep = e.logits.dataSync();
    const sum = Float64Array.from(deep);
    for (const h of this.o.heads) {
      const z = e.outputs?.[h];
      if (!z) {
        throw new KdError('KD_PLUGIN_DEPENDENCY', `head '${h}' is not an output of ${this.o.student}'s model (outputs after the logits: ${Object.keys(e.outputs ?? {}).join(', ') || 'none'})`, {
          path: 'student.model',
          fix: 'use a model whose heads are outputs after the logits (byot-resnet), or name its head layers in `heads:`',
        });
      }
      const values = z.dataSync();
      this.acc(h).update(values, labels);
      for (let i = 0; i < sum.length; i++) sum[i] += values[i];
    }
    this.acc('deep').update(deep, labels);
    const members = this.o.heads.length + 1;
    this.acc('ensemble').update(
      sum.map((v) => v / members),
      labels,
    );
  }

  end(report: EvalReport): void {
    if (this.accs.size === 0) return;
    for (const [name, a] of this.accs) {
      const r = a.result();
      report.set(`${this.o.student}:${name}`, { accuracy: r.accuracy, nll: r.nll, ece: r.ece, ...(name in this.flops ? { flopsPerImage: this.flops[name] } : {}) });
    }
    this.accs.clear();
  }
}

/**
 * `self/byot`: Be Your Own Teacher. Terms: `:deep:ce` (weight deepCeWeight, default 1 − α) and per
 * shallow head `:<head>:ce` (1 − α), `:<head>:kl` (α), `:<head>:feature` (λ). Evaluation adds one
 * entry per exit (accuracy, nll, ece, flopsPerImage) and one for their logit ensemble.
 */
export const byotPlugin = defineLoss({
  id: 'self/byot',
  describe:
    'Be Your Own Teacher (Zhang et al. 2019): classifier heads on intermediate sections; each shallow head (1 − α)·CE + α·T²·KL(sg(p_deep^T) ‖ p_i^T) + λ·Σ(f_i − sg(f_deep))², the deepest (1 − α)·CE (α 0.1, T 3, λ 1e-6: pytorch-be-your-own-teacher); evaluation reports every head with its FLOPs per image, and their ensemble. Model: byot-resnet',
  options: byotSchema,
  // DOT: every exit's CE with the labels is the task loss; what the deepest classifier teaches the heads (KL, feature) distillation.
  objective: 'mixed',
  requires: (o) => ({ roles: [o.student], taps: tapsOf(o) }),
  setup(o, deps) {
    checkShapes(o, deps);
    const exits = new ExitEvaluation(o, deps);
    return { hooks: { evalBatch: (e) => exits.batch(e), evalEnd: (r) => exits.end(r) } };
  },
  compute: (ctx, o) => {
    const out = ctx.outputs(o.student);
    const v = byotTerms(
      { logits: out.logits, feature: out.taps[o.deepFeature] },
      o.heads.map((h, i) => ({ logits: out.taps[h], feature: out.taps[o.features[i]] })),
      labelTargets(ctx.batch),
      o,
    );
    const terms: Record<string, WeightedTerm> = { 'deep:ce': { value: v.deepCe, weight: o.deepCeWeight ?? 1 - o.alpha, objective: 'task' } };
    v.heads.forEach((h, i) => {
      terms[`${o.heads[i]}:ce`] = { value: h.ce, weight: 1 - o.alpha, objective: 'task' };
      terms[`${o.heads[i]}:kl`] = { value: h.kl, weight: o.alpha, objective: 'distill' };
      terms[`${o.heads[i]}:feature`] = { value: h.feature, weight: o.lambda, objective: 'distill' };
    });
    return terms;
  },
});
