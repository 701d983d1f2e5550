import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { initWasmBackend } from '@tfkd/backend-wasm-train';
import { type KdError, Rng } from '@tfkd/kd-core';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { countFlops } from '@tfkd/models';
import { buildSegDiscriminator, criticOf } from '../discriminator';
import { expectClose, leaked, value } from '../__fixtures__/helpers';
import { criticInput, gradientPenalty, segAdversarialCritic, segAdversarialStudent, type Critic } from './seg-adversarial';
import { segCwd } from './seg-cwd';

jest.setTimeout(120_000);

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** N(0, 1)·scale draws rounded to 2 decimals. */
const draws = (n: number, seed: number, scale = 1): number[] => {
  const r = new Rng(seed);
  return Array.from({ length: n }, () => Math.round(r.normal() * scale * 100) / 100);
};

/** The `fix` of the KdError `f` throws. */
function fixOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return (e as KdError).fix;
  }
  return undefined;
}

/** CWD in float64 with plain loops, [N, H, W, C] row-major: τ²/(N·C)·Σ_{n,c} KL over the H·W locations. */
function cwdLoops(s: number[], t: number[], [n, h, w, c]: number[], tau: number): number {
  let total = 0;
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      const at = (x: number[]) => Array.from({ length: h * w }, (_, i) => x[(b * h * w + i) * c + ch] / tau);
      const logSoftmax = (z: number[]) => {
        const m = Math.max(...z);
        const lse = m + Math.log(z.reduce((a, v) => a + Math.exp(v - m), 0));
        return z.map((v) => v - lse);
      };
      const lt = logSoftmax(at(t));
      const ls = logSoftmax(at(s));
      total += lt.reduce((a, v, i) => a + Math.exp(v) * (v - ls[i]), 0);
    }
  }
  return (tau * tau * total) / (n * c);
}

describe('segCwd (Shu et al. 2021, channel-wise distillation)', () => {
  // 2×2 maps, 2 channels; only pixel (0,0) differs from 0. Student channel 0 = [ln 2, 0, 0, 0],
  // channel 1 = 0; teacher channel 0 = 0, channel 1 = [ln 3, 0, 0, 0] (NHWC: c fastest).
  const S = [Math.log(2), 0, 0, 0, 0, 0, 0, 0];
  const T = [0, Math.log(3), 0, 0, 0, 0, 0, 0];
  const s = () => tf.tensor4d(S, [1, 2, 2, 2]);
  const t = () => tf.tensor4d(T, [1, 2, 2, 2]);

  it('hand values: softmax over the 4 locations per channel, KL(t ‖ s) summed, mean over channels, × τ²', () => {
    // τ = 1. Channel 0: KL(uniform ‖ [2,1,1,1]/5) = ln 5 − (9/4) ln 2; channel 1: KL([3,1,1,1]/6 ‖ uniform) = ½ ln(4/3).
    const kl0 = Math.log(5) - (9 / 4) * Math.log(2);
    const kl1 = 0.5 * Math.log(4 / 3);
    expectClose(value(() => segCwd(s(), t(), { temperature: 1 })), (kl0 + kl1) / 2, 1e-6);
    // τ = 2: logits halved → q0 = [√2,1,1,1]/(3+√2), p1 = [√3,1,1,1]/(3+√3); × τ² = 4.
    const r2 = Math.SQRT2;
    const r3 = Math.sqrt(3);
    const kl0t = -Math.log(4) - Math.log(2) / 8 + Math.log(3 + r2);
    const kl1t = Math.log(4) + (r3 / (3 + r3)) * 0.5 * Math.log(3) - Math.log(3 + r3);
    expectClose(value(() => segCwd(s(), t(), { temperature: 2 })), (4 * (kl0t + kl1t)) / 2, 1e-6);
    // A second image whose maps agree: the sum is divided by N·C = 4, so the value halves.
    const v2 = value(() => segCwd(tf.tensor4d([...S, ...T], [2, 2, 2, 2]), tf.tensor4d([...T, ...T], [2, 2, 2, 2]), { temperature: 1 }));
    expectClose(v2, (kl0 + kl1) / 4, 1e-6);
    // 0 at a match.
    expect(value(() => segCwd(t(), t(), { temperature: 4 }))).toBeCloseTo(0, 6);
  });

  const shape: [number, number, number, number] = [2, 3, 3, 4];

  it('random maps: equals a float64 loop implementation; a 1×1 adapter maps student channels', () => {
    const xs = draws(72, 1, 2);
    const xt = draws(72, 2, 2);
    for (const tau of [1, 4]) expectClose(value(() => segCwd(tf.tensor4d(xs, shape), tf.tensor4d(xt, shape), { temperature: tau })), cwdLoops(xs, xt, shape, tau), 1e-5);
    // One student channel [ln 2, 0, 0, 0] through kernel [1, 0] (bias 0) gives the hand case's student.
    const a = { kernel: tf.tensor4d([1, 0], [1, 1, 1, 2]), bias: tf.tensor1d([0, 0]) };
    const one = () => tf.tensor4d([Math.log(2), 0, 0, 0], [1, 2, 2, 1]);
    const kl = (Math.log(5) - (9 / 4) * Math.log(2) + 0.5 * Math.log(4 / 3)) / 2;
    expectClose(value(() => segCwd(one(), t(), { temperature: 1, adapter: a })), kl, 1e-6);
    expect(() => segCwd(one(), t(), { temperature: 1 })).toThrow(/student \[1,2,2,1\] vs teacher \[1,2,2,2\]/);
    expect(fixOf(() => segCwd(one(), t(), { temperature: 1 }))).toMatch(/give an adapter from 1 to 2 channels/);
    expect(fixOf(() => segCwd(s(), tf.zeros([1, 4, 4, 2]), { temperature: 1 }))).toMatch(/same batch and spatial size/);
    expect(() => segCwd(s(), t(), { temperature: 0 })).toThrow(/temperature/);
    tf.dispose([a.kernel, a.bias]);
  });

  it('finite differences (student map at τ 1 and 4, adapter kernel); teacher gets no gradient; no leak', () => {
    const xs = draws(72, 3, 2);
    const tt = tf.tensor4d(draws(72, 4, 2), shape);
    for (const temperature of [1, 4]) expect(finiteDifferenceCheck((z) => segCwd(z, tt, { temperature }), xs, shape, 1e-3).maxRelError).toBeLessThan(1e-2);
    const s3 = tf.tensor4d(draws(54, 5), [2, 3, 3, 3]);
    expect(finiteDifferenceCheck((k) => segCwd(s3, tt, { temperature: 4, adapter: { kernel: k as tf.Tensor4D } }), draws(12, 6, 0.5), [1, 1, 3, 4], 1e-3).maxRelError).toBeLessThan(1e-2);
    const x = tf.tensor4d(xs, shape);
    const gt = tf.grad((z: tf.Tensor) => segCwd(x, z, { temperature: 4 }))(tt);
    expect(Math.max(...Array.from(gt.dataSync(), Math.abs))).toBe(0);
    expect(leaked((z) => segCwd(z, tt, { temperature: 4 }), x)).toBe(0);
    tf.dispose([tt, s3, x, gt]);
  });
});

/** D(x)_n = Σ w·x_n + b: ∇_x D = w everywhere, so ‖∇D‖ = ‖w‖ whatever x̂ is. */
const linearCritic = (w: tf.Tensor, b = 0.3): Critic => (x) => tf.add(tf.sum(tf.mul(x, w), [1, 2, 3]), b);

/** D(x)_n = Σ_hw leakyReLU_0.1(x_hw0 − x_hw1): a 1×1 conv [1, −1] and LeakyReLU, as the discriminator's layers. */
const kinkCritic: Critic = (x) => tf.tidy(() => tf.sum(tf.leakyRelu(tf.conv2d(x as tf.Tensor4D, tf.tensor4d([1, -1], [1, 1, 2, 1]), 1, 'same'), 0.1), [1, 2, 3]));

/** Two conv layers with LeakyReLU between, all weights from one flat θ (60 numbers): K1 [3,3,2,3], b1 [3], v [1,1,3,1]. */
const smallCritic = (theta: tf.Tensor): Critic => (x) => {
  const k1 = tf.reshape(tf.slice(theta, [0], [54]), [3, 3, 2, 3]) as tf.Tensor4D;
  const b1 = tf.slice(theta, [54], [3]);
  const v = tf.reshape(tf.slice(theta, [57], [3]), [1, 1, 3, 1]) as tf.Tensor4D;
  const h = tf.leakyRelu(tf.add(tf.conv2d(x as tf.Tensor4D, k1, 1, 'same'), b1), 0.1);
  return tf.sum(tf.conv2d(h as tf.Tensor4D, v, 1, 'same'), [1, 2, 3]);
};

describe('segAdversarial (Liu et al. 2019, holistic distillation, WGAN-GP)', () => {
  // Two 2×2×2 maps per side: student all 1 / all −1, teacher all 2 / all 0.
  const S = [...Array(8).fill(1), ...Array(8).fill(-1)];
  const T = [...Array(8).fill(2), ...Array(8).fill(0)];
  const shape: [number, number, number, number] = [2, 2, 2, 2];

  it('linear critic (w = 0.5 everywhere, ‖w‖ = √2): student loss, Wasserstein term, GP = (√2 − 1)² for any α, and their gradients by hand', () => {
    const w = tf.fill([1, 2, 2, 2], 0.5);
    const s = tf.tensor4d(S, shape);
    const t = tf.tensor4d(T, shape);
    // L_G = −mean D(s) = −(4 + 0.3 − 4 + 0.3)/2; ∂/∂s = −w/N.
    expectClose(value(() => segAdversarialStudent(linearCritic(w), s)), -0.3, 1e-6);
    const gs = tf.grad((x: tf.Tensor) => segAdversarialStudent(linearCritic(w), x))(s);
    Array.from(gs.dataSync()).forEach((g) => expectClose(g, -0.25, 1e-6));
    const gp = 3 - 2 * Math.SQRT2;
    for (const alpha of [[0.3, 0.9], [0, 1]]) expectClose(value(() => gradientPenalty(linearCritic(w), t, s, alpha)), gp, 1e-5);
    // L_D = λ_d·(mean D(s) − mean D(t) + λ_gp·GP) = 0.1·(0.3 − 4.3 + 10·GP); α drawn from an Rng here.
    expectClose(value(() => segAdversarialCritic(linearCritic(w), s, t, { rng: new Rng(7) })), 0.1 * (-4 + 10 * gp), 1e-5);
    expectClose(value(() => segAdversarialCritic(linearCritic(w), s, t, { alpha: [0.5, 0.5], gpWeight: 0, weight: 1 })), -4, 1e-6);
    // ∂L_D/∂w = λ_d·(mean_n s_n − mean_n t_n + λ_gp·2(‖w‖ − 1)·w/‖w‖) = 0.1·(0 − 1 + 10·(1 − 1/√2)) per entry (the double backward).
    const gw = tf.grad((ww: tf.Tensor) => segAdversarialCritic(linearCritic(ww), s, t, { alpha: [0.3, 0.9] }))(w);
    Array.from(gw.dataSync()).forEach((g) => expectClose(g, 0.1 * (-1 + 10 * (1 - Math.SQRT1_2)), 1e-5));
    // The maps are constants of the critic loss.
    const gd = tf.grad((x: tf.Tensor) => segAdversarialCritic(linearCritic(w), x, t, { alpha: [0.3, 0.9] }))(s);
    expect(Math.max(...Array.from(gd.dataSync(), Math.abs))).toBe(0);
    tf.dispose([w, s, t, gs, gw, gd]);
  });

  it('1×1 conv + LeakyReLU critic: values by hand, GP at α = 0.25 where one of four pixels is on the positive side', () => {
    // Pixels (c0, c1): student (1,0) (0,1) (2,2) (0,3) → z = 1, −1, 0, −3 → D = 1 − 0.1 + 0 − 0.3 = 0.6.
    // Teacher (3,1) (1,0) (0,2) (1,1) → z = 2, 1, −2, 0 → D = 2 + 1 − 0.2 + 0 = 2.8.
    const s = tf.tensor4d([1, 0, 0, 1, 2, 2, 0, 3], [1, 2, 2, 2]);
    const t = tf.tensor4d([3, 1, 1, 0, 0, 2, 1, 1], [1, 2, 2, 2]);
    expectClose(value(() => segAdversarialStudent(kinkCritic, s)), -0.6, 1e-6);
    // x̂ = 0.25·t + 0.75·s: z = 1.25, −0.5, −0.5, −2.25 → ∇D per pixel = slope·(1, −1): ‖∇D‖² = 2 + 3·2·0.01.
    const gp = (Math.sqrt(2.06) - 1) ** 2;
    expectClose(value(() => gradientPenalty(kinkCritic, t, s, [0.25])), gp, 1e-5);
    expectClose(value(() => segAdversarialCritic(kinkCritic, s, t, { alpha: [0.25] })), 0.1 * (0.6 - 2.8 + 10 * gp), 1e-5);
    expect(() => segAdversarialCritic(kinkCritic, s, t)).toThrow(/neither `alpha` nor `rng`/);
    expect(() => gradientPenalty(kinkCritic, t, s, [0.2, 0.3])).toThrow(/2 interpolation weights for 1 images/);
    tf.dispose([s, t]);
  });

  it('finite differences: critic loss in all critic weights (GP through a double backward), student loss in the student map', () => {
    const s = tf.tensor4d(draws(36, 11), [2, 3, 3, 2]);
    const t = tf.tensor4d(draws(36, 12), [2, 3, 3, 2]);
    const theta0 = draws(60, 15, 0.5);
    // ∇D(x̂) is piecewise constant in θ: it jumps where a unit's pre-activation at x̂ changes sign, and a
    // central difference across such a jump is meaningless. These draws keep every unit ≥ 0.03 from 0.
    const margin = tf.tidy(() => {
      const xh = tf.add(tf.mul(tf.tensor4d([0.3, 0.7], [2, 1, 1, 1]), t), tf.mul(tf.tensor4d([0.7, 0.3], [2, 1, 1, 1]), s));
      const z = tf.add(tf.conv2d(xh as tf.Tensor4D, tf.tensor4d(theta0.slice(0, 54), [3, 3, 2, 3]), 1, 'same'), tf.tensor1d(theta0.slice(54, 57)));
      return tf.min(tf.abs(z)).dataSync()[0];
    });
    expect(margin).toBeGreaterThan(0.03);
    const critic = (th: tf.Tensor) => segAdversarialCritic(smallCritic(th), s, t, { alpha: [0.3, 0.7] });
    expect(finiteDifferenceCheck(critic, theta0, [60], 1e-3).maxRelError).toBeLessThan(1e-2);
    // The penalty alone (weight 1, no Wasserstein term) also matches.
    expect(finiteDifferenceCheck((th) => gradientPenalty(smallCritic(th), t, s, [0.3, 0.7]), theta0, [60], 1e-3).maxRelError).toBeLessThan(1e-2);
    const theta = tf.tensor1d(theta0);
    expect(finiteDifferenceCheck((x) => segAdversarialStudent(smallCritic(theta), x), draws(36, 14), [2, 3, 3, 2], 1e-3).maxRelError).toBeLessThan(1e-2);
    expect(leaked((th) => critic(th), theta)).toBe(0);
    expect(leaked((x) => segAdversarialStudent(smallCritic(theta), x), s)).toBe(0);
    tf.dispose([s, t, theta]);
  });

  it('criticInput: logits (or their softmax) with the image concatenated, the image without gradient', () => {
    const map = tf.tensor4d([0, Math.log(3), 1, 1], [1, 1, 2, 2]);
    const image = tf.tensor4d([0.5, -0.5], [1, 1, 2, 1]);
    expect(Array.from(value2(() => criticInput(map, { image })))).toEqual(Array.from(Float32Array.from([0, Math.log(3), 0.5, 1, 1, -0.5])));
    const soft = value2(() => criticInput(map, { softmax: true }));
    [0.25, 0.75, 0.5, 0.5].forEach((p, i) => expectClose(soft[i], p, 1e-6));
    const gi = tf.grad((im: tf.Tensor) => tf.sum(criticInput(map, { image: im })))(image);
    expect(Array.from(gi.dataSync())).toEqual([0, 0]);
    expect(() => criticInput(map, { image: tf.zeros([1, 2, 2, 1]) })).toThrow(/differ in batch or spatial size/);
    tf.dispose([map, image, gi]);
  });
});

/** The values of a tensor-returning call, the tensor disposed. */
function value2(f: () => tf.Tensor): Float32Array {
  const t = f();
  const v = t.dataSync() as Float32Array;
  t.dispose();
  return v;
}

describe('buildSegDiscriminator', () => {
  it('64×64×11 → one score per image; FLOPs by hand (4 convs 4×4 stride 2 + the 4×4 score conv)', () => {
    const m = buildSegDiscriminator({ inputShape: [64, 64, 11], seed: 2 });
    const conv = (k: number, cin: number, cout: number, hw: number) => 2 * k * k * cin * cout * hw * hw;
    expect(countFlops(m).perImage).toBe(conv(4, 11, 16, 32) + conv(4, 16, 32, 16) + conv(4, 32, 64, 8) + conv(4, 64, 128, 4) + conv(4, 128, 1, 1));
    expect(countFlops(m).perImage).toBe(18_354_176);
    const out = tf.tidy(() => (m.apply(tf.ones([2, 64, 64, 11])) as tf.Tensor).shape);
    expect(out).toEqual([2, 1, 1, 1]);
    expect(() => buildSegDiscriminator({ inputShape: [60, 64, 11] })).toThrow(/divisible by 16/);
    m.dispose();
  });

  /** The critic loss's gradient in every discriminator weight (tfjs-layers convs, fused bias) on one backend. */
  async function criticGrads(backend: 'cpu' | 'wasm') {
    if (backend === 'wasm') {
      if (!(await initWasmBackend())) throw new Error('wasm backend could not be initialised');
    } else await tf.setBackend('cpu');
    const m = buildSegDiscriminator({ inputShape: [16, 16, 3], width: 2, seed: 5 });
    const vars = m.trainableWeights.map((w) => w.read() as tf.Variable);
    const s = tf.tensor4d(draws(2 * 16 * 16 * 3, 21), [2, 16, 16, 3]);
    const t = tf.tensor4d(draws(2 * 16 * 16 * 3, 22), [2, 16, 16, 3]);
    const loss = () => segAdversarialCritic(criticOf(m), s, t, { alpha: [0.3, 0.8] });
    const { value: v, grads } = tf.variableGrads(loss, vars);
    const g = vars.map((x) => Float64Array.from(grads[x.name].dataSync()));
    tf.dispose([v, ...Object.values(grads)]);
    return { m, vars, s, t, loss, g };
  }

  it('critic loss through the model: directional finite difference in all weights; tf.memory() flat over repeated steps', async () => {
    const { m, vars, s, t, loss, g } = await criticGrads('cpu');
    const r = new Rng(9);
    const dirs = vars.map((v) => Float32Array.from({ length: v.size }, () => r.normal()));
    const analytic = g.reduce((a, gv, k) => a + gv.reduce((b, x, i) => b + x * dirs[k][i], 0), 0);
    const orig = vars.map((v) => tf.clone(v));
    const at = (eps: number) => {
      vars.forEach((v, k) => tf.tidy(() => v.assign(tf.add(orig[k], tf.mul(tf.tensor(dirs[k], v.shape), eps)))));
      return value(loss);
    };
    // Small step: the penalty jumps where a unit's pre-activation at x̂ changes sign (ε = 1e-3 crosses one here).
    const eps = 5e-5;
    const numeric = (at(eps) - at(-eps)) / (2 * eps);
    vars.forEach((v, k) => v.assign(orig[k]));
    expect(Math.abs(analytic - numeric) / Math.max(1e-3, Math.abs(numeric))).toBeLessThan(1e-2);
    // Repeated critic and student steps leave no tensor behind.
    const step = () => {
      const d = tf.variableGrads(loss, vars);
      tf.dispose([d.value, ...Object.values(d.grads)]);
      const gs = tf.grad((x: tf.Tensor) => segAdversarialStudent(criticOf(m), x))(s);
      gs.dispose();
    };
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) step();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([s, t, ...orig]);
    m.dispose();
  });

  it('wasm (+ @tfkd/backend-wasm-train) gives the cpu gradients of the critic loss', async () => {
    const cpu = await criticGrads('cpu');
    const wasm = await criticGrads('wasm');
    let diff = 0;
    let scale = 1e-6;
    cpu.g.forEach((gv, k) =>
      gv.forEach((x, i) => {
        diff = Math.max(diff, Math.abs(x - wasm.g[k][i]));
        scale = Math.max(scale, Math.abs(x));
      }),
    );
    for (const run of [cpu, wasm]) {
      tf.dispose([run.s, run.t]);
      run.m.dispose();
    }
    await tf.setBackend('cpu');
    expect(diff / scale).toBeLessThan(1e-4);
  });
});
