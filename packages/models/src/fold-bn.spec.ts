import * as tf from '@tensorflow/tfjs-core';
import { layers, model as functionalModel, sequential, type LayersModel, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import { useCpu } from './__fixtures__/cpu';
import { foldBatchNorm, foldedLayerName } from './fold-bn';
import { getModelDefinition } from './zoo';

beforeAll(useCpu);

const MNIST = { inputShape: [28, 28, 1], numClasses: 10, seed: 3 };

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0) / 4294967296);
}

/** Batch-norm statistics as a trained model has them (the initial ones, γ 1 β 0 μ 0 σ² 1, would make folding trivial). */
function randomiseBatchNorms(m: LayersModel, seed: number): void {
  const r = rng(seed);
  for (const l of m.layers.filter((x) => x.getClassName() === 'BatchNormalization')) {
    const ws = l.getWeights();
    const c = ws[0].shape[0] as number;
    const v = (f: () => number) => tf.tensor1d(Array.from({ length: c }, f));
    const next = [v(() => 0.5 + r()), v(() => r() - 0.5), v(() => 0.4 * (r() - 0.5)), v(() => 0.2 + 1.5 * r())];
    l.setWeights(next);
    next.forEach((t) => t.dispose());
  }
}

function batch(n: number, shape: number[], seed: number): tf.Tensor {
  const r = rng(seed);
  const size = n * shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({ length: size }, () => r()), [n, ...shape]);
}

/** max |a − b| over max |a|, per output. */
function relDiffs(a: tf.Tensor[], b: tf.Tensor[]): number[] {
  return a.map((t, i) =>
    tf.tidy(() => {
      expect(b[i].shape).toEqual(t.shape);
      const diff = tf.max(tf.abs(tf.sub(t, b[i]))).dataSync()[0];
      return diff / Math.max(tf.max(tf.abs(t)).dataSync()[0], 1e-12);
    }),
  );
}

const apply = (m: LayersModel, x: tf.Tensor): tf.Tensor[] => {
  const out = m.apply(x, { training: false }) as tf.Tensor | tf.Tensor[];
  return Array.isArray(out) ? out : [out];
};

const kernelsOf = async (f: () => unknown): Promise<string[]> => (await tf.profile(() => void tf.tidy(() => void f()))).kernels.map((k) => k.name);

describe('foldBatchNorm', () => {
  it('resnet-teacher: every BN folded into its conv (and the ReLU after it fused); outputs equal in inference to 1e-5 relative', async () => {
    const m = getModelDefinition('resnet-teacher').build(MNIST);
    randomiseBatchNorms(m, 1);
    const before = tf.memory().numTensors;
    const folded = await foldBatchNorm(m);
    const bns = m.layers.filter((l) => l.getClassName() === 'BatchNormalization').map((l) => l.name);
    expect(folded.folds.map((f) => f.batchNorm).sort()).toEqual([...bns].sort());
    expect(folded.model.layers.some((l) => l.getClassName() === 'BatchNormalization')).toBe(false);
    // conv → BN → ReLU: one layer; the stem and every block's first conv
    expect(folded.folds.find((f) => f.into === 'stem_conv')).toEqual({ into: 'stem_conv', batchNorm: 'stem_bn', relu: 'stem' });
    expect(folded.folds.find((f) => f.into === 's1_b1_conv2')).toEqual({ into: 's1_b1_conv2', batchNorm: 's1_b1_bn2' });
    expect(folded.renamed).toMatchObject({ stem_bn: 'stem_conv', stem: 'stem_conv', s1_b1_bn2: 's1_b1_conv2' });
    expect(folded.model.inputs[0].shape).toEqual(m.inputs[0].shape);
    expect(folded.model.outputs.map((o) => o.shape)).toEqual(m.outputs.map((o) => o.shape));

    const x = batch(6, [28, 28, 1], 7);
    const [want] = apply(m, x);
    const [got] = apply(folded.model, x);
    const [rel] = relDiffs([want], [got]);
    expect(rel).toBeLessThanOrEqual(1e-5);
    // and it does compute something: the logits are not all equal
    expect(tf.tidy(() => tf.moments(want).variance.dataSync()[0])).toBeGreaterThan(1e-6);
    // fewer kernels: no FusedBatchNorm, and no separate Relu for the folded conv-BN-ReLU units
    const original = await kernelsOf(() => apply(m, x));
    const fast = await kernelsOf(() => apply(folded.model, x));
    expect(original.filter((k) => k === 'FusedBatchNorm').length).toBe(bns.length);
    expect(fast.filter((k) => k === 'FusedBatchNorm').length).toBe(0);
    expect(fast.length).toBeLessThan(original.length);

    tf.dispose([x, want, got]);
    folded.model.dispose();
    // the original is untouched and still works; the folded model's weights are freed with it
    expect(tf.memory().numTensors).toBe(before);
    tf.tidy(() => expect(apply(m, tf.zeros([1, 28, 28, 1]))[0].shape).toEqual([1, 10]));
    m.dispose();
  }, 60_000);

  it('a tapped model keeps its outputs in order; taps on a BN or ReLU output map to the folded conv, a tapped conv and a tapped BN stay meaningful', async () => {
    const m = getModelDefinition('resnet').build(MNIST);
    randomiseBatchNorms(m, 2);
    const taps = ['stem', 'block1', 's1_b1_bn2', 's2_b1_conv1', 's3_b1_bn1', 'embedding'];
    const tapped = functionalModel({ inputs: m.inputs, outputs: [m.outputs[0], ...taps.map((t) => m.getLayer(t).output as SymbolicTensor)] });
    const folded = await foldBatchNorm(tapped);
    // s2_b1_conv1 is an output itself: its BN is not folded (the tap is the pre-BN value)
    expect(folded.folds.some((f) => f.into === 's2_b1_conv1')).toBe(false);
    // s3_b1_bn1 is an output: folded, but its ReLU stays separate (the tap is the pre-ReLU value)
    expect(folded.folds.find((f) => f.batchNorm === 's3_b1_bn1')).toEqual({ into: 's3_b1_conv1', batchNorm: 's3_b1_bn1' });
    const x = batch(4, [28, 28, 1], 9);
    const want = apply(tapped, x);
    const got = apply(folded.model, x);
    expect(got.length).toBe(taps.length + 1);
    for (const rel of relDiffs(want, got)) expect(rel).toBeLessThanOrEqual(1e-5);
    // by name: every tap resolves on the folded model (a dropped layer through `renamed`)
    expect(foldedLayerName(folded, 'stem')).toBe('stem_conv');
    expect(foldedLayerName(folded, 's1_b1_bn2')).toBe('s1_b1_conv2');
    expect(foldedLayerName(folded, 'block1')).toBe('block1');
    const byName = functionalModel({ inputs: folded.model.inputs, outputs: taps.map((t) => folded.model.getLayer(foldedLayerName(folded, t)).output as SymbolicTensor) });
    const named = apply(byName, x);
    for (const rel of relDiffs(want.slice(1), named)) expect(rel).toBeLessThanOrEqual(1e-5);
    // `keep`: a tap read by name later keeps its meaning
    const kept = await foldBatchNorm(m, { keep: ['s1_b1_conv1', 'stem_bn'] });
    expect(kept.folds.some((f) => f.into === 's1_b1_conv1')).toBe(false);
    expect(kept.folds.find((f) => f.batchNorm === 'stem_bn')?.relu).toBeUndefined();
    tf.dispose([x, ...want, ...got, ...named]);
    folded.model.dispose();
    kept.model.dispose();
    m.dispose();
  }, 60_000);

  it('byot-resnet with batch norm: all three outputs (logits and the early exits) equal to 1e-5 relative', async () => {
    const m = getModelDefinition('byot-resnet').build({ ...MNIST, batchNorm: true });
    randomiseBatchNorms(m, 3);
    const folded = await foldBatchNorm(m);
    expect(folded.folds.length).toBe(m.layers.filter((l) => l.getClassName() === 'BatchNormalization').length);
    expect(folded.model.outputNames.length).toBe(3);
    const x = batch(5, [28, 28, 1], 11);
    const want = apply(m, x);
    const got = apply(folded.model, x);
    for (const rel of relDiffs(want, got)) expect(rel).toBeLessThanOrEqual(1e-5);
    tf.dispose([x, ...want, ...got]);
    folded.model.dispose();
    m.dispose();
  }, 60_000);

  it('a Sequential conv-BN-ReLU and a dense-BN with bias; a model without batch norm is returned as it is', async () => {
    const seq = sequential({
      layers: [
        layers.conv2d({ inputShape: [8, 8, 2], filters: 4, kernelSize: 3, useBias: true, biasInitializer: 'glorotUniform' }),
        layers.batchNormalization({ epsilon: 1e-3 }),
        layers.activation({ activation: 'relu' }),
        layers.flatten(),
        layers.dense({ units: 5, biasInitializer: 'glorotUniform' }),
        layers.batchNormalization({ center: false }),
      ],
    });
    for (const l of seq.layers.filter((x) => x.getClassName() === 'BatchNormalization')) {
      const r = rng(5);
      l.setWeights(l.getWeights().map((w, i) => tf.tensor1d(Array.from({ length: w.shape[0] as number }, () => (i === l.getWeights().length - 1 ? 0.3 + r() : r() - 0.3)))));
    }
    const folded = await foldBatchNorm(seq);
    // conv ← BN (ReLU fused: the Activation layer after it), dense ← BN (nothing after it)
    const [conv, bn1, relu, , dense, bn2] = seq.layers.map((l) => l.name);
    expect(folded.folds).toEqual([
      { into: conv, batchNorm: bn1, relu },
      { into: dense, batchNorm: bn2 },
    ]);
    const x = batch(3, [8, 8, 2], 13);
    for (const rel of relDiffs(apply(seq, x), apply(folded.model, x))) expect(rel).toBeLessThanOrEqual(1e-5);
    folded.model.dispose();

    const plain = getModelDefinition('cnn-small').build(MNIST);
    const same = await foldBatchNorm(plain);
    expect(same.model).toBe(plain);
    expect(same.folds).toEqual([]);
    plain.dispose();
    seq.dispose();
  }, 60_000);
});
