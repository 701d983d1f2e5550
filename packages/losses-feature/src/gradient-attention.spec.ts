import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { type Engine, prepareRun, Registry } from '@tfkd/engine';
import { describePluginContract } from '@tfkd/engine/testing';
import { definePlugin, type KdError, MODEL_DEFINITION, type ModelDefinition, oneHotFloat, RunSpec, type RunSpecInput, type StepContext } from '@tfkd/kd-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { ContainerModule } from 'inversify';
import { finiteDifferenceCheck, testModule } from '@tfkd/kd-core/testing';
import { logitLossesModule } from '@tfkd/losses-logit';
import { z } from 'zod';
import { testConvModule } from './__fixtures__/models';
import { expectClose, values } from './__fixtures__/reference';
import { gradientAttention, type GradientAttentionOptions, inputGradient, tapedInputGradient } from './gradient-attention';
import { kdModule } from './module';

jest.setTimeout(60_000);

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// The hand-made case: B = 2, D = 3, K = 3; student linear z = xW_s + b_s, teacher relu(xW1 + b1)W2 + b2.
const X = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]];
const Y = [0, 2];
const WS = [[0.2, -0.4, 0.1], [0.7, 0.1, -0.6], [-0.3, 0.5, 0.2]];
const BS = [0.1, -0.2, 0.05];
const W1 = [[0.3, -0.2, 0.5, 0.1], [-0.4, 0.6, 0.2, -0.3], [0.25, 0.1, -0.5, 0.4]];
const B1 = [0.05, -0.1, 0.2, 0.0];
const W2 = [[0.5, -0.3, 0.2], [-0.1, 0.4, 0.3], [0.6, 0.2, -0.4], [-0.2, 0.3, 0.5]];
const B2 = [0.0, 0.1, -0.1];
const student = (ws: tf.Tensor, bs: tf.Tensor) => (x: tf.Tensor) => tf.add(tf.matMul(x as tf.Tensor2D, ws as tf.Tensor2D), bs);
const teacher = (x: tf.Tensor) => tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(x as tf.Tensor2D, tf.tensor2d(W1)), tf.tensor1d(B1))), tf.tensor2d(W2)), tf.tensor1d(B2));

/** The loss of the hand-made case for given student weights and options. */
function handCase(ws: tf.Tensor, bs: tf.Tensor, opts: Partial<GradientAttentionOptions> = {}, labels = Y): tf.Scalar {
  const x = tf.tensor2d(X);
  const t = oneHotFloat(tf.tensor1d(labels, 'int32'), 3);
  const js = inputGradient(student(ws, bs), x, t);
  const jt = inputGradient(teacher, x, t);
  return gradientAttention(js, jt, opts);
}

describe('loss/gradient-attention: the pure function', () => {
  // Expected numbers: torch 2.x float64 (/usr/bin/python3), J = torch.autograd.grad(
  // F.cross_entropy(f(x), y, reduction='sum'), x, create_graph=True); loss = β/2·Σ(J_s − J_t)²/B;
  // d/dW_s, d/db_s by torch.autograd.grad of that loss (the double backward).
  it('input gradients and the loss on the hand-made case (torch float64)', () => {
    tf.tidy(() => {
      const t = oneHotFloat(tf.tensor1d(Y, 'int32'), 3);
      const js = inputGradient(student(tf.tensor2d(WS), tf.tensor1d(BS)), tf.tensor2d(X), t).dataSync();
      const jt = inputGradient(teacher, tf.tensor2d(X), t).dataSync();
      const torchJs = [-0.2586666394457139, -0.9817259927416597, 0.5658236549902687, 0.00802276352783865, 0.8697835027970202, -0.27401279948047924];
      const torchJt = [-0.056239491129537626, 0.002306314885108962, 0.091225136638507, 0.3775023009638945, 0.1419195632032584, -0.3678970193287701];
      torchJs.forEach((v, i) => expectClose(js[i], v, 1e-6));
      torchJt.forEach((v, i) => expectClose(jt[i], v, 1e-6));
      const ws = tf.tensor2d(WS);
      const bs = tf.tensor1d(BS);
      expectClose(handCase(ws, bs).dataSync()[0], 0.47741384408295146, 1e-6); // batchmean, β = 1
      expectClose(handCase(ws, bs, { reduction: 'sum' }).dataSync()[0], 0.9548276881659029, 1e-6);
      expectClose(handCase(ws, bs, { reduction: 'mean' }).dataSync()[0], 0.1591379480276505, 1e-6);
      expectClose(handCase(ws, bs, { normalize: 'l2' }).dataSync()[0], 0.5152814392249757, 1e-6);
      // label 'teacher': the teacher's argmax is [2, 0]; β = 0.5
      expectClose(handCase(ws, bs, { beta: 0.5 }, [2, 0]).dataSync()[0], 0.04794379949975347, 1e-6);
    });
  });

  it("the linear student's J is (softmax(z) − onehot(y)) W_sᵀ (by hand, plain doubles)", () => {
    const js = tf.tidy(() => inputGradient(student(tf.tensor2d(WS), tf.tensor1d(BS)), tf.tensor2d(X), oneHotFloat(tf.tensor1d(Y, 'int32'), 3)).dataSync());
    X.forEach((x, b) => {
      const z = [0, 1, 2].map((k) => x.reduce((s, v, d) => s + v * WS[d][k], BS[k]));
      const e = z.map((v) => Math.exp(v));
      const g = e.map((v, k) => v / (e[0] + e[1] + e[2]) - (k === Y[b] ? 1 : 0));
      [0, 1, 2].forEach((d) => expectClose(js[b * 3 + d], g.reduce((s, v, k) => s + v * WS[d][k], 0), 1e-6));
    });
  });

  it('double backward: d/dW_s and d/db_s equal torch float64 (the b_s one exists only through softmax′)', () => {
    const dws = [0.07830704110807757, -0.05985436033293494, -0.018452680775142644, 0.7445140947111223, -0.0901347745386572, -0.654379320172465, -0.3181113959979719, 0.015710879920037737, 0.30240051607793417];
    const dbs = [0.035944330464840274, -0.026033779175992373, -0.009910551288847907];
    const [gw, gb] = tf.tidy(() => tf.grads((ws: tf.Tensor, bs: tf.Tensor) => handCase(ws, bs))([tf.tensor2d(WS), tf.tensor1d(BS)]).map((g) => g.dataSync()));
    dws.forEach((v, i) => expectClose(gw[i], v, 1e-5));
    dbs.forEach((v, i) => expectClose(gb[i], v, 1e-5));
  });

  it('gradient in J matches finite differences (normalize none and l2, every reduction)', () => {
    const jt = tf.tensor2d(values(2 * 5, 3), [2, 5]);
    for (const opts of [{}, { normalize: 'l2' as const }, { reduction: 'sum' as const, beta: 3 }, { reduction: 'mean' as const }]) {
      const r = finiteDifferenceCheck((j) => gradientAttention(j, jt, opts), values(2 * 5, 4), [2, 5], 1e-3);
      expect(r.maxRelError).toBeLessThan(1e-2);
    }
  });

  it('is 0 for equal input gradients, β scales it, and mismatched sizes are KD_SHAPE_MISMATCH', () => {
    const j = tf.tensor4d(values(2 * 2 * 2 * 1, 5), [2, 2, 2, 1]);
    expect(gradientAttention(j, tf.reshape(j, [2, 4])).dataSync()[0]).toBe(0);
    const jt = tf.tensor4d(values(8, 6), [2, 2, 2, 1]);
    expectClose(gradientAttention(j, jt, { beta: 4 }).dataSync()[0], 4 * gradientAttention(j, jt).dataSync()[0], 1e-6);
    expect(() => gradientAttention(j, tf.zeros([2, 5]))).toThrow(expect.objectContaining({ code: 'KD_SHAPE_MISMATCH' }));
  });

  it('the taped J (from logits already on the tape) equals inputGradient, in value and in the weights’ gradient; off a tape it throws', () => {
    const x = tf.tensor2d(X);
    const t = oneHotFloat(tf.tensor1d(Y, 'int32'), 3);
    const jt = inputGradient(teacher, x, t);
    const ws = tf.variable(tf.tensor2d(WS));
    const bs = tf.variable(tf.tensor1d(BS));
    const taped = tf.variableGrads(() => {
      const z = student(ws, bs)(x); // the forward, as ctx.outputs() runs it inside the step's tape
      return gradientAttention(tapedInputGradient(z, x, t), jt);
    }, [ws, bs]);
    const direct = tf.variableGrads(() => gradientAttention(inputGradient(student(ws, bs), x, t), jt), [ws, bs]);
    expectClose(taped.value.dataSync()[0], direct.value.dataSync()[0], 1e-6);
    for (const v of [ws, bs]) Array.from(taped.grads[v.name].dataSync()).forEach((g, i) => expectClose(g, direct.grads[v.name].dataSync()[i], 1e-6));
    const z = student(ws, bs)(x);
    expect(() => tapedInputGradient(z, x, t)).toThrow('Cannot compute gradient');
    tf.dispose([ws, bs]);
  });
});

// ---------------------------------------------------------------------------------------------
// In a run: the logged term and the student's update against the pure functions on the run's models.

const base = (over: Partial<RunSpecInput>): RunSpec =>
  RunSpec.parse({
    seed: 5,
    backend: 'cpu',
    data: { name: 'blobs', train: 48, test: 4 },
    teacher: { model: 'test-dense', seed: 11, train: { epochs: 1 } },
    student: { model: 'test-dense' },
    train: { epochs: 1, batchSize: 4, optimizer: { name: 'sgd', lr: 0.1, momentum: 0, weightDecay: 0 } },
    evalEvery: 100,
    ...over,
  });

interface Expected {
  value: number;
  grads: Float32Array[];
  before: Float32Array[];
}

/**
 * A spy on batchStart (before the loss, on the batch the loss sees): the term and its gradient in
 * every student weight, computed with the pure functions on the run's models.
 */
function spy(engine: () => Engine, opts: { label: 'true' | 'teacher' } & Partial<GradientAttentionOptions>, out: Expected[]) {
  return definePlugin({
    id: 'test/ga-spy',
    kind: 'observer',
    describe: 'the expected gradient-attention term (test fixture)',
    options: z.object({}).strict(),
    create: (_o, deps) => ({
      name: deps.name,
      register(bus) {
        bus.on('batchStart', (ctx: StepContext) => {
          const roles = engine().roleRuntimes();
          const s = roles.get('student')!.model;
          const t = roles.get('teacher')!.model;
          const xt = ctx.input('teacher');
          const labels = opts.label === 'true' ? ctx.batch.y : tf.argMax(t.apply(xt, { training: false }) as tf.Tensor, 1);
          const targets = oneHotFloat(labels, ctx.numClasses);
          const jt = inputGradient((x) => t.apply(x, { training: false }) as tf.Tensor, xt, targets);
          const vars = s.trainableWeights.map((w) => w.read() as tf.Variable);
          const { value, grads } = tf.variableGrads(() => gradientAttention(inputGradient((x) => s.apply(x, { training: true }) as tf.Tensor, ctx.input('student'), targets), jt, opts), vars);
          out.push({ value: value.dataSync()[0], grads: vars.map((v) => grads[v.name].dataSync() as Float32Array), before: vars.map((v) => v.dataSync() as Float32Array) });
        });
      },
    }),
  });
}

describe('loss/gradient-attention in a run', () => {
  it.each([
    ['test-dense, label true, batchmean', {}, 'test-dense', { label: 'true' as const }],
    ['test-conv (conv + relu + maxpool), label teacher, l2, β = 2', { teacher: { model: 'test-conv', seed: 11, train: { epochs: 1 } }, student: { model: 'test-conv' } }, 'test-conv', { label: 'teacher' as const, normalize: 'l2' as const, beta: 2 }],
  ])('%s: the term and the SGD update are those of the pure functions; no tensor leak', async (_name, over, _model, opts) => {
    const expected: Expected[] = [];
    let engine: Engine | null = null;
    const registry = new Registry([testModule(spy(() => engine as Engine, opts, expected)), testConvModule, logitLossesModule, kdModule]);
    engine = await prepareRun(base({ ...over, plugins: [{ use: 'test/ga-spy' }, { use: 'loss/gradient-attention', with: opts }] }), { registry });
    const vars = [...engine.roleRuntimes().get('student')!.model.trainableWeights.map((w) => w.read())];
    const stepper = await engine.stepper();
    const counts: number[] = [];
    for (let i = 0; i < 12; i++) {
      const r = stepper.step();
      counts.push(tf.memory().numTensors);
      const e = expected[i];
      expectClose(r.terms['loss/gradient-attention'], e.value, 1e-5);
      // SGD (lr 0.1, no momentum, no decay) on this one term: w ← w − 0.1·∂term/∂w
      vars.forEach((v, k) => {
        const after = v.dataSync();
        e.before[k].forEach((w, j) => expect(Math.abs(after[j] - (w - 0.1 * e.grads[k][j]))).toBeLessThan(1e-5 + 1e-4 * Math.abs(0.1 * e.grads[k][j])));
      });
    }
    expect(expected[0].value).toBeGreaterThan(0);
    expect(Math.max(...expected[0].grads.map((g) => Math.max(...Array.from(g).map(Math.abs))))).toBeGreaterThan(1e-4);
    expect(counts[11]).toBe(counts[4]);
    engine.dispose();
  });

  it('the teacher forward and backward of each step are counted in the ledger', async () => {
    const registry = new Registry([testModule(), logitLossesModule, kdModule]);
    const engine = await prepareRun(base({ plugins: [{ use: 'loss/gradient-attention' }] }), { registry });
    const stepper = await engine.stepper();
    const before = engine.ledger.role('teacher');
    stepper.step();
    const after = engine.ledger.role('teacher');
    expect(after.backwardImages - before.backwardImages).toBe(4);
    expect(after.forwardImages - before.forwardImages).toBeGreaterThanOrEqual(4);
    engine.dispose();
  });

  it('a student layer without a complete second-order gradient (tanh) is KD_PLUGIN_DEPENDENCY naming it, at start-up', async () => {
    // A user's model with a tanh hidden layer (the zoo has none): refused while the run is prepared.
    const tanhModel: ModelDefinition = {
      id: 'tanh-dense',
      describe: 'flatten → dense(8, tanh) → dense(K), for this test',
      taps: [],
      build: (o) => {
        const x0 = tfl.input({ shape: o.inputShape });
        const h = tfl.layers.dense({ units: 8, activation: 'tanh', name: 'fc1' }).apply(tfl.layers.flatten().apply(x0)) as tfl.SymbolicTensor;
        return tfl.model({ inputs: x0, outputs: tfl.layers.dense({ units: o.numClasses, name: 'logits' }).apply(h) as tfl.SymbolicTensor });
      },
    };
    const registry = new Registry([testModule(), logitLossesModule, kdModule, new ContainerModule((b) => void b.bind<ModelDefinition>(MODEL_DEFINITION).toConstantValue(tanhModel))]);
    const e = (await prepareRun(base({ student: { model: 'tanh-dense' }, plugins: [{ use: 'loss/cross-entropy' }, { use: 'loss/gradient-attention' }] }), { registry }).catch((x) => x)) as KdError;
    expect(e?.code).toBe('KD_PLUGIN_DEPENDENCY');
    expect(e?.path).toBe('plugins[1]');
    expect(e?.message).toContain('fc1 (Tanh)');
  });
});

describePluginContract({ module: kdModule, id: 'loss/gradient-attention', options: {}, invalidOptions: { reduction: 'batch' } });
