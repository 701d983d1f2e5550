import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor } from '@tensorflow/tfjs-core';
import { KdError, defineLoss, type LossState, type PluginDeps, type StepContext, type TrainingAccess } from '@tfkd/kd-core';
import { z } from 'zod';
import { Adapter } from './adapters';
import { pairTaps, pairsOption, readTap } from './common';
import { contrastIndices, crdMemoryLoss, estimateZ, initialMemory, maxNegatives, memoryScores, memoryUpdate, negativePools } from './crd-memory';
import { flatten2d, l2Normalize, sumScalars } from './ops';

/** Mean over rows of −log softmax(logits)_ii (the positive is on the diagonal). */
function diagonalCe(logits: tf.Tensor2D): Scalar {
  const b = logits.shape[0];
  return tf.neg(tf.mean(tf.sum(tf.mul(tf.logSoftmax(logits), tf.eye(b)), 1))) as Scalar;
}

/**
 * CRD with in-batch negatives, for one pair of l2-normalised embeddings z_s, z_t [B, d]:
 * L = CE(z_s z_tᵀ/τ, diag) + CE(z_t z_sᵀ/τ, diag) — the two symmetric parts of CRD (teacher
 * anchor / student anchor), each an InfoNCE over the B − 1 other samples of the batch instead of
 * RepDistiller's NCE over 16384 memory-bank negatives.
 */
export function crdInBatch(zs: Tensor, zt: Tensor, temperature = 0.07): Scalar {
  return tf.tidy(() => {
    const logits = tf.div(tf.matMul(zs as tf.Tensor2D, zt as tf.Tensor2D, false, true), temperature) as tf.Tensor2D;
    return tf.add(diagonalCe(logits), diagonalCe(tf.transpose(logits) as tf.Tensor2D)) as Scalar;
  });
}

export const crdSchema = z
  .object({
    pairs: pairsOption('[[student.embedding, teacher.embedding]]'),
    dim: z.number().int().positive().default(128).describe('embedding size of both linear heads; default 128 (RepDistiller --feat_dim)'),
    temperature: z.number().positive().default(0.07).describe('τ; default 0.07 (RepDistiller --nce_t)'),
    mode: z
      .enum(['memory', 'in-batch'])
      .default('memory')
      .describe(
        'memory (default, RepDistiller): NCE against momentum memory banks of both embeddings, one row per training sample; in-batch: InfoNCE over the other samples of the batch, no bank',
      ),
    negatives: z
      .number()
      .int()
      .positive()
      .default(16384)
      .describe(
        'memory mode: K negatives per sample, drawn without replacement from the other classes (RepDistiller mode exact); default 16384 (--nce_k); clamped, with a log line, to the smallest other-class pool of the training set',
      ),
    momentum: z.number().min(0).max(1).default(0.5).describe('memory mode: momentum of the memory update; default 0.5 (RepDistiller --nce_m)'),
  })
  .strict();

/** Unique tfjs variable names across plugin instances. */
let banksMade = 0;

type CrdOptions = z.output<typeof crdSchema>;

interface Bank {
  v1: tf.Variable;
  v2: tf.Variable;
  /** Normalisation constants Z_v1, Z_v2, set on the first batch (null before). */
  z: [number, number] | null;
}

/** Memory mode: the banks of every pair, and what their NCE draws from (the training set's labels). */
interface Memory {
  banks: Bank[];
  training: TrainingAccess;
  n: number;
  labels: Int32Array;
  pools: Map<number, Int32Array>;
  /** Negatives per sample (the option, clamped to the smallest other-class pool). */
  k: number;
}

interface CrdState extends LossState {
  /** Per pair: the student-side and the teacher-side linear head. */
  heads: Adapter[][];
  memory: Memory | null;
}

/** z = l2normalize(head(flatten(f))). */
const embed = (head: Adapter, f: Tensor) => l2Normalize(head.apply(flatten2d(f)), 1);

/** Memory mode's start-up: check the training set, clamp K, build the banks (one per pair). */
function memoryBanks(o: CrdOptions, deps: PluginDeps): Memory {
  const training = deps.training;
  if (!training) {
    throw new KdError('KD_PLUGIN_DEPENDENCY', `'${deps.name}' (mode: memory) sizes its memory banks by the training set, and this engine gives plugins no training-data access (PluginDeps.training)`, {
      path: `${deps.specPath}.with.mode`,
      fix: 'run it with a kd-core that provides PluginDeps.training, or use mode: in-batch',
    });
  }
  const n = training.size;
  const labels = training.labels;
  const pools = negativePools(labels);
  const available = maxNegatives(pools);
  if (available < 1) {
    throw new KdError('KD_SPEC_INVALID', `'${deps.name}' (mode: memory) draws its negatives from the other classes, and the training set has a single class`, {
      path: `${deps.specPath}.with.mode`,
      fix: 'use mode: in-batch, or a dataset with several classes',
    });
  }
  const k = Math.min(o.negatives, available);
  if (k < o.negatives) {
    training.log(
      `${deps.name}: negatives clamped from ${o.negatives} to ${k}, the smallest other-class pool of the ${n} training samples (RepDistiller draws with replacement past it)`,
    );
  }
  const label = deps.name.replace(/[^A-Za-z0-9_]/g, '_');
  const banks: Bank[] = o.pairs.map((_, i) => {
    const rng = deps.rng.fork(1000 + i);
    return {
      v1: tf.tidy(() => tf.variable(tf.tensor2d(initialMemory(n, o.dim, rng), [n, o.dim]), false, `${label}_memory${i}_${banksMade}/v1`)),
      v2: tf.tidy(() => tf.variable(tf.tensor2d(initialMemory(n, o.dim, rng), [n, o.dim]), false, `${label}_memory${i}_${banksMade++}/v2`)),
      z: null,
    };
  });
  return { banks, training, n, labels, pools, k };
}

/** Memory mode's step: per pair the NCE against the banks as they were before this batch, then the momentum update. */
function memoryNce(ctx: StepContext, o: CrdOptions, deps: PluginDeps, heads: Adapter[][], m: Memory): Scalar {
  const indices = ctx.batch.indices;
  if (!indices) {
    throw new KdError('KD_PLUGIN_DEPENDENCY', `'${deps.name}' (mode: memory) needs the training-sample indices of the batch, and a sampler transformed this batch`, {
      path: `${deps.specPath}.with.mode`,
      fix: 'use mode: in-batch with samplers that mix images (sampler/unix), or drop the sampler',
    });
  }
  return sumScalars(
    o.pairs.map(([s, t], i) => {
      const bank = m.banks[i];
      const v1 = embed(heads[i][0], readTap(ctx, s, false));
      const v2 = embed(heads[i][1], readTap(ctx, t, true));
      const idx = contrastIndices(indices, m.labels, m.pools, m.k, ctx.rng);
      // The memories before this batch's update (clones keep those values for the backward pass).
      const m1 = tf.clone(bank.v1);
      const m2 = tf.clone(bank.v2);
      if (!bank.z) {
        bank.z = [estimateZ(memoryScores(v1, m2, idx, o.temperature), m.n), estimateZ(memoryScores(v2, m1, idx, o.temperature), m.n)];
        m.training.log(`${deps.name}: normalisation constants Z_v1 = ${bank.z[0].toFixed(1)}, Z_v2 = ${bank.z[1].toFixed(1)} (first batch)`);
      }
      const loss = crdMemoryLoss(v1, v2, m1, m2, idx, { temperature: o.temperature, zV1: bank.z[0], zV2: bank.z[1], nData: m.n });
      bank.v1.assign(memoryUpdate(m1, indices, v1, o.momentum));
      bank.v2.assign(memoryUpdate(m2, indices, v2, o.momentum));
      return loss;
    }),
  );
}

/**
 * `loss/crd`: trainable linear heads (student and teacher side), l2-normalised; `mode: memory` adds
 * the two memory banks (buffers, [N, dim] each, per pair) and the NCE loss, `mode: in-batch` the
 * symmetric in-batch InfoNCE.
 */
export const crdLoss = defineLoss({
  id: 'loss/crd',
  describe:
    'Contrastive representation distillation (Tian et al. 2020): z = l2normalize(linear head(flatten(f))) to 128-d; mode memory (default): NCE with 16384 other-class negatives from momentum (0.5) memory banks, τ = 0.07, Z fixed on the first batch (RepDistiller crd/); mode in-batch: CE(z_s z_tᵀ/τ, diag) + CE(z_t z_sᵀ/τ, diag); suggested weight 0.8 (RepDistiller -b 0.8)',
  options: crdSchema,
  requires: (o) => ({ taps: pairTaps(o.pairs) }),
  setup(o, deps): CrdState {
    const size = (tap: string) => deps.tapShape(tap).reduce((a, b) => a * b, 1);
    const heads = o.pairs.map(([s, t], i) => [
      new Adapter({ kind: 'dense', inUnits: size(s), outUnits: o.dim }, deps.rng.fork(2 * i), false, `${deps.name}_s${i}`),
      new Adapter({ kind: 'dense', inUnits: size(t), outUnits: o.dim }, deps.rng.fork(2 * i + 1), false, `${deps.name}_t${i}`),
    ]);
    const variables = heads.flat().flatMap((h) => h.variables);
    if (o.mode === 'in-batch') return { heads, memory: null, variables };
    const memory = memoryBanks(o, deps);
    return {
      heads,
      memory,
      variables,
      buffers: memory.banks.flatMap((b) => [b.v1, b.v2]),
      getState: () => ({ negatives: memory.k, z: memory.banks.map((b) => b.z) }),
      setState(state) {
        const zs = (state as { z?: ([number, number] | null)[] }).z ?? [];
        memory.banks.forEach((b, i) => (b.z = zs[i] ?? null));
      },
    };
  },
  compute: (ctx, o, deps, { heads, memory }) =>
    memory
      ? memoryNce(ctx, o, deps, heads, memory)
      : sumScalars(o.pairs.map(([s, t], i) => crdInBatch(embed(heads[i][0], readTap(ctx, s, false)), embed(heads[i][1], readTap(ctx, t, true)), o.temperature))),
});
