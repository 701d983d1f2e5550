/**
 * The segmentation plugins: per-pixel cross-entropy from labels and the two structured-KD losses of
 * Liu et al. (2019). Each declares `tasks: ['segmentation']` and checks its roles at creation.
 */
import { defineLoss, KdError, studentOption, teacherOption } from '@tfkd/kd-core';
import * as tf from '@tensorflow/tfjs-core';
import type { Scalar } from '@tensorflow/tfjs-core';
import { z } from 'zod';
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

export const SEGMENTATION_LOSSES = [segCrossEntropyPlugin, segPixelKdPlugin, segPairwisePlugin];
