import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { KdError, defineLoss, parseTap, type PluginDeps, type TrainingAccess } from '@tfkd/kd-core';
import { z } from 'zod';
import { pairMismatch, pairTaps, pairsOption, readTap, requireRank, type TapPair } from './common';
import { flatten2d, l2Normalize, poolToSmaller, spatiallyOrdered, sumScalars } from './ops';
import { ConvStack, Paraphraser, asMap, factorChannels, pretrainParaphraser, translator } from './paraphraser';

export type FactorMode = 'attention' | 'flat';

/**
 * The normalised factor of a map F [B, H, W, m]:
 * - `attention` (RepDistiller `FactorTransfer.factor`, p1 = 2): l2normalize(flatten(mean_c F²));
 * - `flat` (the paper's F/‖F‖₂): l2normalize(flatten(F)).
 */
export function ftFactor(f: Tensor, mode: FactorMode = 'attention'): tf.Tensor2D {
  return tf.tidy(() => {
    const m = asMap(f);
    return l2Normalize(flatten2d(mode === 'attention' ? tf.mean(tf.square(m), 3) : m), 1) as tf.Tensor2D;
  });
}

/**
 * Factor-transfer loss between the translator's output F_s and the paraphraser's factor F_t: the
 * larger map is adaptive-average-pooled to the smaller (as AT), then mean |φ(F_s) − φ(F_t)|^p over
 * batch and positions (RepDistiller `(factor(f_s) − factor(f_t)).abs().mean()` for p = 1,
 * `.pow(2).mean()` for p = 2), φ = `ftFactor`.
 */
export function factorTransferLoss(fs: Tensor, ft: Tensor, opts: { p?: 1 | 2; factor?: FactorMode } = {}): Scalar {
  return tf.tidy(() => {
    const [a, b] = poolToSmaller(asMap(fs), asMap(ft));
    const d = tf.sub(ftFactor(a, opts.factor), ftFactor(b, opts.factor));
    return tf.mean((opts.p ?? 1) === 1 ? tf.abs(d) : tf.square(d)) as Scalar;
  });
}

export const factorTransferSchema = z
  .object({
    pairs: pairsOption('[[student.block2, teacher.block2]]'),
    rate: z
      .number()
      .positive()
      .max(4)
      .default(0.5)
      .describe('paraphrase rate k: the factor has int(C_t·k) channels; default 0.5 (RepDistiller Paraphraser/Translator k)'),
    p: z
      .union([z.literal(1), z.literal(2)])
      .default(1)
      .describe('norm of the factor difference: 1 = mean |d| (default, RepDistiller FactorTransfer p2 = 1 and the paper), 2 = mean d²'),
    factor: z
      .enum(['attention', 'flat'])
      .default('attention')
      .describe(
        'attention (default, RepDistiller FT.py): l2normalize(mean over channels of F²); flat (the paper): l2normalize of the whole factor',
      ),
    paraphraserEpochs: z
      .number()
      .int()
      .nonnegative()
      .default(30)
      .describe(
        'epochs of paraphraser pre-training on the teacher tap (reconstruction MSE), run on runStart before distillation; default 30 (RepDistiller --init_epochs); each epoch uses the run batch size and train.maxBatches; 0 keeps the paraphraser at its initialisation',
      ),
    paraphraserLr: z
      .number()
      .positive()
      .default(0.01)
      .describe('SGD learning rate of the pre-training; default 0.01 (RepDistiller helper/pretrain.py for factor with ResNet/WRN students; 0.05 otherwise)'),
    paraphraserMomentum: z.number().min(0).max(1).default(0.9).describe('SGD momentum of the pre-training; default 0.9 (RepDistiller --momentum)'),
    paraphraserWeightDecay: z.number().min(0).default(5e-4).describe('weight decay of the pre-training; default 5e-4 (RepDistiller --weight_decay)'),
  })
  .strict();

/** Bytes of teacher features the pre-training keeps between its epochs (beyond: forwarded every epoch). */
export const FT_FEATURE_CACHE_BYTES = 256 * 2 ** 20;

/**
 * The teacher's tap on training samples for the pre-training epochs: forwarded once per sample and
 * kept (the data is not augmented, so every epoch sees the same features) when all of it fits in
 * FT_FEATURE_CACHE_BYTES; forwarded on every call otherwise.
 */
function teacherFeatures(training: TrainingAccess, role: string, layer: string, shape: number[]): (indices: Int32Array) => Tensor {
  const per = shape.reduce((a, b) => a * b, 1);
  const cache = training.size * per * 4 <= FT_FEATURE_CACHE_BYTES ? new Float32Array(training.size * per) : null;
  const filled = new Uint8Array(training.size);
  return (indices) => {
    if (cache && indices.every((k) => filled[k] === 1)) {
      const out = new Float32Array(indices.length * per);
      indices.forEach((k, i) => out.set(cache.subarray(k * per, (k + 1) * per), i * per));
      return tf.tensor(out, [indices.length, ...shape]);
    }
    const t = training.forward(role, indices).taps[layer];
    if (cache) {
      const v = t.dataSync();
      indices.forEach((k, i) => {
        cache.set(v.subarray(i * per, (i + 1) * per), k * per);
        filled[k] = 1;
      });
    }
    return t;
  };
}

interface FtState {
  pretrained: boolean;
  /** Mean reconstruction loss of every pre-training epoch, per pair. */
  reconstruction: number[][];
}

/** Tap shape as a map [H, W, C] (a vector tap [C] is a 1×1 map). */
const mapShape = (s: number[]): number[] => (s.length === 1 ? [1, 1, s[0]] : s);

function checkPair(o: z.output<typeof factorTransferSchema>, deps: PluginDeps, pair: TapPair, i: number): void {
  const [s, t] = pair;
  const role = parseTap(t, deps.roles.map((r) => r.name), `${deps.specPath}.with.pairs[${i}][1]`).role;
  if (deps.roles.find((r) => r.name === role)?.kind !== 'teacher') {
    throw new KdError('KD_SPEC_INVALID', `'${deps.name}': the target tap ${t} is not a teacher's: FT pre-trains its paraphraser on a frozen teacher`, {
      path: `${deps.specPath}.with.pairs[${i}][1]`,
      fix: 'pair the student tap with a teacher tap, e.g. [student.block2, teacher.block2]',
    });
  }
  requireRank(deps, `pairs[${i}][0]`, s, [2, 4], 'an NHWC map [H, W, C] or a vector [C]');
  requireRank(deps, `pairs[${i}][1]`, t, [2, 4], 'an NHWC map [H, W, C] or a vector [C]');
  const fits = (a: number[], b: number[]) => spatiallyOrdered(mapShape(a), mapShape(b));
  if (!fits(deps.tapShape(s), deps.tapShape(t))) {
    throw pairMismatch(deps, `pairs[${i}]`, pair, 'cannot be pooled to one size (one map is taller, the other wider)', fits, o.pairs.flat());
  }
  const ct = mapShape(deps.tapShape(t))[2];
  if (factorChannels(ct, o.rate) < 1) {
    throw new KdError('KD_PLUGIN_OPTIONS', `'${deps.name}': rate ${o.rate} gives int(${ct}·${o.rate}) = 0 factor channels for ${t}`, {
      path: `${deps.specPath}.with.rate`,
      fix: `use rate ≥ ${1 / ct}`,
    });
  }
}

/**
 * `loss/factor-transfer`: per pair a paraphraser (frozen during distillation, pre-trained on
 * `runStart`; a buffer) on the teacher tap and a translator (trained with the student; a variable)
 * on the student tap.
 */
export const factorTransferLossDef = defineLoss({
  id: 'loss/factor-transfer',
  describe:
    'Factor transfer (Kim et al. 2018): a paraphraser (conv autoencoder, rate k = 0.5) is pre-trained on the teacher tap by reconstruction (30 epochs, on runStart), then frozen; a translator on the student tap is trained with the student on mean |φ(F_s) − φ(F_t)|, φ = l2normalize(mean_c F²) as RepDistiller FT.py (factor: flat for the paper\'s F/‖F‖₂); recommended weight 200 (RepDistiller -b 200)',
  options: factorTransferSchema,
  requires: (o) => ({ taps: pairTaps(o.pairs) }),
  setup(o, deps) {
    o.pairs.forEach((pair, i) => checkPair(o, deps, pair as TapPair, i));
    const training = deps.training;
    if (o.paraphraserEpochs > 0 && !training) {
      throw new KdError('KD_PLUGIN_DEPENDENCY', `'${deps.name}' pre-trains its paraphraser, and this engine gives plugins no training-data access (PluginDeps.training)`, {
        path: `${deps.specPath}.with.paraphraserEpochs`,
        fix: 'run it with a kd-core that provides PluginDeps.training, or set paraphraserEpochs: 0',
      });
    }
    const paras = o.pairs.map(([, t], i) => new Paraphraser(mapShape(deps.tapShape(t))[2], o.rate, deps.rng.fork(2 * i), `${deps.name}_para${i}`));
    const trans: ConvStack[] = o.pairs.map(([s, t], i) =>
      translator(mapShape(deps.tapShape(s))[2], mapShape(deps.tapShape(t))[2], o.rate, deps.rng.fork(2 * i + 1), `${deps.name}_trans${i}`),
    );
    const state: FtState = { pretrained: false, reconstruction: o.pairs.map(() => []) };
    return {
      paras,
      trans,
      variables: trans.flatMap((t) => t.variables),
      buffers: paras.flatMap((p) => p.variables),
      hooks: {
        async runStart(info) {
          // A resumed run gets the paraphraser (a buffer) and this state back from its checkpoint right after runStart.
          if (info.resumed || state.pretrained || o.paraphraserEpochs === 0 || !training) return;
          const names = deps.roles.map((r) => r.name);
          for (const [i, [, t]] of o.pairs.entries()) {
            const { role, layer } = parseTap(t, names, `${deps.specPath}.with.pairs[${i}][1]`);
            const features = teacherFeatures(training, role, layer, deps.tapShape(t));
            state.reconstruction[i] = await pretrainParaphraser(paras[i], {
              epochs: o.paraphraserEpochs,
              lr: o.paraphraserLr,
              momentum: o.paraphraserMomentum,
              weightDecay: o.paraphraserWeightDecay,
              batches: (e) => training.batches(e),
              features,
              onEpoch: (e, loss) => training.log(`${deps.name}: paraphraser on ${t}, pre-training epoch ${e}/${o.paraphraserEpochs}, reconstruction MSE ${loss.toPrecision(4)}`),
            });
          }
          state.pretrained = true;
        },
      },
      getState: () => ({ pretrained: state.pretrained, reconstruction: state.reconstruction.map((r) => [...r]) }),
      setState(s) {
        const v = s as Partial<FtState>;
        state.pretrained = Boolean(v.pretrained);
        if (Array.isArray(v.reconstruction)) state.reconstruction = v.reconstruction.map((r) => [...r]);
      },
    };
  },
  compute: (ctx, o, _deps, { paras, trans }) =>
    sumScalars(
      o.pairs.map(([s, t], i) =>
        factorTransferLoss(trans[i].apply(readTap(ctx, s, false)), paras[i].factor(readTap(ctx, t, true)), { p: o.p, factor: o.factor }),
      ),
    ),
});
