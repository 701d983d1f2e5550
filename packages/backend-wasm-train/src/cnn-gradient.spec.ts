/**
 * End to end: the gradient of a small CNN (conv2d -> relu -> depthwiseConv2d (x2 multiplier,
 * stride 2) -> conv2d -> tanh -> mean-pool, plus an embedding gather, -> dense) computed on wasm equals the cpu one,
 * and 100 tf.variableGrads steps on wasm leak nothing.
 */
import { memorySnapshot, plain, relErr, tf, useBackend } from './__fixtures__/harness';

const SHAPES = {
  w1: [3, 3, 2, 4],
  dw: [3, 3, 4, 2],
  w2: [3, 3, 8, 6],
  emb: [6, 6],
  dense: [6, 3],
} as const;
const X = plain([4, 10, 10, 2], 101);
const IDS = Int32Array.from([0, 5, 2, 5]);
const TARGET = plain([4, 3], 102);

type Vars = Record<keyof typeof SHAPES, tf.Variable>;

function makeVars(): Vars {
  const entries = Object.entries(SHAPES).map(([k, shape], i) => {
    const p = plain([...shape], 200 + i);
    return [k, tf.variable(tf.tensor(p.values, p.shape))];
  });
  return Object.fromEntries(entries) as Vars;
}

function loss(v: Vars, x: tf.Tensor4D, ids: tf.Tensor1D, target: tf.Tensor2D): tf.Scalar {
  const h1 = tf.relu(tf.conv2d(x, v.w1 as tf.Tensor4D, 1, 'same'));
  const h2 = tf.depthwiseConv2d(h1, v.dw as tf.Tensor4D, 2, 'same'); // [4, 5, 5, 8]
  const h3 = tf.tanh(tf.conv2d(h2, v.w2 as tf.Tensor4D, 1, 'valid')); // [4, 3, 3, 6]
  const pooled = tf.mean(h3, [1, 2]); // [4, 6]
  const feat = tf.add(pooled, tf.gather(v.emb, ids)); // [4, 6]
  const logits = tf.matMul(feat, v.dense);
  return tf.mean(tf.square(tf.sub(logits, target)));
}

async function gradients(backend: 'cpu' | 'wasm'): Promise<{ loss: number; grads: Record<string, Float64Array> }> {
  await useBackend(backend);
  const v = makeVars();
  const x = tf.tensor4d(X.values, X.shape as [number, number, number, number]);
  const ids = tf.tensor1d(IDS, 'int32');
  const target = tf.tensor2d(TARGET.values, TARGET.shape as [number, number]);
  const { value, grads } = tf.variableGrads(() => loss(v, x, ids, target), Object.values(v));
  const out = {
    loss: value.dataSync()[0],
    grads: Object.fromEntries(
      Object.entries(v).map(([k, variable]) => [k, Float64Array.from(grads[variable.name].dataSync())]),
    ),
  };
  tf.dispose([value, ...Object.values(grads), x, ids, target, ...Object.values(v)]);
  return out;
}

describe('small CNN gradient on wasm', () => {
  it('equals the cpu gradient for every variable (relative error <= 1e-5)', async () => {
    const cpu = await gradients('cpu');
    const wasm = await gradients('wasm');
    expect(Math.abs(wasm.loss - cpu.loss) / Math.abs(cpu.loss)).toBeLessThanOrEqual(1e-5);
    for (const k of Object.keys(SHAPES)) {
      expect(relErr(wasm.grads[k], cpu.grads[k])).toBeLessThanOrEqual(1e-5);
    }
    // Gradients are not trivially zero.
    for (const k of Object.keys(SHAPES)) expect(Math.max(...cpu.grads[k].map(Math.abs))).toBeGreaterThan(1e-4);
  });

  it('100 tf.variableGrads steps leave tensors, buffers and bytes unchanged', async () => {
    await useBackend('wasm');
    const v = makeVars();
    const x = tf.tensor4d(X.values, X.shape as [number, number, number, number]);
    const ids = tf.tensor1d(IDS, 'int32');
    const target = tf.tensor2d(TARGET.values, TARGET.shape as [number, number]);
    const step = () => {
      const { value, grads } = tf.variableGrads(() => loss(v, x, ids, target), Object.values(v));
      tf.dispose([value, ...Object.values(grads)]);
    };
    step();
    const before = memorySnapshot();
    for (let i = 0; i < 100; i++) step();
    expect(memorySnapshot()).toEqual(before);
    tf.dispose([x, ids, target, ...Object.values(v)]);
  });
});
