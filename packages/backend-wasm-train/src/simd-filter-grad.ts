/**
 * The wasm SIMD loops of Conv2DBackpropFilter (see conv2d-backprop-filter.ts), generated as text for
 * wasm-asm.ts: a register-blocked GEMM that reads x and dy in place on the heap (no im2col, no
 * transposes) and accumulates into dW.
 *
 * For one filter tap (a, b) and a block of output pixels p (images × rows × columns, each level with
 * its own byte stride), `dwTap` adds
 *
 *   dW[a, b, ci, co] += Σ_p x[p's input pixel for tap (a, b), ci] · dy[p, co]
 *
 * for every ci < cin, co < cout. It walks dW in tiles of 4 input channels × 8 output channels
 * (`dwTile4x8`: 8 f32x4 accumulators; per pixel two f32x4 loads of dy, four broadcast loads of x,
 * 8 mul + 8 add), then 4 × 4 and 4 × 1 (scalar) tiles for the last cout mod 8 channels, and 1-row
 * tiles for the last cin mod 4. Each tile starts from zero, sums the block's pixels in order and adds
 * the block sum to dW once: a two-level float32 summation (block, then blocks). The block is chosen
 * by the caller so that its x and dy stay in the L1/L2 cache while every tile sweeps it — the blocking
 * of the reduction (N·OH·OW) dimension that XNNPACK's GEMM, fed dy as a filter, does not do.
 */
import type { AsmFunction } from './wasm-asm';

const I32 = 'i32' as const;

/** Parameters of a tile (byte addresses and byte strides; counts ≥ 1). */
const TILE_PARAMS = ['x', 'dy', 'dw', 'ldw', 'nImg', 'xImg', 'dyImg', 'nRows', 'xRow', 'dyRow', 'nCols', 'xCol', 'dyCol'];

type Rows = 1 | 4;
type Cols = 1 | 4 | 8;

const tileName = (mr: Rows, nr: Cols): string => `dwTile${mr}x${nr}`;

/**
 * dw[r, c] += Σ_{img, row, col} x[r] · dy[c] for r < mr input channels and c < nr output channels,
 * x advancing by xCol/xRow/xImg bytes and dy by dyCol/dyRow/dyImg bytes; dw rows `ldw` bytes apart.
 */
function tile(mr: Rows, nr: Cols): AsmFunction {
  const simd = nr >= 4;
  const nv = simd ? nr / 4 : 1;
  const acc = (r: number, c: number): string => `a${r}_${c}`;
  const accs: string[] = [];
  for (let r = 0; r < mr; r++) for (let c = 0; c < nv; c++) accs.push(acc(r, c));
  const T = simd ? ('v128' as const) : ('f32' as const);
  const mul = simd ? 'f32x4.mul' : 'f32.mul';
  const add = simd ? 'f32x4.add' : 'f32.add';
  const load = simd ? 'v128.load' : 'f32.load';
  const store = simd ? 'v128.store' : 'f32.store';
  const zero = simd ? 'v128.const i32x4 0 0 0 0' : 'f32.const 0';
  const step = (ptr: string, by: string): string => `local.get $${ptr} local.get $${by} i32.add local.set $${ptr}`;
  const pixel = [
    ...Array.from({ length: nv }, (_, c) => `local.get $dp ${load} offset=${16 * c} local.set $d${c}`),
    ...Array.from({ length: mr }, (_, r) => [
      `local.get $xp ${simd ? 'v128.load32_splat' : 'f32.load'} offset=${4 * r} local.set $s`,
      ...Array.from({ length: nv }, (_, c) => `local.get $${acc(r, c)} local.get $s local.get $d${c} ${mul} ${add} local.set $${acc(r, c)}`),
    ]).flat(),
  ];
  const writeBack = Array.from({ length: mr }, (_, r) => [
    `local.get $dw local.get $ldw i32.const ${r} i32.mul i32.add local.set $dwr`,
    ...Array.from(
      { length: nv },
      (_, c) => `local.get $dwr local.get $dwr ${load} offset=${16 * c} local.get $${acc(r, c)} ${add} ${store} offset=${16 * c}`,
    ),
  ]).flat();
  return {
    name: tileName(mr, nr),
    params: TILE_PARAMS.map((p) => [p, I32]),
    locals: [
      ...['xi', 'di', 'xr', 'dr', 'xp', 'dp', 'img', 'row', 'k', 'dwr'].map((l) => [l, I32] as [string, 'i32']),
      ...accs.map((a) => [a, T] as [string, typeof T]),
      ...Array.from({ length: nv }, (_, c) => [`d${c}`, T] as [string, typeof T]),
      ['s', T],
    ],
    // Do-while loops: the caller guarantees nImg, nRows, nCols ≥ 1.
    body: `
    ${accs.map((a) => `${zero} local.set $${a}`).join('\n    ')}
    local.get $x local.set $xi
    local.get $dy local.set $di
    local.get $nImg local.set $img
    loop $LI
      local.get $xi local.set $xr
      local.get $di local.set $dr
      local.get $nRows local.set $row
      loop $LR
        local.get $xr local.set $xp
        local.get $dr local.set $dp
        local.get $nCols local.set $k
        loop $LC
          ${pixel.join('\n          ')}
          ${step('xp', 'xCol')}
          ${step('dp', 'dyCol')}
          local.get $k i32.const 1 i32.sub local.tee $k br_if $LC
        end
        ${step('xr', 'xRow')}
        ${step('dr', 'dyRow')}
        local.get $row i32.const 1 i32.sub local.tee $row br_if $LR
      end
      ${step('xi', 'xImg')}
      ${step('di', 'dyImg')}
      local.get $img i32.const 1 i32.sub local.tee $img br_if $LI
    end
    ${writeBack.join('\n    ')}`,
  };
}

/** Pushes a tile's arguments for input channel $ci and output channel $co, and calls it. */
const callTile = (mr: Rows, nr: Cols): string => `
      local.get $x local.get $ci i32.const 4 i32.mul i32.add
      local.get $dy local.get $co i32.const 4 i32.mul i32.add
      local.get $dw local.get $ci local.get $ldw i32.mul i32.add local.get $co i32.const 4 i32.mul i32.add
      local.get $ldw
      ${TILE_PARAMS.slice(4).map((p) => `local.get $${p}`).join(' ')}
      call $${tileName(mr, nr)}`;

/** The output-channel loops for one row block of `mr` input channels: tiles of 8, then 4, then 1. */
const coLoops = (mr: Rows): string =>
  `
    i32.const 0 local.set $co` +
  ([8, 4, 1] as Cols[])
    .map(
      (nr) => `
    block $N${nr}m${mr} loop $LN${nr}m${mr}
      local.get $co i32.const ${nr} i32.add local.get $cout i32.gt_s br_if $N${nr}m${mr}
      ${callTile(mr, nr)}
      local.get $co i32.const ${nr} i32.add local.set $co
      br $LN${nr}m${mr}
    end end`,
    )
    .join('');

const DW_TAP: AsmFunction = {
  name: 'dwTap',
  params: ['x', 'dy', 'dw', 'cin', 'cout', ...TILE_PARAMS.slice(4)].map((p) => [p, I32]),
  locals: [
    ['ldw', I32],
    ['ci', I32],
    ['co', I32],
  ],
  body: `
    local.get $cout i32.const 4 i32.mul local.set $ldw
    i32.const 0 local.set $ci
    block $M4 loop $LM4
      local.get $ci i32.const 4 i32.add local.get $cin i32.gt_s br_if $M4
      ${coLoops(4)}
      local.get $ci i32.const 4 i32.add local.set $ci
      br $LM4
    end end
    block $M1 loop $LM1
      local.get $ci local.get $cin i32.ge_s br_if $M1
      ${coLoops(1)}
      local.get $ci i32.const 1 i32.add local.set $ci
      br $LM1
    end end`,
};

/** The functions to assemble (the tiles first: `dwTap` calls them by name). */
export const FILTER_GRAD_FUNCTIONS: readonly AsmFunction[] = [
  ...([4, 1] as Rows[]).flatMap((mr) => ([8, 4, 1] as Cols[]).map((nr) => tile(mr, nr))),
  DW_TAP,
];
