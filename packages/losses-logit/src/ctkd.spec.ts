import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { prepareRun, Registry } from '@tfkd/engine';
import { RunSpec, type EpochSummary, type LossTerm, type StepContext } from '@tfkd/kd-core';
import { fakePluginDeps, finiteDifferenceCheck, stubOutputs, testModule } from '@tfkd/kd-core/testing';
import { TWO_ROLES } from './__fixtures__/harness';
import { expectClose } from './__fixtures__/reference';
import { ctkd, ctkdLambda, ctkdLoss, ctkdTemperature, gradientReversal, kdAtTemperature } from './ctkd';
import { hintonKd } from './hinton-kd';
import { logitLossesModule } from './module';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// Two samples, three classes (as the hinton-kd spec).
const ZS = [
  [1, 2, 0.5],
  [0.2, -1, 1.5],
];
const ZT = [
  [2, 1, 0],
  [0, 0.5, 2],
];
const DEFAULTS = { tStart: 1, tEnd: 20 };
const SCHEDULE = { lambdaMin: 0, lambdaMax: 1, lambdaEpochs: 10 };

/** |actual − expected| ≤ tol·|expected|: for gradients far below 1. */
function expectRelClose(actual: number, expected: number, tol: number): void {
  if (!(Math.abs(actual - expected) <= tol * Math.abs(expected))) throw new Error(`expected ${actual} within ${tol} (relative) of ${expected}`);
}

/** d/dθ of the CTKD loss at θ (a scalar), through the reversal layer when `lambda` is set, else plain. */
function thetaGrad(theta: number, o: { tStart: number; tEnd: number }, lambda?: number): number {
  return tf.tidy(() => {
    const zs = tf.tensor2d(ZS);
    const zt = tf.tensor2d(ZT);
    const f = (th: tf.Tensor) =>
      lambda === undefined ? kdAtTemperature(zs, zt, ctkdTemperature(th, o)) : ctkd(zs, zt, th, { ...o, lambda });
    return tf.grad(f)(tf.scalar(theta)).dataSync()[0];
  });
}

describe('ctkdLambda (the reference’s CosineDecay, paper sign)', () => {
  it('λ_min 0 → λ_max 1 over 10 epochs, epochs from 1 (reference script: decay_max 0, decay_min −1, decay_loops 10)', () => {
    // reference CosineDecay(max_value=0, min_value=−1, num_loops=10).get_value(e), negated (python, float64):
    // {0: 0, 1: 0.02447174, 2: 0.0954915, 5: 0.5, 9: 0.97552826, 10: 1, 11: 1, 240: 1}
    const expected: Record<number, number> = { 0: 0, 1: 0.02447174, 2: 0.0954915, 5: 0.5, 9: 0.97552826, 10: 1, 11: 1, 240: 1 };
    for (const [e, v] of Object.entries(expected)) expectClose(ctkdLambda(Number(e), SCHEDULE), v, 1e-7);
  });

  it('other ends: λ 0.2 → 0.8 (reference decay_max −0.2, decay_min −0.8): 0.21468305, 0.5, 0.8 at epochs 1, 5, 10', () => {
    const o = { lambdaMin: 0.2, lambdaMax: 0.8, lambdaEpochs: 10 };
    expectClose(ctkdLambda(1, o), 0.21468305, 1e-7);
    expectClose(ctkdLambda(5, o), 0.5, 1e-7);
    expectClose(ctkdLambda(10, o), 0.8, 1e-7);
  });
});

describe('gradientReversal', () => {
  it('is the identity forward and multiplies the gradient by −λ', () => {
    const [value, g] = tf.tidy(() => {
      const x = tf.tensor1d([1, -2, 3]);
      const f = (t: tf.Tensor) => tf.sum(tf.mul(gradientReversal(t, 0.25), tf.tensor1d([1, 2, 4]))) as tf.Scalar;
      return [Array.from(gradientReversal(x, 0.25).dataSync()), Array.from(tf.grad(f)(x).dataSync())];
    });
    expect(value).toEqual([1, -2, 3]);
    expect(g).toEqual([-0.25, -0.5, -1]);
  });
});

describe('ctkd', () => {
  it('θ = 1 (the reference’s init), T = 1 + 20·sigmoid(1) = 15.62117157: Hinton KD at that T (hand-computed)', () => {
    // torch float64 re-run of CTKD's Global_T + GradientReversalFunction + DistillKL with
    // temp = t_start + t_end·sigmoid(θ), t_start 1, t_end 20: T = 15.62117157, loss 0.30231799
    const [t, v, hinton] = tf.tidy(() => {
      const zs = tf.tensor2d(ZS);
      const zt = tf.tensor2d(ZT);
      return [
        ctkdTemperature(tf.scalar(1), DEFAULTS).dataSync()[0],
        ctkd(zs, zt, tf.scalar(1), { ...DEFAULTS, lambda: 0.5 }).dataSync()[0],
        hintonKd(zs, zt, { temperature: 15.62117157 }).dataSync()[0],
      ];
    });
    expectClose(t, 15.62117157);
    expectClose(v, 0.30231799);
    expectClose(hinton, 0.30231799);
  });

  it('θ = −0.5, tStart 2, tEnd 10: T = 5.77540669, loss 0.30140078 (torch float64)', () => {
    const v = tf.tidy(() => ctkd(tf.tensor2d(ZS), tf.tensor2d(ZT), tf.scalar(-0.5), { tStart: 2, tEnd: 10, lambda: 1 }).dataSync()[0]);
    expectClose(v, 0.30140078);
  });

  it('gradient reversal: dL/dθ is −λ times the plain gradient (torch autograd values)', () => {
    // torch float64, the reference's GRL with decay_value = +1 (plain), −0.5, −0.02447174 (= −λ):
    //   dθ = 3.53247e−5, −1.76624e−5, −8.645e−7 at θ = 1 (defaults). At T = 15.6 dL/dT is a difference of
    //   two terms 4000 times larger (2T·KL and T²·dKL/dT), so float32 keeps about one digit: the same
    //   reference code in torch float32 gives 3.6805e−5; hence 10 % here and 0.5 % at the steeper point.
    const plain = thetaGrad(1, DEFAULTS);
    expectRelClose(plain, 0.0000353247, 0.1);
    expectRelClose(thetaGrad(1, DEFAULTS, 0.5), -0.0000176624, 0.1);
    for (const lambda of [0.02447174, 0.5, 1]) expectRelClose(thetaGrad(1, DEFAULTS, lambda), -lambda * plain, 1e-6);
    expect(Math.abs(thetaGrad(1, DEFAULTS, 0))).toBe(0);
    // a steeper point: θ = −0.5, tStart 2, tEnd 10, λ = 1 → dθ = −0.0010240842 (torch)
    expectRelClose(thetaGrad(-0.5, { tStart: 2, tEnd: 10 }, 1), -0.0010240842, 5e-3);
  });

  it('the plain gradient w.r.t. θ passes a finite-difference check (θ = 0, tStart 1, tEnd 4: T = 3)', () => {
    const zs = tf.tensor2d(ZS);
    const zt = tf.tensor2d(ZT);
    const { maxRelError } = finiteDifferenceCheck((th) => kdAtTemperature(zs, zt, ctkdTemperature(tf.reshape(th, []), { tStart: 1, tEnd: 4 })), [0], [1]);
    tf.dispose([zs, zt]);
    expect(maxRelError).toBeLessThan(1e-2);
  });

  it('gradient w.r.t. z_s is Hinton KD’s at T, whatever λ (torch autograd values)', () => {
    const torchGrad = [
      [-0.1980212, 0.144015, 0.0540062],
      [0.12783808, -0.14401512, 0.01617703],
    ];
    for (const lambda of [0, 0.5]) {
      const g = tf.tidy(() => {
        const zt = tf.tensor2d(ZT);
        const theta = tf.scalar(1);
        return tf.grad((z: tf.Tensor) => ctkd(z, zt, theta, { ...DEFAULTS, lambda }))(tf.tensor2d(ZS)).arraySync() as number[][];
      });
      torchGrad.forEach((row, b) => row.forEach((v, k) => expectClose(g[b][k], v)));
    }
  });

  it('passes a finite-difference gradient check w.r.t. z_s (θ = 1 and θ = −0.5)', () => {
    for (const th of [1, -0.5]) {
      const zt = tf.tensor2d(ZT);
      const theta = tf.scalar(th);
      const { maxRelError } = finiteDifferenceCheck((z) => ctkd(z, zt, theta, { tStart: 2, tEnd: 10, lambda: 1 }), ZS.flat(), [2, 3]);
      tf.dispose([zt, theta]);
      expect(maxRelError).toBeLessThan(1e-2);
    }
  });
});

/** The plugin outside a run: its θ, its loss handler on a stub step of the given epoch, its epochEnd hook. */
function ctkdPlugin(options: Record<string, unknown>, log: string[] = []) {
  const deps = { ...fakePluginDeps('loss/ctkd', TWO_ROLES), log: (l: string) => void log.push(l) };
  const plugin = ctkdLoss.create(ctkdLoss.options.parse(options), deps);
  const handlers: Record<string, (p: unknown) => void> = {};
  plugin.register({ on: (hook: string, h: (p: unknown) => void) => void (handlers[hook] = h) } as never);
  const theta = (plugin.variables?.() ?? [])[0];
  const loss = (epoch: number): tf.Scalar => {
    const terms: tf.Scalar[] = [];
    const outputs = stubOutputs({ student: tf.tensor2d(ZS), teacher: tf.tensor2d(ZT) });
    handlers.loss({ epoch, roles: TWO_ROLES, outputs, addLoss: (t: LossTerm) => void terms.push(t.value) } as unknown as StepContext);
    return terms[0];
  };
  return { plugin, theta, loss, epochEnd: (epoch: number) => handlers.epochEnd({ phase: 'distill', epoch } as EpochSummary) };
}

describe('loss/ctkd plugin', () => {
  it('defaults: tStart 1, tEnd 20, λ 0 → 1 over 10 epochs (the reference’s script)', () => {
    const o = ctkdLoss.options.parse({});
    expect(o).toEqual({ tStart: 1, tEnd: 20, lambdaMin: 0, lambdaMax: 1, lambdaEpochs: 10, student: 'student', teacher: 'teacher' });
    expect(ctkdLoss.requires?.(o)).toEqual({ roles: ['student', 'teacher'] });
    for (const bad of [{ tStart: 0 }, { tEnd: -1 }, { lambdaMax: -1 }, { lambdaEpochs: 0 }, { temperature: 4 }]) expect(ctkdLoss.options.safeParse(bad).success).toBe(false);
  });

  it('owns one trainable scalar θ = 1; the term is Hinton KD at T(θ); its gradient to θ is −λ(epoch) times the plain one', () => {
    const { plugin, theta, loss } = ctkdPlugin({});
    expect(plugin.variables?.()).toHaveLength(1);
    expect(theta.trainable).toBe(true);
    expect(theta.shape).toEqual([]);
    expect(theta.dataSync()[0]).toBe(1);
    const plain = thetaGrad(1, DEFAULTS);
    for (const [epoch, lambda] of [[1, 0.02447174], [5, 0.5], [12, 1]]) {
      const { value, grads } = tf.variableGrads(() => loss(epoch), [theta]);
      expectClose(value.dataSync()[0], 0.30231799);
      expectRelClose(grads[theta.name].dataSync()[0], -lambda * plain, 1e-5);
      tf.dispose([value, ...Object.values(grads)]);
    }
    plugin.dispose?.();
    expect(theta.isDisposed).toBe(true);
  });

  it('creating and disposing the plugin leaves no tensor behind', () => {
    const before = tf.memory().numTensors;
    ctkdPlugin({}).plugin.dispose?.();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('an optimizer step moves θ up the loss (the reversal): θ₁ = θ₀ + lr·λ·dL/dθ, and the loss at θ₁ is larger', () => {
    const { plugin, theta, loss } = ctkdPlugin({ tStart: 2, tEnd: 10 });
    tf.tidy(() => theta.assign(tf.scalar(-0.5)));
    const optimizer = tf.train.sgd(10);
    const before = tf.tidy(() => loss(10).dataSync()[0]);
    const { value, grads } = tf.variableGrads(() => loss(10), [theta]);
    optimizer.applyGradients(grads);
    tf.dispose([value, ...Object.values(grads)]);
    // dL/dθ = 0.0010240842 at θ = −0.5 (torch float64); λ(10) = 1
    expectRelClose(theta.dataSync()[0] - -0.5, 10 * 0.0010240842, 5e-3);
    const after = tf.tidy(() => loss(10).dataSync()[0]);
    expect(after).toBeGreaterThan(before);
    optimizer.dispose();
    plugin.dispose?.();
  });

  it('logs the temperature and λ at each epoch end', () => {
    const lines: string[] = [];
    const { plugin, epochEnd } = ctkdPlugin({}, lines);
    epochEnd(5);
    expect(lines).toEqual(['loss/ctkd: distill epoch 5: temperature 15.6212 (λ = 0.5000)']);
    plugin.dispose?.();
  });
});

describe('loss/ctkd in an Engine run', () => {
  const spec = (lambdaMax: number) =>
    RunSpec.parse({
      seed: 3,
      backend: 'cpu',
      data: { name: 'blobs', train: 16, test: 4 },
      teacher: { model: 'test-dense', seed: 11, train: { epochs: 1 } },
      student: { model: 'test-dense' },
      train: { epochs: 2, batchSize: 4, optimizer: { name: 'sgd', lr: 0.5, momentum: 0, weightDecay: 0 } },
      plugins: [
        { use: 'loss/cross-entropy', weight: 0.1 },
        { use: 'loss/ctkd', weight: 0.9, with: { lambdaMax, lambdaEpochs: 2 } },
      ],
    });

  async function run(lambdaMax: number): Promise<{ theta: number; lines: string[]; temperature: number }> {
    const lines: string[] = [];
    const engine = await prepareRun(spec(lambdaMax), { registry: new Registry([testModule(), logitLossesModule]), cacheDir: null, log: (l) => lines.push(l) });
    try {
      const result = await engine.run();
      expect(Number.isFinite(result.history[1].train.loss)).toBe(true);
      const instance = engine.pluginInstances().find((p) => p.id === 'loss/ctkd');
      const theta = (instance?.plugin.variables?.() ?? [])[0].dataSync()[0];
      return { theta, lines: lines.filter((l) => l.startsWith('loss/ctkd:')), temperature: 1 + 20 / (1 + Math.exp(-theta)) };
    } finally {
      engine.dispose();
    }
  }

  it('θ is trained by the student’s optimizer when λ > 0, and stays at 1 when λ = 0 (no weight decay)', async () => {
    const trained = await run(1);
    expect(trained.theta).not.toBe(1);
    expect(trained.lines).toHaveLength(2);
    expect(trained.lines[1]).toBe(`loss/ctkd: distill epoch 2: temperature ${trained.temperature.toFixed(4)} (λ = 1.0000)`);
    const frozen = await run(0);
    expect(frozen.theta).toBe(1);
    expect(frozen.lines[1]).toBe('loss/ctkd: distill epoch 2: temperature 15.6212 (λ = 0.0000)');
  });
});
