import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { isKdError, type KdError } from './errors';
import { DotOptimizer, FusedMomentumOptimizer, isDotOptimizer, makeOptimizer, setLearningRate } from './optim';
import { lossObjective } from './plugin';
import { DOT_DELTA, parseSpec, TrainSpec } from './spec';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** One gradient per weight and step; null: the weight gets none of that kind this step. */
type Grads = { task: (number | null)[]; distill: (number | null)[] };

/** Scalar weights (shape [1]); runs the steps and returns every weight's value after each step. */
function runSteps(opt: DotOptimizer, vars: tf.Variable[], steps: Grads[]): number[][] {
  return steps.map((g) => {
    tf.tidy(() => {
      const map = (list: (number | null)[]) =>
        Object.fromEntries(list.flatMap((x, i) => (x === null ? [] : [[vars[i].name, tf.tensor1d([x])]]))) as tf.NamedTensorMap;
      opt.applyDot(vars, map(g.task), map(g.distill));
    });
    return vars.map((v) => v.dataSync()[0]);
  });
}

async function slots(opt: DotOptimizer): Promise<Record<string, number>> {
  const [iter, ...rest] = await opt.getWeights();
  iter.tensor.dispose();
  return Object.fromEntries(rest.map((w) => [w.name.replace(/\/[^/]*$/, ''), w.tensor.dataSync()[0]]));
}

const kd = (f: () => unknown): KdError => {
  try {
    f();
  } catch (e) {
    if (isKdError(e)) return e;
    throw e;
  }
  throw new Error('no error');
};

describe('DotOptimizer: the update rule of mdistiller dot.py', () => {
  // lr 0.1, μ 0.9, Δ 0.075 (task momentum 0.825, distillation 0.975), weight decay λ 0.01.
  const config = { lr: 0.1, momentum: 0.9, delta: 0.075, weightDecay: 0.01 };

  it('two weights with both gradients, 3 steps, by hand', async () => {
    const vars = [tf.variable(tf.tensor1d([1])), tf.variable(tf.tensor1d([-2]))];
    const opt = new DotOptimizer(config);
    const after = runSteps(opt, vars, [
      { task: [0.5, -1.0], distill: [0.2, 0.4] },
      { task: [0.3, 0.0], distill: [-0.1, 0.2] },
      { task: [0.1, 0.5], distill: [0.05, -0.3] },
    ]);
    // Weight a. Step 1: d = 0.5 + 0.01·1 = 0.51, b_t = 0.51 (first step: the clone), p = 1 − 0.051;
    //   b_d = 0.2 (clone), p = 0.949 − 0.02 = 0.929.
    // Step 2: d = 0.3 + 0.01·0.929 = 0.30929, b_t = 0.825·0.51 + 0.30929 = 0.73004, p = 0.929 − 0.073004;
    //   b_d = 0.975·0.2 − 0.1 = 0.095, p = 0.855996 − 0.0095 = 0.846496.
    // Step 3: d = 0.1 + 0.00846496, b_t = 0.825·0.73004 + 0.10846496 = 0.71074796, p = 0.775421204;
    //   b_d = 0.975·0.095 + 0.05 = 0.142625, p = 0.775421204 − 0.0142625 = 0.761158704.
    // Weight b. Step 1: d = −1 − 0.02 = −1.02, p = −2 + 0.102 = −1.898; b_d = 0.4, p = −1.938.
    // Step 2: d = 0 − 0.01938, b_t = 0.825·(−1.02) − 0.01938 = −0.86088, p = −1.851912; b_d = 0.975·0.4 + 0.2 = 0.59, p = −1.910912.
    // Step 3: d = 0.5 − 0.01910912 = 0.48089088, b_t = 0.825·(−0.86088) + 0.48089088 = −0.22933512, p = −1.887978488;
    //   b_d = 0.975·0.59 − 0.3 = 0.27525, p = −1.915503488.
    const expected = [
      [0.929, -1.938],
      [0.846496, -1.910912],
      [0.761158704, -1.915503488],
    ];
    after.forEach((row, k) => row.forEach((v, i) => expect(v).toBeCloseTo(expected[k][i], 6)));
    const s = await slots(opt);
    expect(s['dot/task/0']).toBeCloseTo(0.71074796, 6);
    expect(s['dot/distill/0']).toBeCloseTo(0.142625, 6);
    expect(s['dot/task/1']).toBeCloseTo(-0.22933512, 6);
    expect(s['dot/distill/1']).toBeCloseTo(0.27525, 6);
    expect(opt.iterations).toBe(3);
    opt.dispose();
    vars.forEach((v) => v.dispose());
  });

  it('a weight with one of the two gradients: momentum ((μ+Δ)+(μ−Δ))/2, and the decay where the reference puts it', async () => {
    // c: task only; d: distillation only; e: distillation only, then both.
    const vars = [1, 1, 1].map((x) => tf.variable(tf.tensor1d([x])));
    const opt = new DotOptimizer(config);
    const after = runSteps(opt, vars, [
      { task: [0.5, null, null], distill: [null, 0.2, 0.2] },
      { task: [0.3, null, 0.3], distill: [null, -0.1, -0.1] },
    ]);
    // c. Step 1: d = 0.51, p = 0.949. Step 2: d = 0.3 + 0.00949, b_t = 0.9·0.51 + 0.30949 = 0.76849, p = 0.872151.
    // d. Step 1: b_d = 0.2 — the first step takes no weight decay, even without a task gradient — p = 0.98.
    //    Step 2: the decay goes into the distillation gradient: −0.1 + 0.01·0.98 = −0.0902; b_d = 0.9·0.2 − 0.0902 = 0.0898, p = 0.97102.
    // e. Step 1 as d. Step 2: b_t starts as d = 0.3 + 0.0098 = 0.3098, p = 0.94902; b_d = 0.975·0.2 − 0.1 = 0.095 (no decay), p = 0.93952.
    expect(after[0][0]).toBeCloseTo(0.949, 6);
    expect(after[0][1]).toBeCloseTo(0.98, 6);
    expect(after[0][2]).toBeCloseTo(0.98, 6);
    expect(after[1][0]).toBeCloseTo(0.872151, 6);
    expect(after[1][1]).toBeCloseTo(0.97102, 6);
    expect(after[1][2]).toBeCloseTo(0.93952, 6);
    const s = await slots(opt);
    expect(Object.keys(s).sort()).toEqual(['dot/distill/1', 'dot/distill/2', 'dot/task/0', 'dot/task/2']);
    expect(s['dot/task/0']).toBeCloseTo(0.76849, 6);
    expect(s['dot/distill/1']).toBeCloseTo(0.0898, 6);
    expect(s['dot/task/2']).toBeCloseTo(0.3098, 6);
    expect(s['dot/distill/2']).toBeCloseTo(0.095, 6);
    opt.dispose();
    vars.forEach((v) => v.dispose());
  });

  it('μ = Δ: the task gradient has no buffer (the reference skips it when its momentum is 0)', async () => {
    const v = [tf.variable(tf.tensor1d([1]))];
    const opt = new DotOptimizer({ ...config, momentum: 0.3, delta: 0.3 });
    const after = runSteps(opt, v, [
      { task: [0.5], distill: [0.2] },
      { task: [0.3], distill: [-0.1] },
    ]);
    // Step 1: p = 1 − 0.1·0.51 − 0.1·0.2 = 0.929. Step 2: p = 0.929 − 0.1·(0.3 + 0.00929) − 0.1·(0.6·0.2 − 0.1) = 0.896071.
    expect(after[0][0]).toBeCloseTo(0.929, 6);
    expect(after[1][0]).toBeCloseTo(0.896071, 6);
    expect(Object.keys(await slots(opt))).toEqual(['dot/distill/0']);
    opt.dispose();
    v[0].dispose();
  });

  it('Δ = 0 is SGD with momentum μ on the sum of the gradients (weight decay included), to float32 rounding', () => {
    const shape = [4, 3];
    const init = tf.randomNormal(shape, 0, 1, 'float32', 1);
    const [a, b] = [tf.variable(init.clone()), tf.variable(init.clone())];
    const dot = new DotOptimizer({ lr: 0.05, momentum: 0.9, delta: 0, weightDecay: 5e-4 });
    const sgd = new FusedMomentumOptimizer(0.05, 0.9);
    for (let k = 0; k < 6; k++) {
      tf.tidy(() => {
        const gt = tf.randomNormal(shape, 0, 1, 'float32', 10 + k);
        const gd = tf.randomNormal(shape, 0, 0.5, 'float32', 100 + k);
        dot.applyDot([a], { [a.name]: gt }, { [a.name]: gd });
        sgd.applyGradients({ [b.name]: tf.add(tf.add(gt, gd), tf.mul(b, 5e-4)) });
      });
    }
    const [x, y] = [a.dataSync(), b.dataSync()];
    const scale = Math.max(...Array.from(y, Math.abs));
    x.forEach((v, i) => expect(Math.abs(v - y[i])).toBeLessThan(1e-6 * scale));
    // and not trivially: the weights moved
    expect(Math.abs(x[0] - init.dataSync()[0])).toBeGreaterThan(1e-2);
    [dot, sgd].forEach((o) => o.dispose());
    [a, b, init].forEach((t) => t.dispose());
  });

  it('getWeights → setWeights into a fresh DOT continues the run bit for bit (buffers that do not exist yet stay absent)', async () => {
    const steps: Grads[] = [
      { task: [0.5, null, -0.2], distill: [0.2, 0.1, null] },
      { task: [0.3, null, 0.1], distill: [-0.1, 0.3, null] },
      // weight 1 gets its first task gradient after the resume: its task buffer starts there
      { task: [0.1, 0.4, 0.2], distill: [0.05, -0.2, 0.3] },
      { task: [-0.2, 0.1, 0.0], distill: [0.1, 0.2, -0.1] },
    ];
    const fresh = () => [0.7, -1.3, 2.1].map((x) => tf.variable(tf.tensor1d([x])));
    const whole = fresh();
    const one = new DotOptimizer(config);
    const wholeValues = runSteps(one, whole, steps);

    const split = fresh();
    const first = new DotOptimizer(config);
    runSteps(first, split, steps.slice(0, 2));
    // what a checkpoint keeps: the counter, then each buffer's name and values
    const saved = (await first.getWeights()).map((w) => ({ name: w.name, values: w.tensor.dataSync().slice(), dtype: w.tensor.dtype, shape: w.tensor.shape }));
    expect(saved.map((w) => w.name.replace(/\/[^/]*$/, ''))).toEqual(['iter', 'dot/task/0', 'dot/task/2', 'dot/distill/0', 'dot/distill/1']);
    first.dispose();
    const second = new DotOptimizer(config);
    const tensors = saved.map((w) => tf.tensor(w.values, w.shape, w.dtype));
    await second.setWeights(tensors.map((tensor, i) => ({ name: saved[i].name, tensor })));
    tensors.forEach((t) => t.dispose());
    expect(second.iterations).toBe(2);
    const rest = runSteps(second, split, steps.slice(2));
    expect(rest).toEqual(wholeValues.slice(2));
    expect(await slots(second)).toEqual(await slots(one));
    [one, second].forEach((o) => o.dispose());
    [...whole, ...split].forEach((v) => v.dispose());
  });

  it('setWeights refuses a slot that is not a DOT buffer', async () => {
    const opt = new DotOptimizer(config);
    const t = [tf.scalar(3, 'int32'), tf.zeros([2])];
    await expect(opt.setWeights([{ name: 'iter', tensor: t[0] }, { name: 'dense/kernel/momentum', tensor: t[1] }])).rejects.toMatchObject({ code: 'KD_CHECKPOINT_INVALID' });
    t.forEach((x) => x.dispose());
    opt.dispose();
  });

  it('applyGradients: every gradient is the task’s; setLearningRate; dispose frees every tensor it made', () => {
    const sgd = makeOptimizer(TrainSpec.parse({}));
    expect(isDotOptimizer(sgd)).toBe(false);
    sgd.dispose();
    const w = tf.variable(tf.tensor1d([1]));
    const before = tf.memory().numTensors;
    const opt = makeOptimizer(TrainSpec.parse({ optimizer: { name: 'dot', lr: 0.1, weightDecay: 0.01 } }));
    expect(isDotOptimizer(opt)).toBe(true);
    expect(opt.getClassName()).toBe('DOT');
    expect(opt.getConfig()).toEqual({ lr: 0.1, momentum: 0.9, delta: DOT_DELTA, weightDecay: 0.01 });
    tf.tidy(() => opt.applyGradients({ [w.name]: tf.tensor1d([0.5]) }));
    expect(w.dataSync()[0]).toBeCloseTo(0.949, 6);
    setLearningRate(opt, 0.2);
    // second step, task only: b_t = 0.9·0.51 + (0.3 + 0.00949) = 0.76849, p = 0.949 − 0.2·0.76849
    tf.tidy(() => opt.applyGradients([{ name: w.name, tensor: tf.tensor1d([0.3]) }]));
    expect(w.dataSync()[0]).toBeCloseTo(0.949 - 0.2 * 0.76849, 6);
    expect(tf.memory().numTensors).toBeGreaterThan(before);
    opt.dispose();
    expect(tf.memory().numTensors).toBe(before);
    w.dispose();
  });
});

describe('the spec of `optimizer: { name: dot }`', () => {
  const spec = (optimizer: string) => `data: { name: synthetic }\nstudent: { model: mlp }\ntrain: { optimizer: ${optimizer} }\n`;

  it('takes the reference defaults (Δ = 0.075, μ = 0.9) and fills Δ in only for dot', () => {
    expect(parseSpec(spec('{ name: dot }')).train.optimizer).toEqual({ name: 'dot', lr: 0.05, momentum: 0.9, weightDecay: 5e-4, nesterov: false, delta: 0.075 });
    expect(parseSpec(spec('{ name: dot, delta: 0.09 }')).train.optimizer.delta).toBe(0.09);
    expect('delta' in parseSpec(spec('{ name: sgd }')).train.optimizer).toBe(false);
  });

  it.each([
    ['{ name: dot, momentum: 0.05 }', 'train.optimizer.delta', /μ − Δ = 0.05 − 0.075 is negative/, /at most `momentum` \(0.05\)/],
    ['{ name: dot, nesterov: true }', 'train.optimizer.nesterov', /no Nesterov variant/, /remove `nesterov`/],
    ['{ name: sgd, delta: 0.1 }', 'train.optimizer.delta', /option of `name: dot` only/, /set `name: dot`/],
  ])('%s is KD_SPEC_INVALID at its path, with a fix', (o, path, message, fix) => {
    const e = kd(() => parseSpec(spec(o)));
    expect(e).toMatchObject({ code: 'KD_SPEC_INVALID', path });
    expect(e.message).toMatch(message);
    expect(e.fix).toMatch(fix);
  });
});

describe('lossObjective: which gradient a plugin’s terms belong to', () => {
  const one = ['student'];
  const two = ['student.0', 'student.1'];
  it.each([
    ['cross-entropy (reads the student)', {}, { roles: ['student'] }, one, 'task'],
    ['no requirement at all', {}, {}, one, 'task'],
    ['cross-entropy of one student of several', {}, { roles: ['student.1'] }, two, 'task'],
    ['a teacher', {}, { roles: ['student', 'teacher'] }, one, 'distill'],
    ['a teacher tap', {}, { taps: ['student.block2', 'teacher.block3'] }, one, 'distill'],
    ['its own student taps only', {}, { roles: ['student'], taps: ['student.block2'] }, one, 'task'],
    ['a peer (DML)', {}, { roles: ['student.0', 'student.1'] }, two, 'distill'],
    ['a declaration, over the default', { objective: 'distill' as const }, { roles: ['student'] }, one, 'distill'],
    ['a mixed declaration', { objective: 'mixed' as const }, { roles: ['student', 'teacher'] }, one, 'mixed'],
  ])('%s', (_what, def, requirements, students, expected) => {
    expect(lossObjective(def, requirements, students)).toBe(expected);
  });
});
