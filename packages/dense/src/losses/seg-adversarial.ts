import { KdError, type Rng, stopGradient } from '@tfkd/kd-core';
import * as tf from '@tensorflow/tfjs-core';
import type { GradConfig, Scalar, Tensor } from '@tensorflow/tfjs-core';

/**
 * The critic D: a batch of maps [N, H, W, C] → one score per image (any shape with N first, e.g. the
 * discriminator's [N, 1, 1, 1]). For a tfjs-layers model: `(x) => model.apply(x, { training: true }) as Tensor`.
 * Images must not interact (no batch norm): the gradient penalty takes ∇ of Σ_n D(x̂_n) as the per-image gradients.
 */
export type Critic = (x: Tensor) => Tensor;

/**
 * What the critic scores: the segmentation map as the reference feeds it (the raw logits,
 * `preds[0]`), or its softmax (`softmax: true`); with `image` [N, H, W, C_img] of the same spatial
 * size concatenated along the channels (the paper's conditional form, which the reference code does
 * not use). The image carries no gradient.
 */
export function criticInput(map: Tensor, opts: { image?: Tensor; softmax?: boolean } = {}): Tensor {
  const img = opts.image;
  if (img && (img.rank !== 4 || map.rank !== 4 || img.shape[0] !== map.shape[0] || img.shape[1] !== map.shape[1] || img.shape[2] !== map.shape[2])) {
    throw new KdError('KD_SHAPE_MISMATCH', `seg-adversarial: image [${img.shape}] and map [${map.shape}] differ in batch or spatial size`, {
      fix: 'condition on the images the map was computed from, at the map\'s resolution',
    });
  }
  return tf.tidy(() => {
    const m = opts.softmax ? tf.softmax(map) : map;
    return img ? tf.concat([m, stopGradient(img)], 3) : tf.clone(m);
  });
}

/**
 * Holistic distillation, the student's side (Liu et al., CVPR 2019, "Structured Knowledge
 * Distillation for Semantic Segmentation", eq. 4): `L_G = −mean_n D(Q^s_n)` — the Wasserstein
 * critic's score of the student's map, to be raised. irfanICMLL/structure_knowledge_distillation
 * `utils/criterion.py` `CriterionAdvForG` ('wgan-gp': `−d_out_S[0].mean()`), weighted λ_d = 0.1 in
 * `networks/kd_model.py` (`--lambda-d`, `utils/train_options.py`): give this term spec weight 0.1.
 * Gradients reach the student map through D; D's own weights must not be updated from this loss
 * (only the student's variables are differentiated).
 */
export function segAdversarialStudent(critic: Critic, student: Tensor): Scalar {
  return tf.tidy(() => tf.neg(tf.mean(critic(student))) as Scalar);
}

export interface CriticLossOptions {
  /** λ_gp, the gradient-penalty weight. Default 10 (`--lambda-gp`). */
  gpWeight: number;
  /** λ_d multiplying the whole critic loss, as the reference does. Default 0.1 (`--lambda-d`). */
  weight: number;
  /**
   * Interpolation weights α_n ∈ [0, 1], one per image (x̂ = α·teacher + (1 − α)·student); the
   * reference draws `torch.rand(N)` every step. Give these or `rng`.
   */
  alpha?: ArrayLike<number> | Tensor;
  /** Draws α_n uniform in [0, 1) when `alpha` is not given. */
  rng?: Rng;
}

export const CRITIC_LOSS_DEFAULTS: Readonly<Pick<CriticLossOptions, 'gpWeight' | 'weight'>> = Object.freeze({ gpWeight: 10, weight: 0.1 });

/**
 * `Greater` has no gradient in tfjs-core 4.22 (`GreaterEqual` has a zero one). The gradient of
 * LeakyReLU is `where(x > 0, dy, α·dy)`: differentiating it again (the gradient penalty in D's
 * weights) walks back through that comparison and fails ("gradient function not found for
 * Greater"). A comparison is piecewise constant: its derivative is 0 (almost everywhere).
 */
const greaterGrad: GradConfig = {
  kernelName: 'Greater',
  inputsToSave: ['a', 'b'],
  gradFunc: (_dy: Tensor | Tensor[], saved: Tensor[]) => {
    const [a, b] = saved;
    return { a: () => tf.zerosLike(a), b: () => tf.zerosLike(b) };
  },
};

/** Kernels the gradient penalty needs a gradient for that tfjs-core 4.22 lacks (registered by `registerCriticGradients`). */
export const CRITIC_SECOND_ORDER_KERNELS = ['Greater'] as const;

/**
 * Registers the gradients of `CRITIC_SECOND_ORDER_KERNELS` with tfjs-core, once; a gradient someone
 * else registered is left in place. `gradientPenalty` calls it. Returns the kernel names that now have one.
 */
export function registerCriticGradients(): string[] {
  if (tf.getGradient(greaterGrad.kernelName) == null) tf.registerGradient(greaterGrad);
  return CRITIC_SECOND_ORDER_KERNELS.filter((k) => tf.getGradient(k) != null);
}

/** Added under the square root of ‖∇D‖²: the norm's gradient at ∇D = 0 would be 0/0. */
const NORM_EPS = 1e-12;

/**
 * The WGAN-GP gradient penalty (Gulrajani et al. 2017): x̂_n = α_n·real_n + (1 − α_n)·fake_n, and
 * `GP = mean_n (‖∇_x D(x̂_n)‖₂ − 1)²`, the norm over all of an image's H·W·C entries — as
 * `CriterionAdditionalGP` (`torch.autograd.grad(…, create_graph=True)`, `grad.view(N, −1)`,
 * `mean((norm − 1)²)`). `real`/`fake` carry no gradient. ∇D is taken with `tf.grad` inside: on a
 * gradient tape (tf.variableGrads over D's weights) tfjs records that backward pass too, so the
 * penalty is differentiable in D's weights (a double backward). D's kernels need gradients of their
 * gradients: conv, dense, ReLU, add, mul have them in tfjs-core 4.22, LeakyReLU once
 * `registerCriticGradients` (called here) has given `Greater` one; softmax, sigmoid, tanh, elu lose
 * a term (see `@tfkd/losses-feature`'s second-order notes) — `buildSegDiscriminator` uses none of them.
 */
export function gradientPenalty(critic: Critic, real: Tensor, fake: Tensor, alpha: ArrayLike<number> | Tensor): Scalar {
  const n = real.shape[0] as number;
  if (real.shape.join() !== fake.shape.join()) {
    throw new KdError('KD_SHAPE_MISMATCH', `seg-adversarial: teacher map [${real.shape}] and student map [${fake.shape}] differ`, { fix: 'score maps of the same batch, size and channels' });
  }
  registerCriticGradients();
  const size = alpha instanceof tf.Tensor ? alpha.size : alpha.length;
  if (size !== n) throw new KdError('KD_SHAPE_MISMATCH', `seg-adversarial: ${size} interpolation weights for ${n} images`, { fix: 'give one α per image' });
  return tf.tidy(() => {
    const a = alpha instanceof tf.Tensor ? stopGradient(alpha) : tf.tensor1d(Array.from(alpha), 'float32');
    const w = tf.reshape(a, [n, ...real.shape.slice(1).map(() => 1)]);
    const xhat = tf.add(tf.mul(w, stopGradient(real)), tf.mul(tf.sub(1, w), stopGradient(fake)));
    const g = tf.grad((x: Tensor) => tf.sum(critic(x)))(xhat);
    const norm = tf.sqrt(tf.add(tf.sum(tf.square(tf.reshape(g, [n, -1])), 1), NORM_EPS));
    return tf.mean(tf.square(tf.sub(norm, 1))) as Scalar;
  });
}

/**
 * Holistic distillation, the critic's side (Liu et al. 2019): the teacher's map is "real", the
 * student's "fake", and D minimises
 *
 *   `L_D = λ_d · (mean_n D(Q^s_n) − mean_n D(Q^t_n) + λ_gp · GP)`
 *
 * (`CriterionAdv` 'wgan-gp' + `CriterionAdditionalGP`, both × λ_d in `kd_model.py`
 * `discriminator_backward`). Both maps are held constant (detached): differentiate this in D's
 * weights only.
 */
export function segAdversarialCritic(critic: Critic, student: Tensor, teacher: Tensor, opts: Partial<CriticLossOptions> = {}): Scalar {
  const o = { ...CRITIC_LOSS_DEFAULTS, ...opts };
  const n = student.shape[0] as number;
  let alpha: ArrayLike<number> | Tensor;
  if (o.alpha !== undefined) alpha = o.alpha;
  else if (o.rng) alpha = Float32Array.from({ length: n }, () => (o.rng as Rng).next());
  else {
    throw new KdError('KD_PLUGIN_OPTIONS', 'seg-adversarial critic loss: neither `alpha` nor `rng` given for the gradient-penalty interpolation', {
      fix: 'pass rng (a seeded Rng: the draws are reproducible and checkpointed) or alpha (one weight per image)',
    });
  }
  return tf.tidy(() => {
    const s = stopGradient(student);
    const t = stopGradient(teacher);
    const wasserstein = tf.sub(tf.mean(critic(s)), tf.mean(critic(t)));
    const gp = o.gpWeight === 0 ? tf.scalar(0) : tf.mul(gradientPenalty(critic, t, s, alpha), o.gpWeight);
    return tf.mul(tf.add(wasserstein, gp), o.weight) as Scalar;
  });
}
