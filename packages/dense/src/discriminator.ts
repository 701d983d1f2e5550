/**
 * The critic of holistic (adversarial) segmentation distillation, sized for 64×64 scenes.
 *
 * Reference: irfanICMLL/structure_knowledge_distillation `networks/sagan_models.py` `Discriminator`
 * (built in `networks/kd_model.py` with `--imsize-for-adv 65`, `--adv-conv-dim 64`,
 * `--preprocess-GAN-mode 1`): input BatchNorm2d → four spectral-normalised convs 4×4 stride 2
 * padding 1 (64, 128, 256, 512 channels), LeakyReLU(0.1) after each, self-attention after the third
 * and the fourth, and a last 4×4 conv to one score ([N, 1, 1, 1] on its 65×65 maps).
 *
 * Here, on purpose:
 * - the same four 4×4 stride-2 convs with LeakyReLU(0.1) and the last conv over what is left
 *   (4×4 on 64×64 maps) to one score [N, 1, 1, 1]; width w = 16 by default (w, 2w, 4w, 8w channels;
 *   the reference's 64 is a 4× wider critic for 8× larger maps);
 * - no self-attention: its softmax loses a term of its second-order gradient in tfjs 4.22 (the
 *   saved-output gap, `@tfkd/losses-feature` second-order notes), which would make the gradient
 *   penalty's gradient silently wrong;
 * - no input batch norm: it couples the images of a batch (the per-image gradient penalty is then
 *   not per image) and keeps running statistics; WGAN-GP advises against batch norm in the critic;
 * - no spectral normalisation (no tfjs-layers equivalent; its power-iteration vector is extra state):
 *   the gradient penalty is what keeps the critic near 1-Lipschitz;
 * - Glorot-uniform kernels seeded per layer (`layerSeed`), zero biases (torch: Kaiming-uniform a=√5).
 */
import { KdError } from '@tfkd/kd-core';
import type { Tensor } from '@tensorflow/tfjs-core';
import { initializers, input, layers, model, type LayersModel, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import { conv, layerSeed } from './common';
import type { Critic } from './losses/seg-adversarial';

export interface SegDiscriminatorOptions {
  /** [H, W, C] of what the critic scores: K logit channels (+ image channels when conditioned); H and W divisible by 16. */
  inputShape: [number, number, number] | number[];
  /** Base width w: channels w, 2w, 4w, 8w. Default 16. */
  width?: number;
  /** LeakyReLU slope. Default 0.1 (reference). */
  slope?: number;
  seed?: number;
  name?: string;
}

/** Layer names: four stride-2 stages `d1`…`d4` (each a conv and `d<i>_act`), then `score`. */
export const DISCRIMINATOR_STAGES = ['d1', 'd2', 'd3', 'd4'] as const;

export function buildSegDiscriminator(opts: SegDiscriminatorOptions): LayersModel {
  const s = opts.inputShape;
  const posInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;
  if (!Array.isArray(s) || s.length !== 3 || !s.every(posInt) || s[0] % 16 !== 0 || s[1] % 16 !== 0) {
    throw new KdError('KD_SPEC_INVALID', `seg discriminator: inputShape must be [H, W, C] with H and W divisible by 16, got ${JSON.stringify(s)}`, {
      path: 'options.inputShape',
      fix: 'pass the shape of the scored map, e.g. [64, 64, 11] (segmenter logits on fashion-scenes)',
    });
  }
  const width = opts.width ?? 16;
  if (!posInt(width)) throw new KdError('KD_SPEC_INVALID', `seg discriminator: width must be a positive integer, got ${JSON.stringify(opts.width)}`, { path: 'options.width', fix: 'pass e.g. width: 16' });
  const seed = opts.seed ?? 1;
  const slope = opts.slope ?? 0.1;
  const name = opts.name ?? 'seg_discriminator';
  const x0 = input({ shape: [s[0], s[1], s[2]], name: 'input' });
  let x: SymbolicTensor = x0;
  DISCRIMINATOR_STAGES.forEach((stage, i) => {
    x = conv(seed, stage, x, { filters: width * 2 ** i, kernel: 4, strides: 2 });
    x = layers.leakyReLU({ alpha: slope, name: `${stage}_act` }).apply(x) as SymbolicTensor;
  });
  const score = layers
    .conv2d({
      name: 'score',
      filters: 1,
      kernelSize: [s[0] / 16, s[1] / 16],
      padding: 'valid',
      kernelInitializer: initializers.glorotUniform({ seed: layerSeed(seed, 'score') }),
    })
    .apply(x) as SymbolicTensor;
  return model({ inputs: x0, outputs: score, name });
}

/** The critic function of a discriminator model, for `segAdversarialStudent` / `segAdversarialCritic`. */
export function criticOf(m: LayersModel): Critic {
  return (x: Tensor) => m.apply(x, { training: true }) as Tensor;
}
