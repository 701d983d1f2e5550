/**
 * The detection plugins: the label loss (`loss/detection`) and the four distillation losses, each a
 * thin `defineLoss` over this package's pure functions. Every one declares `tasks: ['detection']`,
 * checks at creation (plan time) that its roles are detectors of the run's layout, and reads the
 * heads (`ctx.outputs(role).heads`) and the batch's objects in its step.
 */
import { defineLoss, KdError, studentOption, teacherOption, stopGradient, type PluginDeps } from '@tfkd/kd-core';
import * as tf from '@tensorflow/tfjs-core';
import type { Scalar } from '@tensorflow/tfjs-core';
import { z } from 'zod';
import type { DetectorLayout } from '../layout';
import { detBoundedRegression } from '../losses/det-bounded-regression';
import { createImitationAdapter, detFeatureImitation, type ImitationAdapter } from '../losses/det-feature-imitation';
import { detLocalization } from '../losses/det-localization';
import { detLogitKd } from '../losses/det-logit-kd';
import { detectionLossTerms } from '../losses/task';
import { targetTensors } from '../targets';
import { batchImitationMasks, batchTargets, detectorHeadsOf, detectorLayoutOf, sameLayout } from './heads';

const DETECTION = ['detection'] as const;

const centerSampling = z
  .number()
  .min(0)
  .default(1.5)
  .describe('FCOS centre-sampling radius in strides for the positives (mmdet center_sample_radius 1.5; 0: inside the box)');

/** Student and teacher layouts, checked equal: what every head-to-head loss starts from. */
function pairLayouts(o: { student: string; teacher: string }, deps: PluginDeps): { layout: DetectorLayout } {
  const layout = detectorLayoutOf(deps, o.student);
  sameLayout(deps, layout, detectorLayoutOf(deps, o.teacher));
  return { layout };
}

export const detectionLossPlugin = defineLoss({
  id: 'loss/detection',
  tasks: DETECTION,
  describe:
    'detection loss from labels (GFL recipe, focal classification): sigmoid focal (α 0.25, γ 2) / N_pos + 2·GIoU + 0.25·DFL on the FCOS positives; terms cls, giou, dfl',
  options: z
    .object({
      student: studentOption,
      centerSampling,
      alpha: z.number().min(0).max(1).default(0.25).describe('focal loss α'),
      gamma: z.number().min(0).default(2).describe('focal loss γ'),
      giouWeight: z.number().min(0).default(2).describe('weight of the GIoU term (GFL 2)'),
      dflWeight: z.number().min(0).default(0.25).describe('weight of the distribution focal loss (GFL 0.25)'),
    })
    .strict(),
  requires: (o) => ({ roles: [o.student] }),
  setup: (o, deps) => ({ layout: detectorLayoutOf(deps, o.student) }),
  compute(ctx, o, deps, { layout }) {
    const heads = detectorHeadsOf(ctx, o.student, layout, deps.name);
    const t = targetTensors(batchTargets(ctx, layout, o.centerSampling, deps.name), layout);
    const r = detectionLossTerms(heads, t, layout, { alpha: o.alpha, gamma: o.gamma });
    return { cls: r.cls, giou: { value: r.giou, weight: o.giouWeight }, dfl: { value: r.dfl, weight: o.dflWeight } };
  },
});

const tapPair = z.tuple([z.string().min(1), z.string().min(1)]);

export const detFeatureImitationPlugin = defineLoss({
  id: 'loss/det-feature-imitation',
  tasks: DETECTION,
  describe:
    'fine-grained feature imitation (Wang et al. 2019): Σ I·Σ_c (f_t − a(f_s))² / (2·Σ I) over near-object locations (anchors with IoU > ψ·best IoU), per level pair, 1×1 linear adapter',
  options: z
    .object({
      pairs: z
        .array(tapPair)
        .min(1)
        .default([
          ['student.p3', 'teacher.p3'],
          ['student.p4', 'teacher.p4'],
        ])
        .describe('(student tap, teacher tap) pairs, each at the spatial size of one detector level (p3 16×16, p4 8×8 on 64×64 scenes)'),
      psi: z.number().gt(0).max(1).default(0.5).describe('ψ: mask threshold as a fraction of each object\'s best anchor IoU (reference 0.5)'),
      anchorScale: z.number().positive().default(4).describe('anchor side = anchorScale·stride'),
      kernelSize: z.number().int().positive().default(1).describe('adapter kernel (reference: 3)'),
      relu: z.boolean().default(false).describe('adapter ReLU (reference: true)'),
    })
    .strict(),
  requires: (o) => ({ roles: ['student', 'teacher'], taps: [...new Set(o.pairs.flat())] }),
  setup(o, deps) {
    const layout = detectorLayoutOf(deps, 'student');
    const levels: number[] = [];
    const adapters: ReturnType<typeof createImitationAdapter>[] = [];
    try {
      o.pairs.forEach(([s, t], i) => {
        const [fs, ft] = [deps.tapShape(s), deps.tapShape(t)];
        const level = layout.levels.findIndex((lv) => lv.size[0] === fs[0] && lv.size[1] === fs[1]);
        if (fs.length !== 3 || ft.length !== 3 || fs[0] !== ft[0] || fs[1] !== ft[1] || level < 0) {
          throw new KdError('KD_SHAPE_MISMATCH', `'${deps.name}' pair ${i}: ${s} [${fs}] and ${t} [${ft}] must be feature maps of one detector level (${layout.levels.map((l) => `${l.name} ${l.size.join('×')}`).join(', ')})`, {
            path: `${deps.specPath}.with.pairs[${i}]`,
            fix: 'pair taps of the same spatial size as a level, e.g. [student.p3, teacher.p3] (c3 and p3 are stride 4, c4 and p4 stride 8)',
          });
        }
        levels.push(level);
        adapters.push(createImitationAdapter(fs[2], ft[2], { kernelSize: o.kernelSize, relu: o.relu, seed: deps.rng.nextUint32(), name: `${deps.name}_adapter_${i}` }));
      });
    } catch (e) {
      adapters.forEach((a) => tf.dispose([a.kernel, a.bias]));
      throw e;
    }
    return { layout, levels, adapters, variables: adapters.flatMap((a) => [a.kernel as tf.Variable, a.bias as tf.Variable]) };
  },
  compute(ctx, o, deps, { layout, levels, adapters }) {
    const masks = batchImitationMasks(ctx, layout, { psi: o.psi, anchorScale: o.anchorScale }, deps.name);
    const tap = (t: string) => ctx.outputs(t.slice(0, t.lastIndexOf('.'))).taps[t.slice(t.lastIndexOf('.') + 1)];
    return detFeatureImitation(
      o.pairs.map(([s]) => tap(s)),
      o.pairs.map(([, t]) => tap(t)),
      levels.map((l) => masks[l]),
      { adapters: adapters as ImitationAdapter[] },
    );
  },
});

const kdRoles = { student: studentOption, teacher: teacherOption };

export const detBoundedRegressionPlugin = defineLoss({
  id: 'loss/det-bounded-regression',
  tasks: DETECTION,
  describe:
    'teacher-bounded regression (Chen et al. 2017): Σ_pos e_s·1[e_s + m > e_t] / N_pos, e = ‖integral(box) − y‖² in strides; the student pays its error only while not better than the teacher by m',
  options: z.object({ ...kdRoles, margin: z.number().min(0).default(0.01).describe('margin m (0.01 as HqWei/Distillation-of-Faster-rcnn)'), centerSampling }).strict(),
  requires: (o) => ({ roles: [o.student, o.teacher] }),
  setup: pairLayouts,
  compute(ctx, o, deps, { layout }) {
    const [s, t] = [detectorHeadsOf(ctx, o.student, layout, deps.name), detectorHeadsOf(ctx, o.teacher, layout, deps.name)];
    const targets = batchTargets(ctx, layout, o.centerSampling, deps.name);
    return detBoundedRegression(s.box, t.box, { distances: targets.distances, positive: targets.positive }, { margin: o.margin });
  },
});

export const detLocalizationPlugin = defineLoss({
  id: 'loss/det-localization',
  tasks: DETECTION,
  describe:
    'localization distillation (LD, Zheng et al. 2022): τ²-scaled KL between the box-side distributions of teacher and student on the positives, weighted by the student\'s max class score (mmdet LDHead)',
  options: z
    .object({
      ...kdRoles,
      temperature: z.number().positive().default(10).describe('τ (mmdet 10)'),
      weighting: z.enum(['score', 'uniform']).default('score').describe("per-location weight: 'score' the student's detached max class probability (mmdet), 'uniform' 1"),
      centerSampling,
    })
    .strict(),
  requires: (o) => ({ roles: [o.student, o.teacher] }),
  setup: pairLayouts,
  compute(ctx, o, deps, { layout }) {
    const [s, t] = [detectorHeadsOf(ctx, o.student, layout, deps.name), detectorHeadsOf(ctx, o.teacher, layout, deps.name)];
    const { positive } = batchTargets(ctx, layout, o.centerSampling, deps.name);
    const weights = o.weighting === 'score' ? stopGradient(tf.max(tf.sigmoid(s.cls), -1)) : undefined;
    return detLocalization(s.box, t.box, positive, { temperature: o.temperature, ...(weights ? { weights } : {}) });
  },
});

export const detLogitKdPlugin = defineLoss({
  id: 'loss/det-logit-kd',
  tasks: DETECTION,
  describe:
    'class-head distillation with background weighting (Chen et al. 2017) for the sigmoid head: T²·Σ_k Bernoulli KL per location, weight 1 at positives and backgroundWeight elsewhere',
  options: z
    .object({
      ...kdRoles,
      temperature: z.number().positive().default(1).describe('T'),
      backgroundWeight: z.number().min(0).default(1.5).describe('weight of background locations (Chen et al. 1.5)'),
      centerSampling,
    })
    .strict(),
  requires: (o) => ({ roles: [o.student, o.teacher] }),
  setup: pairLayouts,
  compute(ctx, o, deps, { layout }): Scalar {
    const [s, t] = [detectorHeadsOf(ctx, o.student, layout, deps.name), detectorHeadsOf(ctx, o.teacher, layout, deps.name)];
    const { positive } = batchTargets(ctx, layout, o.centerSampling, deps.name);
    return detLogitKd(s.cls, t.cls, positive, { temperature: o.temperature, backgroundWeight: o.backgroundWeight });
  },
});

export const DETECTION_LOSSES = [detectionLossPlugin, detFeatureImitationPlugin, detBoundedRegressionPlugin, detLocalizationPlugin, detLogitKdPlugin];
