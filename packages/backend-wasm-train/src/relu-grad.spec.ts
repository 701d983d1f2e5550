/**
 * ReLU's gradient in one kernel (relu-grad.ts, opt-in: `fusedReluGradient: true`): the wasm gradient of relu equals the cpu one (tfjs's
 * Step → Cast → Multiply) bit for bit, zeros, signed zeros and NaN included; the SIMD loop equals
 * the JS loop; one kernel instead of three; second-order gradients through ReLU still match cpu;
 * no leaks.
 */
import { memorySnapshot, plain, relErr, tf, useBackend } from './__fixtures__/harness';
import { initWasmBackend, registerWasmTrainingKernels, wasmTrainingBackend } from './index';
import { fusedReluGradient, RELU_GRAD_KERNEL } from './relu-grad';

beforeAll(async () => {
  expect(await initWasmBackend({ fusedReluGradient: true })).toBe(true);
});
afterAll(() => {
  registerWasmTrainingKernels({ fusedReluGradient: false });
});

/** x with exact zeros, negative zeros, NaN and ±Infinity among uniform values; dy likewise. */
function special(size: number, seed: number): Float32Array {
  const v = Float32Array.from(plain([size], seed).values);
  const specials = [0, -0, NaN, Infinity, -Infinity, 1e-40, -1e-40];
  for (let i = 0; i < size; i += 5) v[i] = specials[(i / 5) % specials.length];
  return v;
}

async function reluGradOn(backend: 'cpu' | 'wasm', size: number, seed: number): Promise<Float32Array> {
  await useBackend(backend);
  return tf.tidy(() => {
    const x = tf.tensor1d(special(size, seed));
    const dy = tf.tensor1d(special(size, seed + 1));
    const g = tf.grad((v: tf.Tensor) => tf.relu(v))(x, dy);
    return Float32Array.from(g.dataSync());
  });
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}
/** Equal as numbers (NaN = NaN, +0 ≠ −0): NaN payloads may differ between backends. */
function sameValues(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && Array.from(a).every((v, i) => Object.is(v, b[i]));
}

describe('ReLU gradient in one kernel on wasm', () => {
  it.each([1, 3, 4, 7, 64, 1001])('size %i: equals cpu (Step, Cast, Multiply) value for value, signed zeros and NaN included', async (size) => {
    const wasm = await reluGradOn('wasm', size, 40 + size);
    const cpu = await reluGradOn('cpu', size, 40 + size);
    expect(sameValues(wasm, cpu)).toBe(true);
  });

  it('the SIMD loop gives the JS loop\'s bits', async () => {
    const simd = await reluGradOn('wasm', 1003, 7);
    registerWasmTrainingKernels({ simd: false });
    try {
      expect(sameBits(simd, await reluGradOn('wasm', 1003, 7))).toBe(true);
    } finally {
      registerWasmTrainingKernels({ simd: true });
    }
  });

  it('is opt-in, and `fusedReluGradient: false` puts tfjs\'s gradient back (Step, Cast, Multiply on wasm)', async () => {
    expect(fusedReluGradient()).toBe(true);
    registerWasmTrainingKernels({ fusedReluGradient: false });
    try {
      expect(fusedReluGradient()).toBe(false);
      registerWasmTrainingKernels(); // no option: unchanged
      expect(fusedReluGradient()).toBe(false);
      await useBackend('wasm');
      const x = tf.tensor1d(special(40, 3));
      const prof = await tf.profile(() => tf.tidy(() => void tf.grad((v: tf.Tensor) => tf.relu(v))(x).dataSync()));
      x.dispose();
      expect(prof.kernels.map((k) => k.name)).toEqual(expect.arrayContaining(['Step', 'Cast', 'Multiply']));
    } finally {
      // The engine's provider (what `kd run` uses for wasm) switches it on.
      await expect(wasmTrainingBackend.init()).resolves.toBe(true);
    }
    expect(fusedReluGradient()).toBe(true);
  });

  it('one kernel for the gradient (was Step, Cast, Multiply); tfjs\'s expression on cpu', async () => {
    const names = async (backend: 'cpu' | 'wasm') => {
      await useBackend(backend);
      const x = tf.tensor1d(special(40, 3));
      const prof = await tf.profile(() => tf.tidy(() => void tf.grad((v: tf.Tensor) => tf.relu(v))(x).dataSync()));
      x.dispose();
      return prof.kernels.map((k) => k.name);
    };
    const wasm = await names('wasm');
    expect(wasm).toContain(RELU_GRAD_KERNEL);
    expect(wasm).not.toContain('Step');
    const cpu = await names('cpu');
    expect(cpu).toEqual(expect.arrayContaining(['Step', 'Cast', 'Multiply']));
    expect(cpu).not.toContain(RELU_GRAD_KERNEL);
  });

  it('a second-order gradient through ReLU (the kernel\'s own gradient) equals tfjs\'s composed one on wasm, and cpu to 1e-6', async () => {
    // f(w) = Σ (∂/∂x Σ relu(x)·(t·w))² — the inner gradient is TfkdReluGrad(dy = t·w, x).
    const X = plain([6, 5], 61);
    const T = plain([6, 5], 62);
    const W = plain([5], 63);
    const run = async (backend: 'cpu' | 'wasm') => {
      await useBackend(backend);
      return tf.tidy(() => {
        const x = tf.tensor2d(X.values, [6, 5]);
        const t = tf.tensor2d(T.values, [6, 5]);
        const w = tf.tensor1d(W.values);
        const f = (wv: tf.Tensor) => {
          const gx = tf.grad((xv: tf.Tensor) => tf.sum(tf.mul(tf.relu(xv), tf.mul(t, wv))))(x);
          return tf.sum(tf.square(gx));
        };
        return Float32Array.from(tf.grad(f)(w).dataSync());
      });
    };
    const wasm = await run('wasm');
    // The same on wasm with tfjs's expression (the kernel unregistered: the gradient falls back).
    const kernel = tf.getKernel(RELU_GRAD_KERNEL, 'wasm');
    tf.unregisterKernel(RELU_GRAD_KERNEL, 'wasm');
    let composed: Float32Array;
    try {
      composed = await run('wasm');
    } finally {
      if (kernel) tf.registerKernel(kernel);
    }
    expect(sameValues(wasm, composed)).toBe(true);
    // cpu sums in another order (1 ulp here and there).
    const cpu = await run('cpu');
    expect(relErr(wasm, cpu)).toBeLessThanOrEqual(1e-6);
    expect(Math.max(...Array.from(cpu, Math.abs))).toBeGreaterThan(1e-3);
  });

  it('100 calls leak nothing', async () => {
    await useBackend('wasm');
    const x = tf.tensor2d(special(64, 9), [8, 8]);
    const dy = tf.tensor2d(special(64, 10), [8, 8]);
    tf.engine().runKernel<tf.Tensor>(RELU_GRAD_KERNEL, { dy, x }, {}).dispose();
    const before = memorySnapshot();
    for (let i = 0; i < 100; i++) tf.tidy(() => void tf.grad((v: tf.Tensor) => tf.relu(v))(x, dy));
    expect(memorySnapshot()).toEqual(before);
    tf.dispose([x, dy]);
  });
});
