/**
 * A very small WebAssembly assembler: enough of the text format (flat, one instruction per token
 * group, named locals and labels) to write the SIMD loops of this package in readable source instead
 * of shipping an opaque binary. Supports functions with i32/f32 params and no results, locals of
 * i32/f32/v128, structured control (block/loop/if/else/end with `$labels`, br, br_if), `call $name`
 * (a function of the same module), and the i32/f32/v128 instructions listed in OPS. The module imports its memory as `env.memory` (optionally
 * shared: the threaded tfjs build's memory is) and exports every function by name.
 */

type ValType = 'i32' | 'f32' | 'v128';
const VALTYPE: Record<ValType, number> = { i32: 0x7f, f32: 0x7d, v128: 0x7b };

/** Plain opcodes (no immediates). */
const OPS: Record<string, number[]> = {
  return: [0x0f],
  drop: [0x1a],
  select: [0x1b],
  'i32.eqz': [0x45],
  'i32.eq': [0x46],
  'i32.ne': [0x47],
  'i32.lt_s': [0x48],
  'i32.lt_u': [0x49],
  'i32.gt_s': [0x4a],
  'i32.gt_u': [0x4b],
  'i32.le_s': [0x4c],
  'i32.ge_s': [0x4e],
  'f32.eq': [0x5b],
  'f32.lt': [0x5d],
  'f32.gt': [0x5e],
  'i32.add': [0x6a],
  'i32.sub': [0x6b],
  'i32.mul': [0x6c],
  'i32.and': [0x71],
  'i32.or': [0x72],
  'i32.shl': [0x74],
  'i32.shr_s': [0x75],
  'i32.shr_u': [0x76],
  'f32.sqrt': [0x91],
  'f32.add': [0x92],
  'f32.sub': [0x93],
  'f32.mul': [0x94],
  'f32.div': [0x95],
  'i32x4.splat': simd(0x11),
  'f32x4.splat': simd(0x13),
  'i32x4.eq': simd(0x37),
  'f32x4.eq': simd(0x41),
  'f32x4.ne': simd(0x42),
  'f32x4.lt': simd(0x43),
  'f32x4.gt': simd(0x44),
  'v128.not': simd(0x4d),
  'v128.and': simd(0x4e),
  'v128.andnot': simd(0x4f),
  'v128.or': simd(0x50),
  'v128.bitselect': simd(0x52),
  'i32x4.add': simd(0xae),
  'f32x4.sqrt': simd(0xe3),
  'f32x4.add': simd(0xe4),
  'f32x4.sub': simd(0xe5),
  'f32x4.mul': simd(0xe6),
  'f32x4.div': simd(0xe7),
  'f64x2.promote_low_f32x4': simd(0x5f),
  'f64x2.add': simd(0xf0),
};
/** Loads and stores: opcode and natural alignment (log2); immediates `offset=N` optional. */
const MEM: Record<string, { op: number[]; align: number }> = {
  'i32.load': { op: [0x28], align: 2 },
  'f32.load': { op: [0x2a], align: 2 },
  'i32.store': { op: [0x36], align: 2 },
  'f32.store': { op: [0x38], align: 2 },
  // v128 accesses of this package are float-aligned only (channel offsets): declare 4-byte alignment.
  'v128.load': { op: simd(0x00), align: 2 },
  'v128.store': { op: simd(0x0b), align: 2 },
  // 8 bytes into the low half, zeros above.
  'v128.load64_zero': { op: simd(0x5d), align: 2 },
  // One float broadcast to the 4 lanes.
  'v128.load32_splat': { op: simd(0x09), align: 2 },
};
/** Lane accessors: one immediate lane index. */
const LANE: Record<string, number[]> = {
  'i32x4.extract_lane': simd(0x1b),
  'f32x4.extract_lane': simd(0x1f),
};

function simd(op: number): number[] {
  return [0xfd, ...uleb(op)];
}
function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}
function str(s: string): number[] {
  const b = [...new TextEncoder().encode(s)];
  return [...uleb(b.length), ...b];
}
function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}
function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

export interface AsmFunction {
  name: string;
  params: Array<[string, 'i32' | 'f32']>;
  locals: Array<[string, ValType]>;
  /** Flat text-format body: instructions and their immediates, `;;` comments. */
  body: string;
}

function assembleBody(fn: AsmFunction, functions: ReadonlyMap<string, number>): number[] {
  const index = new Map<string, number>();
  [...fn.params, ...fn.locals].forEach(([n], i) => {
    if (index.has(n)) throw new Error(`wasm-asm ${fn.name}: duplicate local $${n}`);
    index.set(n, i);
  });
  const tokens = fn.body
    .replace(/;;[^\n]*/g, '')
    .split(/\s+/)
    .filter((t) => t.length > 0);
  const out: number[] = [];
  const labels: Array<string | null> = [];
  let k = 0;
  const next = (what: string): string => {
    const t = tokens[k++];
    if (t == null) throw new Error(`wasm-asm ${fn.name}: ${what} expected at the end`);
    return t;
  };
  const local = (): number[] => {
    const t = next('a local');
    const i = index.get(t.replace(/^\$/, ''));
    if (i == null) throw new Error(`wasm-asm ${fn.name}: unknown local ${t}`);
    return uleb(i);
  };
  const label = (): number[] => {
    const t = next('a label');
    const depth = labels.length - 1 - labels.lastIndexOf(t);
    if (!labels.includes(t)) throw new Error(`wasm-asm ${fn.name}: unknown label ${t}`);
    return uleb(depth);
  };
  while (k < tokens.length) {
    const op = tokens[k++];
    if (op === 'block' || op === 'loop' || op === 'if') {
      const name = tokens[k]?.startsWith('$') ? tokens[k++] : null;
      labels.push(name);
      out.push(op === 'block' ? 0x02 : op === 'loop' ? 0x03 : 0x04, 0x40);
    } else if (op === 'else') {
      out.push(0x05);
    } else if (op === 'end') {
      if (labels.pop() === undefined) throw new Error(`wasm-asm ${fn.name}: unbalanced end`);
      out.push(0x0b);
    } else if (op === 'call') {
      const t = next('a function name');
      const i = functions.get(t.replace(/^\$/, ''));
      if (i == null) throw new Error(`wasm-asm ${fn.name}: unknown function ${t}`);
      out.push(0x10, ...uleb(i));
    } else if (op === 'br' || op === 'br_if') {
      out.push(op === 'br' ? 0x0c : 0x0d, ...label());
    } else if (op === 'local.get' || op === 'local.set' || op === 'local.tee') {
      out.push({ 'local.get': 0x20, 'local.set': 0x21, 'local.tee': 0x22 }[op], ...local());
    } else if (op === 'i32.const') {
      out.push(0x41, ...sleb(Number(next('a number')) | 0));
    } else if (op === 'f32.const') {
      const b = new Uint8Array(new Float32Array([Number(next('a number'))]).buffer);
      out.push(0x43, ...b);
    } else if (op === 'v128.const') {
      const kind = next('i32x4 or f32x4');
      const lanes = [0, 1, 2, 3].map(() => Number(next('a lane value')));
      const b = new Uint8Array((kind === 'f32x4' ? new Float32Array(lanes) : new Int32Array(lanes)).buffer);
      out.push(...simd(0x0c), ...b);
    } else if (MEM[op]) {
      let offset = 0;
      if (tokens[k]?.startsWith('offset=')) offset = Number(tokens[k++].slice(7));
      out.push(...MEM[op].op, ...uleb(MEM[op].align), ...uleb(offset));
    } else if (LANE[op]) {
      out.push(...LANE[op], Number(next('a lane index')));
    } else if (OPS[op]) {
      out.push(...OPS[op]);
    } else {
      throw new Error(`wasm-asm ${fn.name}: unknown instruction '${op}'`);
    }
  }
  if (labels.length !== 0) throw new Error(`wasm-asm ${fn.name}: ${labels.length} unclosed block(s)`);
  // Locals: one (count, type) group per declared local, in order.
  const locals = vec(fn.locals.map(([, t]) => [1, VALTYPE[t]]));
  const code = [...locals, ...out, 0x0b];
  return [...uleb(code.length), ...code];
}

/** Assembles a module importing `env.memory` (shared or not) and exporting the functions. */
export function assemble(fns: AsmFunction[], opts: { sharedMemory: boolean }): Uint8Array {
  const types = fns.map((f) => [0x60, ...vec(f.params.map(([, t]) => [VALTYPE[t]])), 0x00]);
  // Memory limits: flags 0x00 = min only; 0x03 = shared with a maximum (shared memories need one).
  const limits = opts.sharedMemory ? [0x03, ...uleb(1), ...uleb(65536)] : [0x00, ...uleb(1)];
  const imports = vec([[...str('env'), ...str('memory'), 0x02, ...limits]]);
  const funcs = vec(fns.map((_, i) => uleb(i)));
  const exports = vec(fns.map((f, i) => [...str(f.name), 0x00, ...uleb(i)]));
  const functions = new Map(fns.map((f, i) => [f.name, i]));
  if (functions.size !== fns.length) throw new Error('wasm-asm: duplicate function name');
  const code = vec(fns.map((f) => assembleBody(f, functions)));
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...section(2, imports),
    ...section(3, funcs),
    ...section(7, exports),
    ...section(10, code),
  ]);
}
