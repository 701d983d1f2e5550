import * as tf from '@tensorflow/tfjs-core';
import type { Scalar } from '@tensorflow/tfjs-core';
import { KdError, defineLoss } from '@tfkd/kd-core';
import { z } from 'zod';
import { pairTaps, readTap, requireRank, tapRole, tapString } from './common';
import { poolToSmaller, spatiallyOrdered, sumScalars } from './ops';

/**
 * FSP matrix G(F1, F2) = F1ᵀ F2 / (h·w) between two NHWC maps of one model → [B, C1, C2]
 * (RepDistiller `FSP.compute_fsp`, which adaptive-average-pools the larger map to the smaller first).
 */
export function fspMatrix(f1: tf.Tensor4D, f2: tf.Tensor4D): tf.Tensor3D {
  return tf.tidy(() => {
    const [a, b] = poolToSmaller(f1, f2);
    const [n, h, w, c1] = a.shape;
    const c2 = b.shape[3];
    const x = tf.reshape(a, [n, h * w, c1]) as tf.Tensor3D;
    const y = tf.reshape(b, [n, h * w, c2]) as tf.Tensor3D;
    return tf.div(tf.matMul(x, y, true, false), h * w) as tf.Tensor3D;
  });
}

/** FSP for one pair of layer pairs: mean over B·C1·C2 of (G_s − G_t)² (RepDistiller `FSP.compute_loss`). */
export function fspLoss(s: [tf.Tensor4D, tf.Tensor4D], t: [tf.Tensor4D, tf.Tensor4D]): Scalar {
  return tf.tidy(() => tf.mean(tf.squaredDifference(fspMatrix(s[0], s[1]), fspMatrix(t[0], t[1]))) as Scalar);
}

const layerPairs = (who: string, example: string) =>
  z
    .array(z.tuple([tapString, tapString]))
    .min(1)
    .describe(`${who} layer pairs [lower, upper] as role.layer, one FSP matrix each, e.g. ${example}`);

export const fspSchema = z
  .object({
    student: layerPairs('trained', '[[student.block1, student.block2]]'),
    teacher: layerPairs('target', '[[teacher.block1, teacher.block2]]'),
  })
  .strict()
  .refine((o) => o.student.length === o.teacher.length, { message: '`student` and `teacher` must list as many layer pairs', path: ['teacher'] });

/** `loss/fsp`: the i-th student layer pair is matched to the i-th teacher layer pair. */
export const fspLossDef = defineLoss({
  id: 'loss/fsp',
  describe:
    'Flow of solution procedure (Yim et al. 2017): Σ_i mean((G_s,i − G_t,i)²), G(F1, F2) = F1ᵀF2/(h·w) between two NHWC taps of one model (channels must match student/teacher); recommended weight 50 when trained jointly (RepDistiller passes -b 50 but uses FSP in an init stage only, weight 1 there; declare that as a stage)',
  options: fspSchema,
  requires: (o) => ({ taps: pairTaps([...o.student, ...o.teacher]) }),
  setup(o, deps) {
    const fmt = (s: number[]) => `[${s.join(',')}]`;
    const shapes = (pairs: string[][], side: string) =>
      pairs.map((pair, i) => {
        const [a, b] = pair.map((tap, k) => requireRank(deps, `${side}[${i}][${k}]`, tap, [4], 'an NHWC feature map [H, W, C]'));
        if (!spatiallyOrdered(a, b)) {
          throw new KdError('KD_SHAPE_MISMATCH', `'${deps.name}': ${pair[0]} ${fmt(a)} and ${pair[1]} ${fmt(b)} cannot be pooled to one spatial size`, {
            path: `${deps.specPath}.with.${side}[${i}]`,
            fix: 'pair two layers whose H and W are ordered alike (equal sizes, as in the FSP paper, are best)',
          });
        }
        return [a[2], b[2]];
      });
    // The NHWC layers of the teacher's role with c1 or c2 channels, for the hint.
    const withChannels = (teacherTap: string, c1: number, c2: number) => {
      if (!deps.layerShapes) return '';
      const role = tapRole(teacherTap, deps.roles, `${deps.specPath}.with`);
      const maps = deps.layerShapes(role).filter((l) => l.shape.length === 3);
      const list = (c: number) => maps.filter((l) => l.shape[2] === c).map((l) => `${role}.${l.layer} ${fmt(l.shape)}`);
      const show = (c: number) => `${c}: ${list(c).join(', ') || 'none'}`;
      return ` (${c1 === c2 ? show(c1) : `${show(c1)}; ${show(c2)}`})`;
    };
    const sc = shapes(o.student, 'student');
    const tc = shapes(o.teacher, 'teacher');
    sc.forEach(([s1, s2], i) => {
      const [t1, t2] = tc[i];
      if (s1 !== t1 || s2 !== t2) {
        const [sp, tp] = [o.student[i], o.teacher[i]];
        throw new KdError(
          'KD_SHAPE_MISMATCH',
          `'${deps.name}': FSP matrices differ: ${sp[0]} ${fmt(deps.tapShape(sp[0]))} × ${sp[1]} ${fmt(deps.tapShape(sp[1]))} gives ${s1}×${s2}, ${tp[0]} ${fmt(deps.tapShape(tp[0]))} × ${tp[1]} ${fmt(deps.tapShape(tp[1]))} gives ${t1}×${t2}`,
          {
            path: `${deps.specPath}.with.teacher[${i}]`,
            fix: `FSP needs the same channel counts on both sides (RepDistiller raises too): pick teacher layers of ${s1 === s2 ? s1 : `${s1} and ${s2}`} channels${withChannels(tp[0], s1, s2)}, or a deeper teacher of the student's widths (resnet → resnet-student)`,
          },
        );
      }
    });
    return {};
  },
  compute: (ctx, o) =>
    sumScalars(
      o.student.map((sp, i) => {
        const tp = o.teacher[i];
        const s = sp.map((tap) => readTap(ctx, tap, false)) as [tf.Tensor4D, tf.Tensor4D];
        const t = tp.map((tap) => readTap(ctx, tap, true)) as [tf.Tensor4D, tf.Tensor4D];
        return fspLoss(s, t);
      }),
    ),
});
