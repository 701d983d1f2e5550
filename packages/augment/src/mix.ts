import { type BatchWriter, definePlugin, KdError, type Plugin, type PluginDefinition, type Rng, type StepContext, ViewName } from '@tfkd/kd-core';
import { z } from 'zod';
import { at, readImages, readTargets, replaceImages, type Images } from './image';

/** Rows [n, K] mixed as the images: t̃_i = λ·t_i + (1 − λ)·t_perm(i). */
export function mixTargets(t: Float32Array, k: number, perm: Int32Array, lambda: number): Float32Array {
  const out = new Float32Array(t.length);
  for (let i = 0; i < perm.length; i++) {
    for (let j = 0; j < k; j++) out[i * k + j] = lambda * t[i * k + j] + (1 - lambda) * t[perm[i] * k + j];
  }
  return out;
}

/**
 * mixup (Zhang et al. 2018; facebookresearch/mixup-cifar10 `mixup_data`): x̃_i = λ·x_i + (1 − λ)·x_perm(i)
 * with one λ and one permutation per batch; the targets mix the same way, so CE against them equals
 * λ·CE(y_i) + (1 − λ)·CE(y_perm(i)), the reference's `mixup_criterion`.
 */
export function mixup(img: Images, targets: Float32Array, k: number, perm: Int32Array, lambda: number): { images: Images; targets: Float32Array } {
  const d = img.h * img.w * img.c;
  const out = new Float32Array(img.data.length);
  for (let i = 0; i < img.n; i++) {
    const a = i * d;
    const b = perm[i] * d;
    for (let j = 0; j < d; j++) out[a + j] = lambda * img.data[a + j] + (1 - lambda) * img.data[b + j];
  }
  return { images: { ...img, data: out }, targets: mixTargets(targets, k, perm, lambda) };
}

/** A CutMix box: rows top..top+height−1, columns left..left+width−1. */
export interface Box {
  top: number;
  left: number;
  height: number;
  width: number;
}

/**
 * CutMix's `rand_bbox` (clovaai/CutMix-PyTorch): cut ratio √(1 − λ), cut sides ⌊H·r⌋ × ⌊W·r⌋, centre
 * uniform over the pixels, box clipped at the border (so its area may be smaller than (1 − λ)·H·W).
 */
export function drawCutmixBox(rng: Rng, h: number, w: number, lambda: number): Box {
  const r = Math.sqrt(1 - lambda);
  const ch = Math.floor(h * r);
  const cw = Math.floor(w * r);
  const cy = rng.int(h);
  const cx = rng.int(w);
  const y1 = Math.min(h, Math.max(0, cy - Math.floor(ch / 2)));
  const y2 = Math.min(h, Math.max(0, cy + Math.floor(ch / 2)));
  const x1 = Math.min(w, Math.max(0, cx - Math.floor(cw / 2)));
  const x2 = Math.min(w, Math.max(0, cx + Math.floor(cw / 2)));
  return { top: y1, left: x1, height: y2 - y1, width: x2 - x1 };
}

/**
 * CutMix (Yun et al. 2019): image i takes the box from image perm(i); its target weight is the area
 * kept, λ = 1 − box area / (H·W) (the reference's "adjust lambda to exactly match pixel ratio").
 */
export function cutmix(img: Images, targets: Float32Array, k: number, perm: Int32Array, box: Box): { images: Images; targets: Float32Array; lambda: number } {
  const out = Float32Array.from(img.data);
  for (let i = 0; i < img.n; i++) {
    for (let r = box.top; r < box.top + box.height; r++) {
      const d = at(img, i, r, box.left);
      const s = at(img, perm[i], r, box.left);
      out.set(img.data.subarray(s, s + box.width * img.c), d);
    }
  }
  const lambda = 1 - (box.height * box.width) / (img.h * img.w);
  return { images: { ...img, data: out }, targets: mixTargets(targets, k, perm, lambda), lambda };
}

/** What a mixing plugin did on its last batch (numbers only), for diagnostics and tests. */
export interface MixRecord {
  applied: boolean;
  /** Target weight of each image's own label (CutMix: after the box is clipped). */
  lambda: number;
  perm: Int32Array;
  box: Box | null;
}

export interface MixPlugin extends Plugin {
  lastMix(): MixRecord | null;
}

/**
 * mixup and CutMix take no view: their soft targets are the batch's, shared by every image variant,
 * so mixing one view (its own λ and partners) would leave the targets wrong for the others. The key
 * exists so that `view:` gets this explanation (KD_PLUGIN_OPTIONS at planning), not "unknown key".
 */
const mixViewOption = ViewName.nullish()
  .refine((v) => v === null || v === undefined, {
    message: 'a mixing augmentation cannot mix one image view: its soft targets are the batch’s, shared by every view. Remove `view:`; it mixes the main images, and listed before the augmentations that write views, every view starts from the mixed images',
  })
  .describe('not supported (leave it out): the soft targets are shared by every view, so a mixing plugin mixes the main images; list it before the augmentations that write views and every view starts from the mixed images');

const alphaOption = (what: string) => z.number().min(0).default(1).describe(what);
const probOption = (d: number, what: string) => z.number().min(0).max(1).default(d).describe(what);

export const mixupSchema = z
  .object({
    alpha: alphaOption('λ ~ Beta(α, α), one λ per batch; α = 0 gives λ = 1 (no mixing). Default 1 (mixup-cifar10 --alpha 1)'),
    p: probOption(1, 'probability that a batch is mixed (the reference mixes every batch)'),
    view: mixViewOption,
  })
  .strict();
export type MixupOptions = z.output<typeof mixupSchema>;

export const cutmixSchema = z
  .object({
    alpha: alphaOption('λ ~ Beta(α, α) before the box is drawn; default 1 (CutMix-PyTorch --beta 1.0)'),
    p: probOption(0.5, 'probability that a batch is cut-mixed (CutMix-PyTorch --cutmix_prob 0.5 on CIFAR, 1.0 on ImageNet)'),
    view: mixViewOption,
  })
  .strict();
export type CutmixOptions = z.output<typeof cutmixSchema>;

/** One draw of λ from Beta(α, α); α = 0 → 1. */
function drawLambda(rng: Rng, alpha: number): number {
  return alpha > 0 ? rng.beta(alpha, alpha) : 1;
}

/** Mixing after a view was written would leave the view unmixed under mixed targets: refused. */
function refuseViews(ctx: StepContext, who: string): void {
  const views = Object.keys(ctx.batch.views ?? {});
  if (views.length === 0) return;
  throw new KdError('KD_PLUGIN_DEPENDENCY', `'${who}' mixes the batch after the image views ${views.map((v) => `'${v}'`).join(', ')} were written: its soft targets would not describe them`, {
    path: 'plugins',
    fix: `list '${who}' before the augmentations that write views (\`view:\`), so every view starts from the mixed images`,
  });
}

/** One mixup step on `ctx.batch` (draws: applied?, λ, permutation). */
export function mixupStep(ctx: StepContext, o: MixupOptions, who: string): MixRecord {
  refuseViews(ctx, who);
  const img = readImages(ctx, who);
  if (!(ctx.rng.next() < o.p)) return noMix(ctx, img);
  const lambda = drawLambda(ctx.rng, o.alpha);
  const perm = ctx.rng.permutation(img.n);
  const r = mixup(img, readTargets(ctx), ctx.numClasses, perm, lambda);
  replaceImages(ctx, r.images, r.targets);
  return { applied: true, lambda, perm, box: null };
}

/** One CutMix step on `ctx.batch` (draws: applied?, λ, permutation, box centre). */
export function cutmixStep(ctx: StepContext, o: CutmixOptions, who: string): MixRecord {
  refuseViews(ctx, who);
  const img = readImages(ctx, who);
  if (!(ctx.rng.next() < o.p)) return noMix(ctx, img);
  const perm = ctx.rng.permutation(img.n);
  const box = drawCutmixBox(ctx.rng, img.h, img.w, drawLambda(ctx.rng, o.alpha));
  const r = cutmix(img, readTargets(ctx), ctx.numClasses, perm, box);
  replaceImages(ctx, r.images, r.targets);
  return { applied: true, lambda: r.lambda, perm, box };
}

/** A batch left unmixed is still handed on as transformed (the run's teacher cache is off anyway). */
function noMix(ctx: StepContext, img: Images): MixRecord {
  replaceImages(ctx, { ...img, data: Float32Array.from(img.data) });
  return { applied: false, lambda: 1, perm: new Int32Array(0), box: null };
}

function mixPlugin<S extends z.ZodType>(
  def: { id: string; describe: string; options: S },
  step: (ctx: StepContext, o: z.output<S>, who: string) => MixRecord,
): PluginDefinition<S> & BatchWriter<z.output<S>> {
  const plugin: PluginDefinition<S> & BatchWriter<z.output<S>> = {
    ...def,
    kind: 'sampler',
    stage: 'sample',
    transformsBatch: true,
    writes: () => ({ targets: true }),
    create(o, deps): MixPlugin {
      let last: MixRecord | null = null;
      return {
        name: deps.name,
        register(bus) {
          bus.on('batchStart', (ctx) => void (last = step(ctx, o, deps.name)));
        },
        lastMix: () => last,
      };
    },
  };
  return definePlugin(plugin) as PluginDefinition<S> & BatchWriter<z.output<S>>;
}

/** `augment/mixup`: mixes images and soft targets. */
export const mixupAugment: PluginDefinition<typeof mixupSchema> = mixPlugin(
  {
    id: 'augment/mixup',
    describe: 'mixup (Zhang et al. 2018): x̃ = λ·x + (1 − λ)·x[perm], one λ ~ Beta(α, α) per batch; soft targets mixed alike, which CE and the label-reading losses train on',
    options: mixupSchema,
  },
  mixupStep,
);

/** `augment/cutmix`: pastes a box from a partner image and weights the targets by area. */
export const cutmixAugment: PluginDefinition<typeof cutmixSchema> = mixPlugin(
  {
    id: 'augment/cutmix',
    describe: 'CutMix (Yun et al. 2019): a box of area ≈ (1 − λ) from image perm(i), targets weighted by the exact area kept; λ ~ Beta(α, α), one box per batch, applied with probability p',
    options: cutmixSchema,
  },
  cutmixStep,
);
