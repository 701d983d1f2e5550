import { randomData, relErr, runOn, tf, useBackend } from './__fixtures__/harness';
import { initWasmBackend } from './index';
import { tidyValue } from '@tfkd/kd-core/testing';

beforeAll(async () => {
  expect(await initWasmBackend()).toBe(true);
});

describe('BatchMatMul with transposes on wasm (wrapped native kernel)', () => {
  const cases: [number[], number[], boolean, boolean][] = [
    [[5, 3], [5, 4], true, false],
    [[5, 3], [4, 3], false, true],
    [[3, 5], [4, 3], true, true],
    [[2, 6, 3], [2, 6, 4], true, false],
    [[2, 3, 6], [2, 4, 6], false, true],
    [[7, 9], [9, 2], false, false],
  ];
  it.each(cases)('a%j · b%j (transposeA=%s, transposeB=%s) equals cpu to 1e-6', async (sa, sb, ta, tb) => {
    const a = randomData(sa.reduce((x, y) => x * y, 1), 1);
    const b = randomData(sb.reduce((x, y) => x * y, 1), 2);
    const inputs = { a: { values: a, shape: sa, dtype: 'float32' as const }, b: { values: b, shape: sb, dtype: 'float32' as const } };
    const attrs = { transposeA: ta, transposeB: tb };
    const cpu = await runOn('cpu', 'BatchMatMul', inputs, attrs);
    const wasm = await runOn('wasm', 'BatchMatMul', inputs, attrs);
    expect(wasm.shape).toEqual(cpu.shape);
    expect(relErr(wasm.values, cpu.values)).toBeLessThan(1e-6);
  });

  it('the gradient of a dense layer equals cpu, and 100 steps leak nothing', async () => {
    const x = randomData(8 * 5, 3);
    const w = randomData(5 * 4, 4);
    const grads = () => {
      const xs = tf.tensor2d(x, [8, 5]);
      const ws = tf.tensor2d(w, [5, 4]);
      const g = tf.grads((xi: tf.Tensor, wi: tf.Tensor) => tf.sum(tf.square(tf.matMul(xi, wi))))([xs, ws]);
      return tf.concat([tf.reshape(g[0], [-1]), tf.reshape(g[1], [-1])]);
    };
    const on = async (b: 'cpu' | 'wasm') => {
      await useBackend(b);
      return tidyValue(() => Float64Array.from(grads().dataSync()));
    };
    const cpu = { values: await on('cpu') };
    const wasm = { values: await on('wasm') };
    expect(relErr(wasm.values, cpu.values)).toBeLessThan(1e-5);
    await useBackend('wasm');
    const before = tf.memory();
    for (let i = 0; i < 100; i++) tidyValue(() => grads().dataSync());
    const after = tf.memory();
    expect(after.numTensors).toBe(before.numTensors);
    expect(after.numBytes).toBe(before.numBytes);
  });
});
