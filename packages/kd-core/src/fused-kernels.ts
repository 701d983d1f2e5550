import * as tf from '@tensorflow/tfjs-core';

// ---------------------------------------------------------------------------------------------
// Fused optimizers (#19): the whole update of a step in one kernel call.
//
// tfjs's Adam runs ~15 elementwise kernels per variable (88 calls for the 6 variables of a small
// CNN step), SGD + momentum 4–6, SGD 2 — each a JS → backend dispatch, a new buffer and one more
// pass over the data. The optimizers below are subclasses of tfjs's own (same class name, slots,
// `getWeights`/`setWeights`, `accBeta1/2`), whose `applyGradients` runs ONE kernel for all
// variables when the active backend has it (`cpu` here; `wasm` with @tfkd/backend-wasm-train) and
// falls back to tfjs's own code otherwise (webgl, tfjs-node, non-float32 variables).
//
// The kernels compute exactly tfjs's float32 expressions, operation by operation, in the same order:
// every intermediate is rounded to float32 (Math.fround; on wasm, f32x4 instructions), and for
// +, −, ×, ÷ and √ a float64 result rounded once to float32 is the correctly rounded float32
// result, as tfjs's kernels produce it. So the results are the tfjs optimizers' bit for bit, not
// merely close (tested: `optim.spec.ts` on cpu, `optimizer-kernels.spec.ts` on wasm).

/** Kernel: Adam's update of every variable. Inputs (an array): accBeta1, accBeta2, then per variable value, m, v, gradient. Outputs: accBeta1', accBeta2', then per variable value', m', v'. */
export const FUSED_ADAM_KERNEL = 'TfkdFusedAdam';
/** Kernel: SGD / momentum / Nesterov update. Inputs: c (= −lr scalar), momentum scalar, then per variable value, [accumulation,] gradient. Outputs per variable value'[, accumulation']. */
export const FUSED_SGD_KERNEL = 'TfkdFusedSgd';

export interface FusedAdamAttrs {
  beta1: number;
  beta2: number;
  epsilon: number;
  learningRate: number;
}
export interface FusedSgdAttrs {
  mode: 'sgd' | 'momentum' | 'nesterov';
}

/** The float32 constants of one Adam step, as tfjs makes them (JS numbers turned into float32 scalars). */
export interface AdamConstants {
  beta1: number;
  beta2: number;
  oneMinusBeta1: number;
  oneMinusBeta2: number;
  oneMinusAccBeta1: number;
  oneMinusAccBeta2: number;
  epsilon: number;
  negLr: number;
}

const f32 = Math.fround;

export function adamConstants(attrs: FusedAdamAttrs, accBeta1: number, accBeta2: number): AdamConstants {
  return {
    beta1: f32(attrs.beta1),
    beta2: f32(attrs.beta2),
    oneMinusBeta1: f32(1 - attrs.beta1),
    oneMinusBeta2: f32(1 - attrs.beta2),
    oneMinusAccBeta1: f32(1 - accBeta1),
    oneMinusAccBeta2: f32(1 - accBeta2),
    epsilon: f32(attrs.epsilon),
    negLr: f32(-attrs.learningRate),
  };
}

/**
 * Adam on elements [from, to) — tfjs 4.22 `AdamOptimizer.applyGradients`, expression by expression:
 *   m' = m·β₁ + g·(1−β₁);  v' = v·β₂ + g²·(1−β₂);  m̂ = m'/(1−β₁ᵗ);  v̂ = v'/(1−β₂ᵗ)
 *   p' = (m̂ / (√v̂ + ε))·(−lr) + p
 */
export function adamLoop(
  k: AdamConstants,
  p: Float32Array,
  m: Float32Array,
  v: Float32Array,
  g: Float32Array,
  pOut: Float32Array,
  mOut: Float32Array,
  vOut: Float32Array,
  from = 0,
  to = p.length,
): void {
  const { beta1, beta2, oneMinusBeta1, oneMinusBeta2, oneMinusAccBeta1, oneMinusAccBeta2, epsilon, negLr } =
    k;
  for (let i = from; i < to; i++) {
    const gi = g[i];
    const nm = f32(f32(m[i] * beta1) + f32(gi * oneMinusBeta1));
    const nv = f32(f32(v[i] * beta2) + f32(f32(gi * gi) * oneMinusBeta2));
    const mh = f32(nm / oneMinusAccBeta1);
    const vh = f32(nv / oneMinusAccBeta2);
    mOut[i] = nm;
    vOut[i] = nv;
    pOut[i] = f32(f32(f32(mh / f32(f32(Math.sqrt(vh)) + epsilon)) * negLr) + p[i]);
  }
}

/**
 * SGD on elements [from, to), tfjs 4.22's expressions (c = the optimizer's float32 −lr, mu its
 * float32 momentum): sgd p' = c·g + p; momentum a' = mu·a + g, p' = c·a' + p; Nesterov
 * a' = mu·a + g, p' = c·(g + a'·mu) + p. `acc`/`accOut` are unused (may be null) for plain SGD.
 */
export function sgdLoop(
  mode: FusedSgdAttrs['mode'],
  c: number,
  mu: number,
  p: Float32Array,
  acc: Float32Array | null,
  g: Float32Array,
  pOut: Float32Array,
  accOut: Float32Array | null,
  from = 0,
  to = p.length,
): void {
  if (mode === 'sgd') {
    for (let i = from; i < to; i++) pOut[i] = f32(f32(c * g[i]) + p[i]);
    return;
  }
  const a = acc as Float32Array;
  const aOut = accOut as Float32Array;
  if (mode === 'momentum') {
    for (let i = from; i < to; i++) {
      const na = f32(f32(mu * a[i]) + g[i]);
      aOut[i] = na;
      pOut[i] = f32(f32(c * na) + p[i]);
    }
    return;
  }
  for (let i = from; i < to; i++) {
    const gi = g[i];
    const na = f32(f32(mu * a[i]) + gi);
    aOut[i] = na;
    pOut[i] = f32(f32(c * f32(gi + f32(na * mu))) + p[i]);
  }
}

/**
 * How a backend's kernel reaches float32 data: `read` gives a view of a tensor's values (inputs, and
 * outputs to fill), `alloc` makes an output. Views are taken after every allocation of a kernel
 * call: on wasm an allocation may grow the heap, which detaches the views taken before it.
 */
export interface FusedKernelMemory {
  read(info: tf.TensorInfo): Float32Array;
  alloc(shape: number[]): tf.TensorInfo;
}

/** Adam over whole arrays; a backend may supply its own (e.g. wasm SIMD), which must give the same bits as {@link adamLoop}. */
export type AdamLoopFn = (
  k: AdamConstants,
  p: Float32Array,
  m: Float32Array,
  v: Float32Array,
  g: Float32Array,
  pOut: Float32Array,
  mOut: Float32Array,
  vOut: Float32Array,
) => void;

/** The Adam kernel function for a backend, given how it reads and allocates memory (and optionally its own element loop). */
export function makeFusedAdamKernel(
  memoryOf: (backend: tf.KernelBackend) => FusedKernelMemory,
  loopOf: (backend: tf.KernelBackend) => AdamLoopFn = () => adamLoop,
): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const ins = inputs as unknown as tf.TensorInfo[];
    const mem = memoryOf(backend as tf.KernelBackend);
    const a = attrs as unknown as FusedAdamAttrs;
    const acc1 = mem.read(ins[0])[0];
    const acc2 = mem.read(ins[1])[0];
    const k = adamConstants(a, acc1, acc2);
    const loop = loopOf(backend as tf.KernelBackend);
    const outs: tf.TensorInfo[] = [mem.alloc([]), mem.alloc([])];
    for (let i = 2; i + 4 <= ins.length; i += 4) {
      const shape = ins[i].shape.slice();
      outs.push(mem.alloc(shape), mem.alloc(shape), mem.alloc(shape));
    }
    mem.read(outs[0])[0] = f32(acc1 * k.beta1);
    mem.read(outs[1])[0] = f32(acc2 * k.beta2);
    for (let i = 2, o = 2; i + 4 <= ins.length; i += 4, o += 3) {
      const [p, m, v, g] = [ins[i], ins[i + 1], ins[i + 2], ins[i + 3]].map((t) => mem.read(t));
      loop(k, p, m, v, g, mem.read(outs[o]), mem.read(outs[o + 1]), mem.read(outs[o + 2]));
    }
    return outs;
  };
}

/** The SGD / momentum kernel function for a backend. */
export function makeFusedSgdKernel(
  memoryOf: (backend: tf.KernelBackend) => FusedKernelMemory,
): tf.KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const ins = inputs as unknown as tf.TensorInfo[];
    const mem = memoryOf(backend as tf.KernelBackend);
    const { mode } = attrs as unknown as FusedSgdAttrs;
    const c = mem.read(ins[0])[0];
    const mu = mem.read(ins[1])[0];
    const per = mode === 'sgd' ? 2 : 3;
    const outs: tf.TensorInfo[] = [];
    for (let i = 2; i + per <= ins.length; i += per) {
      outs.push(mem.alloc(ins[i].shape.slice()));
      if (per === 3) outs.push(mem.alloc(ins[i].shape.slice()));
    }
    for (let i = 2, o = 0; i + per <= ins.length; i += per, o += per - 1) {
      const acc = per === 3 ? mem.read(ins[i + 1]) : null;
      const accOut = per === 3 ? mem.read(outs[o + 1]) : null;
      sgdLoop(mode, c, mu, mem.read(ins[i]), acc, mem.read(ins[i + per - 1]), mem.read(outs[o]), accOut);
    }
    return outs;
  };
}

/** The cpu backend's memory: its data map holds plain typed arrays. */
function cpuMemory(backend: tf.KernelBackend): FusedKernelMemory {
  const b = backend as unknown as {
    data: { get(id: tf.DataId): { values: ArrayLike<number> } };
    makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): tf.TensorInfo;
  };
  return {
    read: (info) => {
      const v = b.data.get(info.dataId).values;
      return v instanceof Float32Array ? v : Float32Array.from(v);
    },
    alloc: (shape) => b.makeTensorInfo(shape, 'float32', new Float32Array(tf.util.sizeFromShape(shape))),
  };
}

/** Registers the cpu kernels of the fused optimizers (idempotent; the wasm ones are in @tfkd/backend-wasm-train). */
export function registerFusedOptimizerKernelsCpu(): void {
  if (tf.getKernel(FUSED_ADAM_KERNEL, 'cpu') == null)
    tf.registerKernel({
      kernelName: FUSED_ADAM_KERNEL,
      backendName: 'cpu',
      kernelFunc: makeFusedAdamKernel(cpuMemory),
    });
  if (tf.getKernel(FUSED_SGD_KERNEL, 'cpu') == null)
    tf.registerKernel({
      kernelName: FUSED_SGD_KERNEL,
      backendName: 'cpu',
      kernelFunc: makeFusedSgdKernel(cpuMemory),
    });
}
registerFusedOptimizerKernelsCpu();
