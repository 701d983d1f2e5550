/**
 * Einsum for the wasm backend, for the equations tfjs's einsum accepts (1 or 2 operands, no
 * ellipsis, no label repeated inside one operand).
 *
 * Fast path (float32): labels are classified as batch (both operands and output), contracted (both,
 * not output), free (one operand and output) or summed-away (one operand only). Summed-away labels
 * are reduced first, then each operand is transposed to [batch, free, contracted] (or the
 * transposed-flag variant when that avoids a copy), reshaped to rank 3 and multiplied with one
 * BatchMatMul; the result is reshaped and transposed to the output order.
 *
 * Fallback (other dtypes, duplicate output labels): the cpu kernel's algorithm — broadcast
 * multiply and sum — run on the wasm kernels Transpose / Reshape / Multiply / Sum.
 */
import { backend_util, Einsum, KernelBackend, KernelConfig, KernelFunc, Tensor, TensorInfo } from '@tensorflow/tfjs-core';
import { KdError } from '@tfkd/kd-core';
import { adopt, disposeAll, run } from './kernel-utils';

interface Parsed {
  terms: string[];
  out: string;
}

function parse(equation: string, numTensors: number): Parsed {
  // decodeEinsumEquation validates exactly as tfjs does (and throws the same messages).
  backend_util.decodeEinsumEquation(equation, numTensors);
  const [lhs, out] = equation.replace(/\s/g, '').split('->');
  return { terms: lhs.split(','), out };
}

const prod = (xs: number[]): number => xs.reduce((a, b) => a * b, 1);
const isIdentity = (perm: number[]): boolean => perm.every((p, i) => p === i);

/** Owns the intermediates of one kernel call. */
class Scope {
  private readonly ts: Tensor[] = [];
  add(t: Tensor): Tensor {
    this.ts.push(t);
    return t;
  }
  transpose(x: TensorInfo, perm: number[]): TensorInfo {
    return isIdentity(perm) ? x : this.add(run('Transpose', { x }, { perm }));
  }
  reshape(x: TensorInfo, shape: number[]): TensorInfo {
    const same = shape.length === x.shape.length && shape.every((d, i) => d === x.shape[i]);
    return same ? x : this.add(run('Reshape', { x }, { shape }));
  }
  sum(x: TensorInfo, axis: number[]): TensorInfo {
    return axis.length === 0 ? x : this.add(run('Sum', { x }, { axis, keepDims: false }));
  }
  dispose(except?: TensorInfo): void {
    disposeAll(...this.ts.filter((t) => t !== except));
  }
}

/** Removes labels of `term` absent from `keep` by summing them away. */
function reduceAway(s: Scope, x: TensorInfo, term: string, keep: (l: string) => boolean): [TensorInfo, string] {
  const axes = [...term].flatMap((l, i) => (keep(l) ? [] : [i]));
  return [s.sum(x, axes), [...term].filter(keep).join('')];
}

/** Operand as rank 3 [batch, rows, cols] (or its transpose, flagged) for BatchMatMul. */
function asMatrix(
  s: Scope,
  x: TensorInfo,
  term: string,
  batch: string[],
  outer: string[],
  contr: string[],
  contrFirst: boolean,
): { t: TensorInfo; transposed: boolean } {
  const size = (ls: string[]): number => prod(ls.map((l) => x.shape[term.indexOf(l)]));
  const order = (first: string[], second: string[]): number[] => [...batch, ...first, ...second].map((l) => term.indexOf(l));
  // Natural layout for matMul: A = [batch, outer, contr], B = [batch, contr, outer].
  const natural = contrFirst ? order(contr, outer) : order(outer, contr);
  const flipped = contrFirst ? order(outer, contr) : order(contr, outer);
  const transposed = !isIdentity(natural) && isIdentity(flipped);
  const perm = transposed ? flipped : natural;
  const [d1, d2] = (contrFirst !== transposed) ? [size(contr), size(outer)] : [size(outer), size(contr)];
  const t = s.reshape(s.transpose(x, perm), [size(batch), d1, d2]);
  return { t, transposed };
}

function einsumMatMul(s: Scope, xs: TensorInfo[], p: Parsed): TensorInfo {
  const out = [...p.out];
  if (xs.length === 1) {
    const [r, term] = reduceAway(s, xs[0], p.terms[0], (l) => out.includes(l));
    return s.transpose(r, out.map((l) => term.indexOf(l)));
  }
  const [ta, tb] = p.terms;
  const inOut = (l: string): boolean => out.includes(l);
  const [a, la] = reduceAway(s, xs[0], ta, (l) => inOut(l) || tb.includes(l));
  const [b, lb] = reduceAway(s, xs[1], tb, (l) => inOut(l) || ta.includes(l));
  const batch = out.filter((l) => la.includes(l) && lb.includes(l));
  const freeA = out.filter((l) => la.includes(l) && !lb.includes(l));
  const freeB = out.filter((l) => lb.includes(l) && !la.includes(l));
  const contr = [...la].filter((l) => lb.includes(l) && !inOut(l));
  const A = asMatrix(s, a, la, batch, freeA, contr, false);
  const B = asMatrix(s, b, lb, batch, freeB, contr, true);
  const mm = s.add(run('BatchMatMul', { a: A.t, b: B.t }, { transposeA: A.transposed, transposeB: B.transposed }));
  const dimOf = (l: string): number => (la.includes(l) ? a.shape[la.indexOf(l)] : b.shape[lb.indexOf(l)]);
  const got = [...batch, ...freeA, ...freeB];
  const r = s.reshape(mm, got.map(dimOf));
  return s.transpose(r, out.map((l) => got.indexOf(l)));
}

/** The cpu kernel's broadcast-multiply-and-sum algorithm on wasm kernels (any dtype). */
function einsumGeneric(s: Scope, xs: TensorInfo[], equation: string): TensorInfo {
  const { allDims, summedDims, idDims } = backend_util.decodeEinsumEquation(equation, xs.length);
  const { path, steps } = backend_util.getEinsumComputePath(summedDims, idDims);
  let out: TensorInfo | null = null;
  let remaining = allDims.length;
  for (let i = 0; i < steps.length; ++i) {
    for (const idTerm of steps[i]) {
      const { permutationIndices: perm, expandDims } = backend_util.getEinsumPermutation(remaining, idDims[idTerm]);
      let x = s.transpose(xs[idTerm], perm);
      const target = x.shape.slice();
      for (const d of expandDims) target.splice(d, 0, 1);
      x = s.reshape(x, target);
      out = out === null ? x : s.add(run('Multiply', { a: x, b: out }));
    }
    if (i < steps.length - 1) {
      if (path[i] >= 0) out = s.sum(out as TensorInfo, [path[i] - (allDims.length - remaining)]);
      remaining--;
    }
  }
  return out as TensorInfo;
}

export function einsumWasm(args: { inputs: TensorInfo[]; backend: KernelBackend; attrs: { equation: string } }): TensorInfo {
  const { backend, attrs } = args;
  const xs = Array.from(args.inputs as ArrayLike<TensorInfo>);
  let p: Parsed;
  try {
    p = parse(attrs.equation, xs.length);
    const { idDims, allDims } = backend_util.decodeEinsumEquation(attrs.equation, xs.length);
    backend_util.checkEinsumDimSizes(allDims.length, idDims, xs as unknown as Tensor[]);
  } catch (e) {
    throw new KdError('KD_SHAPE_MISMATCH', `Einsum '${attrs.equation}': ${(e as Error).message}`, {
      fix: 'Use at most 2 operands, no ellipsis, no label repeated within an operand, and matching sizes per label',
      cause: e,
    });
  }
  const fast = xs.every((x) => x.dtype === 'float32') && new Set(p.out).size === p.out.length;
  const s = new Scope();
  try {
    const res = fast ? einsumMatMul(s, xs, p) : einsumGeneric(s, xs, attrs.equation);
    // `res` may be an input (identity einsum): give the engine its own reference either way.
    const owned = xs.includes(res) ? run('Identity', { x: res }) : (res as Tensor);
    s.dispose(owned);
    return adopt(backend, owned);
  } catch (e) {
    s.dispose();
    throw e;
  }
}

export const einsumWasmConfig: KernelConfig = {
  kernelName: Einsum,
  backendName: 'wasm',
  kernelFunc: einsumWasm as unknown as KernelFunc,
};
