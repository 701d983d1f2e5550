import { KdError, stopGradient } from '@tfkd/kd-core';
import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { layerSeed } from '../common';
import { maskTensor, type MaskLike } from './common';

/** The adapter a(·) on the student features: a same-padded conv (1×1 by default), optional ReLU. */
export interface ImitationAdapter {
  /** [kh, kw, C_s, C_t]. */
  kernel: tf.Tensor4D;
  bias?: tf.Tensor1D;
  relu?: boolean;
}

/**
 * Trainable adapter variables for C_s → C_t (Glorot-uniform kernel seeded by seed and name, zero bias). The
 * reference (twangnh/Distilling-Object-Detectors, `vgg11.py`) uses a 3×3 conv + ReLU initialised
 * N(0, 1e−4); pass `kernelSize: 3, relu: true` for that shape.
 */
export function createImitationAdapter(
  studentChannels: number,
  teacherChannels: number,
  /** `name` seeds the kernel (with `seed`), so two adapters of one plugin differ. */
  opts: { kernelSize?: number; relu?: boolean; seed?: number; name?: string } = {},
): { kernel: tf.Variable<tf.Rank.R4>; bias: tf.Variable<tf.Rank.R1>; relu: boolean } {
  const k = opts.kernelSize ?? 1;
  const name = opts.name ?? 'imitation_adapter';
  const limit = Math.sqrt(6 / (k * k * (studentChannels + teacherChannels)));
  const kernel = tf.tidy(() => tf.randomUniform([k, k, studentChannels, teacherChannels], -limit, limit, 'float32', layerSeed(opts.seed ?? 1, name)));
  return {
    kernel: tf.variable(kernel as tf.Tensor4D, true),
    bias: tf.variable(tf.zeros([teacherChannels]) as tf.Tensor1D, true),
    relu: opts.relu ?? false,
  };
}

export interface FeatureImitationOptions {
  /** One adapter per level (undefined: the student features are compared as they are). */
  adapters?: Array<ImitationAdapter | undefined>;
}

const list = <T>(x: T | T[]): T[] => (Array.isArray(x) ? x : [x]);

/**
 * Fine-grained feature imitation (Wang et al., CVPR 2019):
 * `L = Σ_levels Σ_{n,i,j} I_nij · Σ_c (f_t − a(f_s))²_nijc / (2 · Σ_levels Σ_{n,i,j} I_nij)`,
 * I the near-object mask ({@link imitationMask}), a the adapter. As the reference
 * (`trainval_net_sup.py`: `(pow(sup − adap(stu), 2) · mask).sum() / (2 · mask.sum())`) the squared
 * error is summed over channels, not averaged. An empty mask gives 0. Teacher features carry no gradient.
 *
 * @param student student feature maps [N, h, w, C_s], one per level (or one tensor)
 * @param teacher teacher feature maps [N, h, w, C_t], same levels
 * @param masks imitation masks [N, h, w] (tensor or plain numbers), same levels
 */
export function detFeatureImitation(student: Tensor | Tensor[], teacher: Tensor | Tensor[], masks: MaskLike | MaskLike[], opts: FeatureImitationOptions = {}): Scalar {
  const fs = list(student);
  const ft = list(teacher);
  const ms = Array.isArray(masks) && !(masks.length > 0 && typeof masks[0] === 'number') ? (masks as MaskLike[]) : [masks as MaskLike];
  if (fs.length !== ft.length || fs.length !== ms.length) {
    throw new KdError('KD_SHAPE_MISMATCH', `det-feature-imitation: ${fs.length} student levels, ${ft.length} teacher levels, ${ms.length} masks`, { fix: 'pass one student map, teacher map and mask per level' });
  }
  return tf.tidy(() => {
    let num: Tensor = tf.scalar(0);
    let den: Tensor = tf.scalar(0);
    fs.forEach((s, i) => {
      const a = opts.adapters?.[i];
      let adapted = s;
      if (a) {
        adapted = tf.conv2d(s as tf.Tensor4D, a.kernel, 1, 'same');
        if (a.bias) adapted = tf.add(adapted, a.bias);
        if (a.relu) adapted = tf.relu(adapted);
      }
      const t = stopGradient(ft[i]);
      if (adapted.shape.join() !== t.shape.join()) {
        throw new KdError('KD_SHAPE_MISMATCH', `det-feature-imitation level ${i}: student ${a ? 'after the adapter ' : ''}[${adapted.shape}] vs teacher [${t.shape}]`, {
          fix: 'pair levels of the same spatial size; give an adapter to map student channels to the teacher\'s',
        });
      }
      const [n, h, w] = t.shape;
      const m = maskTensor(ms[i], [n, h, w], `det-feature-imitation mask ${i}`);
      num = tf.add(num, tf.sum(tf.mul(tf.sum(tf.square(tf.sub(t, adapted)), -1), m)));
      den = tf.add(den, tf.sum(m));
    });
    return tf.div(num, tf.mul(2, tf.maximum(den, 1))) as Scalar;
  });
}
