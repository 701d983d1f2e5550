import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { crossEntropy, Rng } from '@tfkd/kd-core';
import { getModelDefinition } from '@tfkd/models';
import { augmentedForward, augmentedWidth, createExtras, extents, extrasVariables, sampleWidths, tinyWidths, type LayerExtras } from './augment';
import { readChain, type Chain } from './chain';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const where = { role: 'student', path: 'student', plugin: 'train/netaug' };

function build(id: string, options: Record<string, unknown>, inputShape: number[], numClasses = 3): LayersModel {
  return getModelDefinition(id).build({ inputShape, numClasses, seed: 4, ...options });
}

function images(n: number, shape: number[], seed: number): tf.Tensor {
  const rng = new Rng(seed);
  const size = n * shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({ length: size }, () => rng.next()), [n, ...shape]);
}

function zeroExtras(extras: LayerExtras[]): void {
  for (const v of extrasVariables(extras)) v.assign(tf.zerosLike(v));
}

function dispose(extras: LayerExtras[], model: LayersModel): void {
  extrasVariables(extras).forEach((v) => v.dispose());
  model.dispose();
}

describe('widths: the reference rounding', () => {
  it('make_divisible(v, 1): half up, at least 1, never 10 % short; multiplier 1 keeps the width', () => {
    // 32·1.8 = 57.6 → 58; 32·2.6 = 83.2 → 83; 16·1.8 = 28.8 → 29; 1·1.4 = 1.4 → 1, and 1 < 0.9·1.4 → 2.
    expect([augmentedWidth(32, 1), augmentedWidth(32, 1.8), augmentedWidth(32, 2.6), augmentedWidth(16, 1.8), augmentedWidth(1, 1.4)]).toEqual([32, 58, 83, 29, 2]);
  });

  it('the widest network: every hidden layer × the largest multiplier, the logits layer keeps K; inputs follow', () => {
    const m = build('mlp', { hidden: [32, 16] }, [4, 4, 1], 10);
    const chain = readChain(m, where);
    expect(extents(chain, [1, 1.8, 2.6])).toEqual([
      { inMax: 1, outMax: 83 },
      { inMax: 83, outMax: 42 },
      { inMax: 42, outMax: 10 },
    ]);
    m.dispose();
  });
});

describe('the augmented forward at multiplier 1 is the student’s forward', () => {
  const cases: [string, Record<string, unknown>, number[]][] = [
    ['mlp', { hidden: [5, 6] }, [4, 4, 2]],
    ['mlp-student', { width: 0.25 }, [6, 6, 1]],
    ['cnn-small', { width: 0.5 }, [8, 8, 1]],
    ['cnn-large', { width: 0.125, embeddingSize: 6 }, [8, 8, 1]],
  ];

  it.each(cases)('%s %j: the same values as model.predict, exactly', (id, options, shape) => {
    const model = build(id, options, shape);
    const chain = readChain(model, where);
    const extras = createExtras(chain, [1], new Rng(1));
    expect(extrasVariables(extras)).toHaveLength(0); // nothing grows at multiplier 1
    const x = images(5, shape, 2);
    const want = (model.predict(x) as tf.Tensor).dataSync();
    const got = tf.tidy(() => augmentedForward(chain, extras, sampleWidths(chain, [1], new Rng(3)), x, { training: false }).dataSync());
    expect(Array.from(got)).toEqual(Array.from(want));
    x.dispose();
    dispose(extras, model);
  });

  it.each(cases)('%s %j: with every extra weight zero, a wider network computes the same logits', (id, options, shape) => {
    const model = build(id, options, shape);
    const chain = readChain(model, where);
    const extras = createExtras(chain, [1, 2.6], new Rng(1));
    expect(extrasVariables(extras).length).toBeGreaterThan(0);
    zeroExtras(extras);
    const widest = extents(chain, [2.6]).map((e) => e.outMax);
    const x = images(5, shape, 2);
    const want = (model.predict(x) as tf.Tensor).dataSync();
    const got = tf.tidy(() => augmentedForward(chain, extras, widest, x, { training: false }).dataSync());
    got.forEach((v, i) => expect(v).toBeCloseTo(want[i], 5));
    // …and once the extras are not zero, it does not
    extrasVariables(extras).forEach((v, i) => v.assign(tf.fill(v.shape, 0.05 * (i + 1))));
    const other = tf.tidy(() => augmentedForward(chain, extras, widest, x, { training: false }).dataSync());
    expect(Math.max(...Array.from(other).map((v, i) => Math.abs(v - want[i])))).toBeGreaterThan(1e-3);
    x.dispose();
    dispose(extras, model);
  });
});

describe('the gradient reaches the student through the shared slice', () => {
  // A tiny case: mlp 4 → 3 → 3 classes on 2×2 images, augmented to 3·2 = 6 hidden units.
  let model: LayersModel;
  let chain: Chain;
  let extras: LayerExtras[];
  let x: tf.Tensor;
  let y: tf.Tensor;
  beforeAll(() => {
    model = build('mlp', { hidden: [3] }, [2, 2, 1]);
    chain = readChain(model, where);
    extras = createExtras(chain, [2], new Rng(11));
    x = images(4, [2, 2, 1], 12);
    y = tf.tensor1d([0, 1, 2, 1], 'int32');
  });
  afterAll(() => {
    x.dispose();
    y.dispose();
    dispose(extras, model);
  });

  const augLoss = () => crossEntropy(augmentedForward(chain, extras, [6, 3], x, { training: true }), y);

  it.each([['fc1', 0], ['logits', 1]])('d L(augmented) / d %s kernel (the student’s variable) is non-zero and matches central differences', (_layer, i) => {
    const kernel = chain.matrices[i as number].kernel();
    const { grads } = tf.variableGrads(augLoss, [kernel]);
    const analytic = grads[kernel.name].dataSync();
    tf.dispose(grads);
    expect(Math.max(...Array.from(analytic).map(Math.abs))).toBeGreaterThan(1e-3);
    const base = Float64Array.from(kernel.dataSync());
    const eps = 1e-2;
    const numeric = Array.from(base, (_, j) => {
      const at = (d: number) => {
        const v = Float64Array.from(base);
        v[j] += d;
        kernel.assign(tf.tensor(Float32Array.from(v), kernel.shape));
        return tf.tidy(() => augLoss().dataSync()[0]);
      };
      return (at(eps) - at(-eps)) / (2 * eps);
    });
    kernel.assign(tf.tensor(Float32Array.from(base), kernel.shape));
    const scale = Math.max(1e-3, ...numeric.map(Math.abs));
    const err = Math.max(...numeric.map((n, j) => Math.abs(n - analytic[j])));
    expect(err / scale).toBeLessThan(1e-2);
  });

  it('the extra weights get a gradient too, and the tiny units’ slice is the student’s own', () => {
    const vars = extrasVariables(extras);
    expect(vars.length).toBe(3); // fc1: cols [1, 4, 3] and bias [3]; logits: rows [1, 3, 3]
    const { grads } = tf.variableGrads(augLoss, vars);
    for (const v of vars.filter((w) => !w.name.endsWith('/bias'))) expect(Math.max(...Array.from(grads[v.name].dataSync()).map(Math.abs))).toBeGreaterThan(1e-4);
    // …and that gradient is the loss's: central differences on every extra weight (bias included)
    for (const v of vars) {
      const analytic = grads[v.name].dataSync();
      const base = Float64Array.from(v.dataSync());
      const eps = 1e-2;
      const numeric = Array.from(base, (_, j) => {
        const at = (d: number) => {
          const w = Float64Array.from(base);
          w[j] += d;
          v.assign(tf.tensor(Float32Array.from(w), v.shape));
          return tf.tidy(() => augLoss().dataSync()[0]);
        };
        return (at(eps) - at(-eps)) / (2 * eps);
      });
      v.assign(tf.tensor(Float32Array.from(base), v.shape));
      const scale = Math.max(1e-3, ...numeric.map(Math.abs));
      expect(Math.max(...numeric.map((n, j) => Math.abs(n - analytic[j]))) / scale).toBeLessThan(1e-2);
    }
    tf.dispose(grads);
    // the augmented fc1's first 3 units are the student's fc1 units: same pre-activations
    const fc1 = chain.matrices[0];
    const tinyHidden = tf.tidy(() => tf.relu(tf.add(tf.matMul(tf.reshape(x, [4, 4]), fc1.kernel()), fc1.bias?.() as tf.Tensor)).dataSync());
    const wide = tf.tidy(() => {
      const kernel6 = tf.concat([tf.reshape(fc1.kernel(), [4, 3]), tf.reshape(extras[0].cols as tf.Tensor, [4, 3])], 1);
      const bias6 = tf.concat([fc1.bias?.() as tf.Tensor, extras[0].bias as tf.Tensor]);
      return tf.relu(tf.add(tf.matMul(tf.reshape(x, [4, 4]), kernel6), bias6)).arraySync() as number[][];
    });
    wide.forEach((row, b) => row.slice(0, 3).forEach((v, u) => expect(v).toBeCloseTo(tinyHidden[b * 3 + u], 5)));
  });
});

describe('seeded sampling of the augmented widths', () => {
  it('the same seed draws the same widths; another seed others; every width is a candidate', () => {
    const model = build('mlp', { hidden: [32, 16, 8] }, [4, 4, 1], 10);
    const chain = readChain(model, where);
    const draw = (seed: number) => {
      const rng = new Rng(seed);
      return Array.from({ length: 40 }, () => sampleWidths(chain, [1, 1.8, 2.6], rng));
    };
    const a = draw(7);
    expect(draw(7)).toEqual(a);
    expect(draw(8)).not.toEqual(a);
    const candidates = [32, 16, 8].map((w) => new Set([1, 1.8, 2.6].map((m) => augmentedWidth(w, m))));
    for (const widths of a) {
      expect(widths[3]).toBe(10);
      widths.slice(0, 3).forEach((w, i) => expect(candidates[i].has(w)).toBe(true));
    }
    // every candidate of the first layer is drawn over 40 steps (each with probability 1/3)
    expect(new Set(a.map((w) => w[0])).size).toBe(3);
    expect(tinyWidths(chain)).toEqual([32, 16, 8, 10]);
    model.dispose();
  });

  it('extras are initialised from the seed: the same seed gives the same values', () => {
    const model = build('cnn-small', { width: 0.25 }, [8, 8, 1]);
    const chain = readChain(model, where);
    const values = (seed: number) => {
      const e = createExtras(chain, [1, 2], new Rng(seed));
      const out = extrasVariables(e).map((v) => Array.from(v.dataSync()));
      extrasVariables(e).forEach((v) => v.dispose());
      return out;
    };
    const a = values(3);
    expect(values(3)).toEqual(a);
    expect(values(4)).not.toEqual(a);
    // conv1 cols [9, 1, 4] and bias [4]; conv2 cols [9, 4, 8], rows [9, 4, 16] and bias [8]; logits rows [2·2, 8, 3]
    expect(a.map((v) => v.length)).toEqual([9 * 4, 4, 9 * 4 * 8, 9 * 4 * 16, 8, 4 * 8 * 3]);
    model.dispose();
  });
});
