/**
 * Hand-written WebAssembly SIMD loops that run directly on the tfjs wasm backend's heap: a second,
 * small module instantiated on the *same* WebAssembly.Memory as tfjs-backend-wasm (its export
 * `memory` in the single-threaded builds; in the threaded build the shared memory captured while the
 * backend initialised, see threads.ts), so tensors are read and written in place by address, without
 * copies. Source below in the text format (assembled by wasm-asm.ts at first use, ~1 KB).
 *
 * - `maxPoolGrad`: MaxPoolGrad over 4 channels at a time (f32x4 compare + bitselect for the running
 *   maximum and its address; ties keep the first position, NaN never wins: the cpu backend's rule),
 *   then dx[argmax] += dy per lane. Channels beyond the last multiple of 4 are left to the JS loop.
 * - `sumRows`: a float32 reduction over leading axes ([rows, cols] → [cols], every bias gradient) with
 *   float64 accumulators, 2 columns at a time (f64x2): the JS loop of sum.ts in the same order, so
 *   the same bits.
 * - `reluGrad`: ReLU's gradient dy·step(x) in one pass (step(x) = 1 for x > 0, NaN for NaN, else 0 —
 *   tfjs's Step), the product as tfjs's Multiply computes it.
 * - `adam`: the fused Adam update (kd-core `adamLoop`) 4 floats at a time: the same float32
 *   operations in the same order (f32x4 mul/add/div/sqrt are IEEE, like tfjs's kernels), so the
 *   same bits; the JS loop does the last size mod 4 elements.
 * - `dwTap`: Conv2DBackpropFilter's register-blocked GEMM for one filter tap over a block of output
 *   pixels, x and dy read in place (simd-filter-grad.ts). It has no JS loop: without SIMD the kernel
 *   takes its XNNPACK composition instead (float32 sums in another order).
 *
 * Returns null — callers then use their JS loops — where wasm SIMD is not available, the backend's
 * memory cannot be reached, or the loops are switched off (`setSimdKernels(false)`).
 */
import { assemble, type AsmFunction } from './wasm-asm';
import { FILTER_GRAD_FUNCTIONS } from './simd-filter-grad';
import { capturedSharedMemory } from './threads';
import { wasmApi, type WasmMemory } from './wasm-api';

export interface SimdKernels {
  /** Byte addresses on the heap; `c4` channels (a multiple of 4, ≤ c) are done here; dx must be zeroed. */
  maxPoolGrad(
    x: number, dy: number, dx: number, n: number, h: number, w: number, c: number, oh: number, ow: number,
    sh: number, sw: number, fh: number, fw: number, top: number, left: number, c4: number,
  ): void;
  /** acc[c] += src[r, c] (float64 accumulators at `acc`, 8-byte aligned) for rows [0, rows) and columns [0, cols2), cols2 even ≤ cols. */
  sumRows(src: number, rows: number, cols: number, cols2: number, acc: number): void;
  /** out = dy·step(x) over `bytes` bytes (a multiple of 16). */
  reluGrad(dy: number, x: number, out: number, bytes: number): void;
  /** Adam on `bytes` bytes (a multiple of 16) of p, m, v, g into pOut, mOut, vOut (byte addresses). */
  adam(
    p: number, m: number, v: number, g: number, pOut: number, mOut: number, vOut: number, bytes: number,
    beta1: number, beta2: number, oneMinusBeta1: number, oneMinusBeta2: number,
    oneMinusAccBeta1: number, oneMinusAccBeta2: number, epsilon: number, negLr: number,
  ): void;
  /**
   * dW[ci, co] += Σ x[ci]·dy[co] over nImg × nRows × nCols pixels for one filter tap (byte addresses
   * of the first pixel's x and dy and of the tap's dW [cin, cout]; byte strides per image, row,
   * column; counts ≥ 1). See simd-filter-grad.ts.
   */
  dwTap(
    x: number, dy: number, dw: number, cin: number, cout: number, nImg: number, xImg: number, dyImg: number,
    nRows: number, xRow: number, dyRow: number, nCols: number, xCol: number, dyCol: number,
  ): void;
}

const I32 = 'i32' as const;
const F32 = 'f32' as const;
const V128 = 'v128' as const;

/** One lane of the dx scatter: if where[L] >= 0, dx[where[L]] += dy[L]. */
const scatterLane = (l: number): string => `
        local.get $where i32x4.extract_lane ${l} local.tee $at i32.const 0 i32.ge_s
        if
          local.get $dx local.get $at i32.add
          local.get $dx local.get $at i32.add f32.load
          local.get $dyv f32x4.extract_lane ${l} f32.add
          f32.store
        end`;

const MAX_POOL_GRAD: AsmFunction = {
  name: 'maxPoolGrad',
  params: ['x', 'dy', 'dx', 'n', 'h', 'w', 'c', 'oh', 'ow', 'sh', 'sw', 'fh', 'fw', 'top', 'left', 'c4'].map((p) => [p, I32]),
  locals: [
    ...['pix', 'row', 'img', 'b', 'xb', 'i', 'j', 'd', 'r', 'q', 'r0', 'r1', 'c0', 'c1', 'dyp', 'off', 'rowoff', 'at'].map((l) => [l, I32] as [string, 'i32']),
    ...['best', 'where', 'v', 'msk', 'dyv', 'lanes', 'ninf', 'neg1'].map((l) => [l, V128] as [string, 'v128']),
  ],
  body: `
    local.get $c i32.const 4 i32.mul local.set $pix
    local.get $w local.get $pix i32.mul local.set $row
    local.get $h local.get $row i32.mul local.set $img
    v128.const i32x4 0 4 8 12 local.set $lanes
    f32.const -Infinity f32x4.splat local.set $ninf
    i32.const -1 i32x4.splat local.set $neg1
    local.get $dy local.set $dyp
    i32.const 0 local.set $b
    block $B loop $LB
      local.get $b local.get $n i32.ge_s br_if $B
      local.get $b local.get $img i32.mul local.set $xb
      i32.const 0 local.set $i
      block $I loop $LI
        local.get $i local.get $oh i32.ge_s br_if $I
        ;; window rows [r0, r1) = [max(0, i·sh − top), min(h, i·sh − top + fh))
        local.get $i local.get $sh i32.mul local.get $top i32.sub local.tee $r0
        local.get $fh i32.add local.set $r1
        local.get $r0 i32.const 0 local.get $r0 i32.const 0 i32.gt_s select local.set $r0
        local.get $r1 local.get $h local.get $r1 local.get $h i32.lt_s select local.set $r1
        i32.const 0 local.set $j
        block $J loop $LJ
          local.get $j local.get $ow i32.ge_s br_if $J
          local.get $j local.get $sw i32.mul local.get $left i32.sub local.tee $c0
          local.get $fw i32.add local.set $c1
          local.get $c0 i32.const 0 local.get $c0 i32.const 0 i32.gt_s select local.set $c0
          local.get $c1 local.get $w local.get $c1 local.get $w i32.lt_s select local.set $c1
          i32.const 0 local.set $d
          block $D loop $LD
            local.get $d local.get $c4 i32.ge_s br_if $D
            local.get $ninf local.set $best
            local.get $neg1 local.set $where
            local.get $r0 local.set $r
            block $R loop $LR
              local.get $r local.get $r1 i32.ge_s br_if $R
              local.get $xb local.get $r local.get $row i32.mul i32.add
              local.get $d i32.const 4 i32.mul i32.add local.set $rowoff
              local.get $c0 local.set $q
              block $Q loop $LQ
                local.get $q local.get $c1 i32.ge_s br_if $Q
                local.get $rowoff local.get $q local.get $pix i32.mul i32.add local.set $off
                local.get $x local.get $off i32.add v128.load local.tee $v
                local.get $best f32x4.gt local.set $msk
                local.get $v local.get $best local.get $msk v128.bitselect local.set $best
                local.get $off i32x4.splat local.get $lanes i32x4.add
                local.get $where local.get $msk v128.bitselect local.set $where
                local.get $q i32.const 1 i32.add local.set $q
                br $LQ
              end end
              local.get $r i32.const 1 i32.add local.set $r
              br $LR
            end end
            local.get $dyp local.get $d i32.const 4 i32.mul i32.add v128.load local.set $dyv
            ${[0, 1, 2, 3].map(scatterLane).join('\n')}
            local.get $d i32.const 4 i32.add local.set $d
            br $LD
          end end
          local.get $dyp local.get $pix i32.add local.set $dyp
          local.get $j i32.const 1 i32.add local.set $j
          br $LJ
        end end
        local.get $i i32.const 1 i32.add local.set $i
        br $LI
      end end
      local.get $b i32.const 1 i32.add local.set $b
      br $LB
    end end`,
};

const ADAM: AsmFunction = {
  name: 'adam',
  params: [
    ...['p', 'm', 'v', 'g', 'po', 'mo', 'vo', 'bytes'].map((p) => [p, I32] as [string, 'i32']),
    ...['b1', 'b2', 'ob1', 'ob2', 'oab1', 'oab2', 'eps', 'nlr'].map((p) => [p, F32] as [string, 'f32']),
  ],
  locals: [
    ['k', I32],
    ...['B1', 'B2', 'OB1', 'OB2', 'OAB1', 'OAB2', 'EPS', 'NLR', 'gv', 'nm', 'nv'].map((l) => [l, V128] as [string, 'v128']),
  ],
  body: `
    local.get $b1 f32x4.splat local.set $B1
    local.get $b2 f32x4.splat local.set $B2
    local.get $ob1 f32x4.splat local.set $OB1
    local.get $ob2 f32x4.splat local.set $OB2
    local.get $oab1 f32x4.splat local.set $OAB1
    local.get $oab2 f32x4.splat local.set $OAB2
    local.get $eps f32x4.splat local.set $EPS
    local.get $nlr f32x4.splat local.set $NLR
    i32.const 0 local.set $k
    block $E loop $L
      local.get $k local.get $bytes i32.ge_s br_if $E
      local.get $g local.get $k i32.add v128.load local.set $gv
      ;; m' = m·β₁ + g·(1−β₁)
      local.get $m local.get $k i32.add v128.load local.get $B1 f32x4.mul
      local.get $gv local.get $OB1 f32x4.mul f32x4.add local.set $nm
      ;; v' = v·β₂ + g²·(1−β₂)
      local.get $v local.get $k i32.add v128.load local.get $B2 f32x4.mul
      local.get $gv local.get $gv f32x4.mul local.get $OB2 f32x4.mul f32x4.add local.set $nv
      local.get $mo local.get $k i32.add local.get $nm v128.store
      local.get $vo local.get $k i32.add local.get $nv v128.store
      ;; p' = ((m'/(1−β₁ᵗ)) / (√(v'/(1−β₂ᵗ)) + ε))·(−lr) + p
      local.get $po local.get $k i32.add
      local.get $nm local.get $OAB1 f32x4.div
      local.get $nv local.get $OAB2 f32x4.div f32x4.sqrt local.get $EPS f32x4.add
      f32x4.div local.get $NLR f32x4.mul
      local.get $p local.get $k i32.add v128.load f32x4.add
      v128.store
      local.get $k i32.const 16 i32.add local.set $k
      br $L
    end end`,
};

const SUM_ROWS: AsmFunction = {
  name: 'sumRows',
  params: ['src', 'rows', 'cols', 'cols2', 'acc'].map((p) => [p, I32]),
  locals: [
    ['r', I32],
    ['q', I32],
    ['row', I32],
    ['a', I32],
  ],
  body: `
    i32.const 0 local.set $r
    block $R loop $LR
      local.get $r local.get $rows i32.ge_s br_if $R
      local.get $src local.get $r local.get $cols i32.mul i32.const 4 i32.mul i32.add local.set $row
      i32.const 0 local.set $q
      block $Q loop $LQ
        local.get $q local.get $cols2 i32.ge_s br_if $Q
        ;; acc[q..q+1] += (f64) src[r, q..q+1]
        local.get $acc local.get $q i32.const 8 i32.mul i32.add local.tee $a
        local.get $a v128.load
        local.get $row local.get $q i32.const 4 i32.mul i32.add v128.load64_zero f64x2.promote_low_f32x4
        f64x2.add
        v128.store
        local.get $q i32.const 2 i32.add local.set $q
        br $LQ
      end end
      local.get $r i32.const 1 i32.add local.set $r
      br $LR
    end end`,
};

const RELU_GRAD: AsmFunction = {
  name: 'reluGrad',
  params: ['dy', 'x', 'out', 'bytes'].map((p) => [p, I32]),
  locals: [
    ['k', I32],
    ['xv', V128],
    ['one', V128],
    ['zero', V128],
  ],
  body: `
    f32.const 1 f32x4.splat local.set $one
    f32.const 0 f32x4.splat local.set $zero
    i32.const 0 local.set $k
    block $E loop $L
      local.get $k local.get $bytes i32.ge_s br_if $E
      local.get $out local.get $k i32.add
      local.get $dy local.get $k i32.add v128.load
      ;; step(x): 1 where x > 0, x itself (NaN) where x != x, else 0
      local.get $x local.get $k i32.add v128.load local.set $xv
      local.get $xv
      local.get $one local.get $zero local.get $xv local.get $zero f32x4.gt v128.bitselect
      local.get $xv local.get $xv f32x4.ne v128.bitselect
      f32x4.mul
      v128.store
      local.get $k i32.const 16 i32.add local.set $k
      br $L
    end end`,
};

let enabled = true;
const instances = new WeakMap<WasmMemory, SimdKernels | null>();
const compiled = new Map<boolean, object | null>();

/** Switches the SIMD loops on or off (off: every caller takes its JS loop; for A/B measurements). */
export function setSimdKernels(on: boolean): void {
  enabled = on;
}
export function simdKernelsEnabled(): boolean {
  return enabled;
}

function moduleFor(shared: boolean): object | null {
  const wa = wasmApi();
  if (wa == null) return null;
  if (!compiled.has(shared)) {
    let mod: object | null = null;
    try {
      const bytes = assemble([MAX_POOL_GRAD, SUM_ROWS, RELU_GRAD, ADAM, ...FILTER_GRAD_FUNCTIONS], { sharedMemory: shared });
      mod = wa.validate(bytes) ? new wa.Module(bytes) : null;
    } catch {
      mod = null;
    }
    compiled.set(shared, mod);
  }
  return compiled.get(shared) ?? null;
}

/** The tfjs wasm module's memory: exported as `memory` by the single-threaded builds, captured at init for the threaded one. */
function heapMemory(backend: unknown): WasmMemory | null {
  const wa = wasmApi();
  const wasm = (backend as { wasm?: { asm?: { memory?: unknown }; wasmMemory?: unknown; HEAPU8?: Uint8Array } }).wasm;
  if (wa == null || wasm?.HEAPU8 == null) return null;
  for (const m of [wasm.asm?.memory, wasm.wasmMemory, capturedSharedMemory()]) {
    if (m instanceof wa.Memory && m.buffer === wasm.HEAPU8.buffer) return m;
  }
  return null;
}

/** The SIMD loops bound to this backend's heap, or null (use the JS loops). */
export function simdKernels(backend: unknown): SimdKernels | null {
  if (!enabled) return null;
  const wa = wasmApi();
  const memory = heapMemory(backend);
  if (wa == null || memory == null) return null;
  if (!instances.has(memory)) {
    let k: SimdKernels | null = null;
    const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
    const mod = moduleFor(shared);
    if (mod) {
      try {
        k = new wa.Instance(mod, { env: { memory } }).exports as unknown as SimdKernels;
      } catch {
        k = null;
      }
    }
    instances.set(memory, k);
  }
  return instances.get(memory) ?? null;
}
