/**
 * The segmentation plugins: per-pixel cross-entropy from labels, the three structured-KD losses of
 * Liu et al. (2019) — pixel-wise, pair-wise and holistic (adversarial, with a critic player) — and
 * channel-wise distillation (Shu et al. 2021). Each declares `tasks: ['segmentation']` and checks its
 * roles at creation.
 */
import { defineLoss, KdError, type PluginDeps, type StepContext, studentOption, teacherOption } from '@tfkd/kd-core';
import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { buildSegDiscriminator } from '../discriminator';
import { createImitationAdapter, type ImitationAdapter } from '../losses/det-feature-imitation';
import { criticInput, segAdversarialCritic, segAdversarialStudent } from '../losses/seg-adversarial';
import { segCwd } from '../losses/seg-cwd';
import { segPairwise } from '../losses/seg-pairwise';
import { segPixelKd } from '../losses/seg-pixel-kd';
import { segmentationLoss } from '../losses/task';
import { batchMasks, checkSegmenter } from './heads';

const SEGMENTATION = ['segmentation'] as const;

export const segCrossEntropyPlugin = defineLoss({
  id: 'loss/seg-cross-entropy',
  tasks: SEGMENTATION,
  describe: 'segmentation loss from labels: mean per-pixel softmax cross-entropy of the logits [H, W, K] against the masks (background is class 0)',
  options: z.object({ student: studentOption }).strict(),
  requires: (o) => ({ roles: [o.student] }),
  setup(o, deps) {
    checkSegmenter(deps, o.student);
    return {};
  },
  compute: (ctx, o, deps) => segmentationLoss(ctx.outputs(o.student).logits, batchMasks(ctx, deps.name)),
});

const kdRoles = { student: studentOption, teacher: teacherOption };

export const segPixelKdPlugin = defineLoss({
  id: 'loss/seg-pixel-kd',
  tasks: SEGMENTATION,
  describe: 'pixel-wise distillation (Liu et al. 2019): T²·mean over pixels of KL(softmax(z_t/T) ‖ softmax(z_s/T)) (reference λ 10 at batch 8 ≈ weight 80 here)',
  options: z.object({ ...kdRoles, temperature: z.number().positive().default(1).describe('T (the reference has none: 1)') }).strict(),
  requires: (o) => ({ roles: [o.student, o.teacher] }),
  setup(o, deps) {
    checkSegmenter(deps, o.student);
    checkSegmenter(deps, o.teacher);
    return {};
  },
  compute: (ctx, o) => segPixelKd(ctx.outputs(o.student).logits, ctx.outputs(o.teacher).logits, { temperature: o.temperature }),
});

const tapPair = z.tuple([z.string().min(1), z.string().min(1)]);

export const segPairwisePlugin = defineLoss({
  id: 'loss/seg-pairwise',
  tasks: SEGMENTATION,
  describe: 'pair-wise distillation (Liu et al. 2019): squared difference of the cosine-similarity graphs of max-pooled feature nodes, Σ (a_t − a_s)² / (M²·N), summed over tap pairs',
  options: z
    .object({
      pairs: z.array(tapPair).min(1).default([['student.enc3', 'teacher.enc3']]).describe('(student tap, teacher tap) pairs of one spatial size (channels may differ); default the deepest encoder stage'),
      scale: z.number().gt(0).max(1).default(0.5).describe('node size as a fraction of the map (reference --pool-scale 0.5)'),
    })
    .strict(),
  requires: (o) => ({ roles: ['student', 'teacher'], taps: [...new Set(o.pairs.flat())] }),
  setup(o, deps) {
    o.pairs.forEach(([s, t], i) => {
      const [fs, ft] = [deps.tapShape(s), deps.tapShape(t)];
      if (fs.length !== 3 || ft.length !== 3 || fs[0] !== ft[0] || fs[1] !== ft[1]) {
        throw new KdError('KD_SHAPE_MISMATCH', `'${deps.name}' pair ${i}: ${s} [${fs}] and ${t} [${ft}] must be feature maps of one spatial size`, {
          path: `${deps.specPath}.with.pairs[${i}]`,
          fix: 'pair taps of the same stage, e.g. [student.enc3, teacher.enc3] (enc1 and dec1 full size, enc2 and dec2 1/2, enc3 1/4)',
        });
      }
    });
    return {};
  },
  compute(ctx, o): Scalar {
    const tap = (t: string) => ctx.outputs(t.slice(0, t.lastIndexOf('.'))).taps[t.slice(t.lastIndexOf('.') + 1)];
    const terms = o.pairs.map(([s, t]) => segPairwise(tap(s), tap(t), { scale: o.scale }));
    return (terms.length === 1 ? terms[0] : tf.addN(terms)) as Scalar;
  },
});

const tapOf = (ctx: StepContext, t: string): Tensor => ctx.outputs(t.slice(0, t.lastIndexOf('.'))).taps[t.slice(t.lastIndexOf('.') + 1)];

export const segCwdPlugin = defineLoss({
  id: 'loss/seg-cwd',
  tasks: SEGMENTATION,
  describe:
    'channel-wise distillation (Shu et al. 2021): per image and channel a softmax over the H·W locations at τ, τ²/(N·C)·Σ KL(teacher ‖ student); on the logits, or on tap pairs (1×1 adapter when channels differ)',
  options: z
    .object({
      ...kdRoles,
      temperature: z.number().positive().default(4).describe('τ (the official README recipe: 4, loss weight 3; mmrazor PSPNet: 1, weight 5)'),
      pairs: z
        .array(tapPair)
        .min(1)
        .optional()
        .describe('(student tap, teacher tap) feature pairs of one spatial size instead of the logits; a 1×1 linear adapter (trained with the student) when channels differ'),
    })
    .strict(),
  requires: (o) => ({ roles: [o.student, o.teacher], ...(o.pairs ? { taps: [...new Set(o.pairs.flat())] } : {}) }),
  setup(o, deps) {
    checkSegmenter(deps, o.student);
    checkSegmenter(deps, o.teacher);
    const adapters: (ImitationAdapter | undefined)[] = [];
    const made: tf.Variable[] = [];
    try {
      (o.pairs ?? []).forEach(([s, t], i) => {
        const [fs, ft] = [deps.tapShape(s), deps.tapShape(t)];
        if (fs.length !== 3 || ft.length !== 3 || fs[0] !== ft[0] || fs[1] !== ft[1]) {
          throw new KdError('KD_SHAPE_MISMATCH', `'${deps.name}' pair ${i}: ${s} [${fs}] and ${t} [${ft}] must be feature maps of one spatial size`, {
            path: `${deps.specPath}.with.pairs[${i}]`,
            fix: 'pair taps of the same stage, e.g. [student.enc3, teacher.enc3] (enc1 and dec1 full size, enc2 and dec2 1/2, enc3 1/4)',
          });
        }
        if (fs[2] === ft[2]) return void adapters.push(undefined);
        const a = createImitationAdapter(fs[2], ft[2], { seed: deps.rng.nextUint32(), name: `${deps.name}_adapter_${i}` });
        made.push(a.kernel, a.bias);
        adapters.push(a);
      });
    } catch (e) {
      tf.dispose(made);
      throw e;
    }
    return { adapters, variables: made };
  },
  compute(ctx, o, _deps, { adapters }): Scalar {
    if (!o.pairs) return segCwd(ctx.outputs(o.student).logits, ctx.outputs(o.teacher).logits, { temperature: o.temperature });
    const terms = o.pairs.map(([s, t], i) => segCwd(tapOf(ctx, s), tapOf(ctx, t), { temperature: o.temperature, adapter: adapters[i] }));
    return (terms.length === 1 ? terms[0] : tf.addN(terms)) as Scalar;
  },
});

const adversarialOptions = z
  .object({
    ...kdRoles,
    critic: z
      .string()
      .min(1)
      .default('critic')
      .describe('the player (a key of the spec\'s `players:`) this loss trains as its critic, with the player\'s own optimizer'),
    gpWeight: z.number().min(0).default(10).describe('λ_gp, the gradient-penalty weight (reference --lambda-gp 10)'),
    softmax: z.boolean().default(false).describe('score softmax maps instead of the raw logits (the reference scores logits)'),
    image: z.boolean().default(false).describe('condition the critic on the image (concatenated channels, as the paper describes; the reference code does not)'),
  })
  .strict();
type AdversarialOptions = z.output<typeof adversarialOptions>;

/** What the critic scores of a role in this step: its logits (softmaxed, image-conditioned as the options say). */
const scoredMap = (ctx: StepContext, o: AdversarialOptions, role: string): Tensor =>
  criticInput(ctx.outputs(role).logits, { softmax: o.softmax, ...(o.image ? { image: ctx.input(role) } : {}) });

export const segAdversarialPlugin = defineLoss({
  id: 'loss/seg-adversarial',
  tasks: SEGMENTATION,
  objective: 'distill',
  describe:
    "holistic distillation (Liu et al. 2019): a WGAN-GP critic player (spec `players:`, its own optimizer) scores segmentation maps, the teacher's real, the student's fake; the student's term −mean D(Q_s), the critic's objective λ·(mean D(Q_s) − mean D(Q_t) + λ_gp·GP), λ = the spec weight (reference λ_d 0.1)",
  options: adversarialOptions,
  requires: (o) => ({ roles: [o.student, o.teacher], players: [o.critic] }),
  setup(o, deps) {
    checkSegmenter(deps, o.student);
    checkSegmenter(deps, o.teacher);
    return {};
  },
  // The student's side: the critic's score of its map, raised; the gradient reaches the student through D, never D's weights.
  compute: (ctx, o) => segAdversarialStudent(ctx.player(o.critic), scoredMap(ctx, o, o.student)),
  player: {
    role: (o) => o.critic,
    options: z
      .object({
        width: z.number().int().positive().default(16).describe('base width w of the critic: four 4×4 stride-2 convs of w, 2w, 4w, 8w channels'),
        slope: z.number().min(0).max(1).default(0.1).describe('LeakyReLU slope (reference 0.1)'),
      })
      .strict(),
    build(o, deps: PluginDeps, p) {
      const [h, w, c] = deps.inputShape;
      if (h % 16 !== 0 || w % 16 !== 0) {
        throw new KdError('KD_SHAPE_MISMATCH', `'${deps.name}': the critic '${p.name}' halves the map four times, and the data's ${h}×${w} maps are not divisible by 16`, {
          path: `players.${p.name}`,
          fix: 'use scenes whose side is a multiple of 16 (fashion-scenes `size: 64`)',
        });
      }
      const opts = p.options as { width: number; slope: number };
      return buildSegDiscriminator({ inputShape: [h, w, deps.numClasses + (o.image ? c : 0)], width: opts.width, slope: opts.slope, seed: p.seed, name: p.name });
    },
    // The critic's side, after the student's update, on the same forward's maps (detached): λ_d times the WGAN-GP loss.
    compute: (ctx, o, deps) =>
      segAdversarialCritic(ctx.player(o.critic), scoredMap(ctx, o, o.student), scoredMap(ctx, o, o.teacher), { gpWeight: o.gpWeight, weight: deps.weight, rng: ctx.rng }),
  },
});

export const SEGMENTATION_LOSSES = [segCrossEntropyPlugin, segPixelKdPlugin, segPairwisePlugin, segCwdPlugin, segAdversarialPlugin];
