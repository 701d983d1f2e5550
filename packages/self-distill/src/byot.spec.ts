import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { buildTappedModel, byotResnetDefinition } from '@tfkd/models';
import { expectClose, runLossOnce } from './__fixtures__/harness';
import { byotLoss, byotPlugin, byotSchema, byotTerms, type ByotExit } from './byot';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const ZD = [
  [1, 2, 0.5],
  [0.2, -1, 1.5],
];
const ZH = [
  [2, 1, 0],
  [0, 0.5, 2],
];
const FD = [
  [0.5, 1],
  [0, 2],
];
const FH = [
  [0.25, 1.5],
  [1, 1],
];
const Y = [1, 2];

describe('byotTerms (hand-computed, T = 3)', () => {
  it('deep CE, head CE, T²·KL(p_deep^T ‖ p_head^T), Σ (f_head − f_deep)²', () => {
    const v = tf.tidy(() => {
      const t = byotTerms({ logits: tf.tensor2d(ZD), feature: tf.tensor2d(FD) }, [{ logits: tf.tensor2d(ZH), feature: tf.tensor2d(FH) }], tf.tensor1d(Y, 'int32'), { temperature: 3 });
      return { deep: t.deepCe.dataSync()[0], ce: t.heads[0].ce.dataSync()[0], kl: t.heads[0].kl.dataSync()[0], feature: t.heads[0].feature.dataSync()[0] };
    });
    // deep CE = (−ln softmax(1,2,0.5)[1] − ln softmax(0.2,−1,1.5)[2]) / 2 = 0.383944
    expectClose(v.deep, 0.383944, 2e-6);
    // head CE = (−ln softmax(2,1,0)[1] − ln softmax(0,0.5,2)[2]) / 2 = (1.407606 + 0.306355) / 2 = 0.856981
    expectClose(v.ce, 0.856981, 2e-6);
    // KL rows at T = 3: 0.043282, 0.020689 → 9 · (0.043282 + 0.020689) / 2 = 0.287871
    expectClose(v.kl, 0.287871, 2e-6);
    // (0.25 − 0.5)² + (1.5 − 1)² + (1 − 0)² + (1 − 2)² = 0.0625 + 0.25 + 1 + 1
    expectClose(v.feature, 2.3125, 1e-7);
  });

  it('the plugin weights: deep (1 − α) by default (the reference), heads (1 − α) / α / λ', () => {
    const step = {
      logits: { student: tf.tensor2d(ZD) },
      taps: { student: { head1: tf.tensor2d(ZH), head1_feat: tf.tensor2d(FH), embedding: tf.tensor2d(FD) } },
      y: Y,
      roles: [{ name: 'student', kind: 'student' as const, trainable: true }],
    };
    const t = runLossOnce(byotPlugin, { heads: ['head1'], features: ['head1_feat'] }, step);
    expect(Object.fromEntries(Object.entries(t).map(([k, x]) => [k, x.weight]))).toEqual({
      'self/byot:deep:ce': 0.9,
      'self/byot:head1:ce': 0.9,
      'self/byot:head1:kl': 0.1,
      'self/byot:head1:feature': 1e-6,
    });
    expectClose(t['self/byot:head1:kl'].value, 0.287871, 2e-6);
    const plain = runLossOnce(byotPlugin, { heads: ['head1'], features: ['head1_feat'], deepCeWeight: 1 }, step);
    expect(plain['self/byot:deep:ce'].weight).toBe(1);
    expect(byotSchema.parse({})).toMatchObject({ alpha: 0.1, temperature: 3, lambda: 1e-6, heads: ['head1', 'head2'], features: ['head1_feat', 'head2_feat'], deepFeature: 'embedding' });
  });

  it('a feature shape that differs from the deepest feature is a start-up error at its option', () => {
    const step = {
      logits: { student: tf.tensor2d(ZD) },
      taps: { student: { head1: tf.tensor2d(ZH), head1_feat: tf.tensor2d([[1, 2, 3], [4, 5, 6]]), embedding: tf.tensor2d(FD) } },
      y: Y,
      roles: [{ name: 'student', kind: 'student' as const, trainable: true }],
    };
    expect(() => runLossOnce(byotPlugin, { heads: ['head1'], features: ['head1_feat'] }, step)).toThrow("feature 'head1_feat' is [3] and the deepest feature 'embedding' is [2]");
  });

  it('finite-difference gradient checks: w.r.t. the head logits and the head feature', () => {
    const o = { alpha: 0.3, temperature: 3, lambda: 0.5, deepCeWeight: 0.7 };
    const [zd, fd, zh, fh, y] = [tf.tensor2d(ZD), tf.tensor2d(FD), tf.tensor2d(ZH), tf.tensor2d(FH), tf.tensor1d(Y, 'int32')];
    expect(finiteDifferenceCheck((z) => byotLoss({ logits: zd, feature: fd }, [{ logits: z, feature: fh }], y, o), ZH.flat(), [2, 3]).maxRelError).toBeLessThan(1e-2);
    expect(finiteDifferenceCheck((f) => byotLoss({ logits: zd, feature: fd }, [{ logits: zh, feature: f }], y, o), FH.flat(), [2, 2]).maxRelError).toBeLessThan(1e-2);
    // w.r.t. the deepest logits only its own CE counts: the heads' targets are gradient-stopped
    const deepOnly = finiteDifferenceCheck((z) => byotLoss({ logits: z, feature: fd }, [{ logits: zh, feature: fh }], y, o), ZD.flat(), [2, 3]);
    const ceOnly = finiteDifferenceCheck((z) => byotTerms({ logits: z, feature: fd }, [], y, o).deepCe, ZD.flat(), [2, 3]);
    deepOnly.analytic.forEach((g, i) => expect(g).toBeCloseTo(0.7 * ceOnly.analytic[i], 6));
    tf.dispose([zd, fd, zh, fh, y]);
  });
});

describe('gradient flow in a byot-resnet', () => {
  let m: LayersModel;
  let tapped: LayersModel;
  let x: tf.Tensor;
  let y: tf.Tensor;
  const o = { alpha: 0.3, temperature: 3, lambda: 0.05, deepCeWeight: 0.7 };

  beforeAll(() => {
    m = byotResnetDefinition.build({ inputShape: [8, 8, 1], numClasses: 3, seed: 5, widths: [4, 6, 8] });
    tapped = buildTappedModel(m, ['head1', 'head2', 'head1_feat', 'head2_feat', 'embedding']);
    x = tf.tensor4d(Float32Array.from({ length: 6 * 64 }, (_, i) => ((i * 37) % 101) / 101), [6, 8, 8, 1]);
    y = tf.tensor1d([0, 1, 2, 0, 1, 2], 'int32');
  });
  afterAll(() => {
    tf.dispose([x, y]);
    m.dispose();
  });

  function exits(): { deep: ByotExit; heads: ByotExit[] } {
    const [logits, h1, h2, f1, f2, emb] = tapped.apply(x, { training: true }) as tf.Tensor[];
    return { deep: { logits, feature: emb }, heads: [{ logits: h1, feature: f1 }, { logits: h2, feature: f2 }] };
  }

  const vars = (pred: (name: string) => boolean) => m.trainableWeights.filter((w) => pred(w.originalName)).map((w) => w.read() as tf.Variable);

  /** Gradients of f w.r.t. `vs` as plain arrays, by variable name (zeros where f does not reach). */
  function grads(f: () => tf.Scalar, vs: tf.Variable[]): Record<string, number[]> {
    return tf.tidy(() => {
      const { grads: g } = tf.variableGrads(f, vs);
      return Object.fromEntries(vs.map((v) => [v.name, Array.from((g[v.name] ?? tf.zerosLike(v)).dataSync())]));
    });
  }

  function expectGradsClose(a: Record<string, number[]>, b: Record<string, number[]>): void {
    expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
    for (const k of Object.keys(a)) a[k].forEach((v, i) => expect(Math.abs(v - b[k][i])).toBeLessThanOrEqual(1e-6 + 1e-4 * Math.abs(b[k][i])));
  }

  it.each([1, 2])('head %i: its variables get gradient only from its own terms', (i) => {
    const headVars = vars((n) => n.startsWith(`head${i}`));
    expect(headVars.length).toBe(8); // reduce, down, expand convs and the dense: kernel + bias each
    const total = grads(() => {
      const e = exits();
      return byotLoss(e.deep, e.heads, y, o);
    }, headVars);
    const own = grads(() => {
      const e = exits();
      const h = byotTerms(e.deep, e.heads, y, o).heads[i - 1];
      return tf.addN([tf.mul(h.ce, 1 - o.alpha), tf.mul(h.kl, o.alpha), tf.mul(h.feature, o.lambda)]) as tf.Scalar;
    }, headVars);
    expectGradsClose(total, own);
    expect(Object.values(own).some((g) => g.some((v) => Math.abs(v) > 1e-6))).toBe(true);
  });

  it('the deepest classifier’s own layers get gradient from its CE only (the heads’ targets are stopped)', () => {
    // `logits` and the last stage feed only the deepest classifier and the heads' targets
    const deepVars = vars((n) => n.startsWith('logits') || n.startsWith('s3_'));
    const total = grads(() => {
      const e = exits();
      return byotLoss(e.deep, e.heads, y, o);
    }, deepVars);
    const ce = grads(() => tf.mul(byotTerms(exits().deep, [], y, o).deepCe, o.deepCeWeight) as tf.Scalar, deepVars);
    expectGradsClose(total, ce);
    // without the stop-gradient the KL and feature terms would reach them: the check has teeth
    const leaky = grads(() => {
      const e = exits();
      const t = o.temperature;
      const kl = tf.mul(tf.mean(tf.sum(tf.mul(tf.softmax(tf.div(e.deep.logits, t)), tf.sub(tf.logSoftmax(tf.div(e.deep.logits, t)), tf.logSoftmax(tf.div(e.heads[0].logits, t)))), 1)), t * t);
      return tf.add(kl, tf.sum(tf.squaredDifference(e.heads[0].feature, e.deep.feature))) as tf.Scalar;
    }, deepVars);
    expect(Object.values(leaky).some((g) => g.some((v) => Math.abs(v) > 1e-6))).toBe(true);
  });

  it('the shared trunk gets gradient from every exit', () => {
    const stem = vars((n) => n.startsWith('stem'));
    const fromHead1 = grads(() => {
      const e = exits();
      return byotTerms(e.deep, e.heads, y, o).heads[0].ce;
    }, stem);
    const fromDeep = grads(() => byotTerms(exits().deep, [], y, o).deepCe, stem);
    for (const g of [fromHead1, fromDeep]) expect(Object.values(g).some((a) => a.some((v) => Math.abs(v) > 1e-6))).toBe(true);
  });
});
