import { KdError, klRows, logSoftmaxT, stopGradient } from '@tfkd/kd-core';
import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import type { ImitationAdapter } from './det-feature-imitation';

export interface CwdOptions {
  /**
   * τ. Default 4: the official README's logits recipe (`exp_cwd.sh channel kl 3 4`: loss weight 3,
   * τ 4). mmrazor's CWD config for PSPNet logits uses τ 1 with loss weight 5.
   */
  temperature: number;
  /**
   * Conv on the student map before the loss, for maps whose channel count differs from the
   * teacher's (`createImitationAdapter(C_s, C_t)`: 1×1, linear, trained with the student). The
   * reference's feature recipe (`--cwd-feat`) uses 1×1 conv (no bias) + BN + ReLU.
   */
  adapter?: ImitationAdapter;
}

/** [N, H, W, C] → rows [N·C, H·W]: one row per (image, channel), the locations along it. */
function channelRows(x: Tensor): Tensor {
  const [n, h, w, c] = x.shape;
  return tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [n * c, h * w]);
}

/**
 * Channel-wise distillation (Shu et al., ICCV 2021, "Channel-wise Knowledge Distillation for Dense
 * Prediction"): each channel of a logit or feature map [N, H, W, C] becomes a distribution over its
 * H·W locations, `φ(y_c) = softmax_{hw}(y_c / τ)`, and
 *
 *   `L = τ² / (N·C) · Σ_{n,c} Σ_{hw} φ(y^t_nc) · (log φ(y^t_nc) − log φ(y^s_nc))`
 *
 * — KL(teacher ‖ student) per channel, summed over locations, averaged over channels and images.
 * As irfanICMLL/TorchDistiller `SemSeg-distill/utils/criterion.py` `CriterionCWD` (norm_type
 * 'channel', divergence 'kl': `KLDivLoss(reduction='sum') / (n·c) · τ²`) and open-mmlab/mmrazor
 * `mmrazor/models/losses/cwd.py` `ChannelWiseDivergence` (the same sum `/ (C·N) · τ²`). Both need
 * equal spatial sizes; channels are matched by `opts.adapter` on the student. The teacher map
 * carries no gradient.
 *
 * @param student map [N, H, W, C_s] (C_s = C_t, or the adapter's input channels)
 * @param teacher map [N, H, W, C_t]
 */
export function segCwd(student: Tensor, teacher: Tensor, opts: CwdOptions): Scalar {
  const t = opts.temperature;
  if (!(t > 0)) throw new KdError('KD_PLUGIN_OPTIONS', `seg-cwd: temperature must be > 0, got ${t}`, { fix: 'pass temperature: 4 (the reference recipe) or 1' });
  if (student.rank !== 4 || teacher.rank !== 4) {
    throw new KdError('KD_SHAPE_MISMATCH', `seg-cwd: expected maps [N, H, W, C], got student [${student.shape}] and teacher [${teacher.shape}]`, { fix: 'pass NHWC logit or feature maps' });
  }
  return tf.tidy(() => {
    const a = opts.adapter;
    let s = student;
    if (a) {
      s = tf.conv2d(s as tf.Tensor4D, a.kernel, 1, 'same');
      if (a.bias) s = tf.add(s, a.bias);
      if (a.relu) s = tf.relu(s);
    }
    if (s.shape.join() !== teacher.shape.join()) {
      throw new KdError('KD_SHAPE_MISMATCH', `seg-cwd: student ${a ? 'after the adapter ' : ''}[${s.shape}] vs teacher [${teacher.shape}]`, {
        fix: teacher.shape.slice(0, 3).join() === student.shape.slice(0, 3).join() ? `give an adapter from ${student.shape[3]} to ${teacher.shape[3]} channels (createImitationAdapter)` : 'pair maps of the same batch and spatial size',
      });
    }
    const kl = klRows(logSoftmaxT(channelRows(stopGradient(teacher)), t), logSoftmaxT(channelRows(s), t));
    return tf.mul(tf.mean(kl), t * t) as Scalar;
  });
}
