/**
 * Float64 reference loops for the cases the cpu backend cannot check: tfjs's cpu kernels ignore
 * dilations in the depthwise gradients and have no dilations attribute in Conv2DBackpropFilter.
 */
export interface Geometry {
  n: number;
  h: number;
  w: number;
  c: number;
  fh: number;
  fw: number;
  oh: number;
  ow: number;
  stride: number;
  dil: number;
  top: number;
  left: number;
}

/** dW[a,b,ci,co] for a regular conv (cout output channels). */
export function conv2dFilterGradRef(g: Geometry, cout: number, x: ArrayLike<number>, dy: ArrayLike<number>): Float64Array {
  const out = new Float64Array(g.fh * g.fw * g.c * cout);
  for (let n = 0; n < g.n; n++)
    for (let i = 0; i < g.oh; i++)
      for (let j = 0; j < g.ow; j++)
        for (let a = 0; a < g.fh; a++)
          for (let b = 0; b < g.fw; b++) {
            const r = i * g.stride + a * g.dil - g.top;
            const q = j * g.stride + b * g.dil - g.left;
            if (r < 0 || r >= g.h || q < 0 || q >= g.w) continue;
            for (let ci = 0; ci < g.c; ci++)
              for (let co = 0; co < cout; co++)
                out[((a * g.fw + b) * g.c + ci) * cout + co] +=
                  x[((n * g.h + r) * g.w + q) * g.c + ci] * dy[((n * g.oh + i) * g.ow + j) * cout + co];
          }
  return out;
}

/** dW[a,b,c,m] for a depthwise conv with channel multiplier m. */
export function depthwiseFilterGradRef(g: Geometry, mult: number, x: ArrayLike<number>, dy: ArrayLike<number>): Float64Array {
  const cm = g.c * mult;
  const out = new Float64Array(g.fh * g.fw * cm);
  for (let n = 0; n < g.n; n++)
    for (let i = 0; i < g.oh; i++)
      for (let j = 0; j < g.ow; j++)
        for (let a = 0; a < g.fh; a++)
          for (let b = 0; b < g.fw; b++) {
            const r = i * g.stride + a * g.dil - g.top;
            const q = j * g.stride + b * g.dil - g.left;
            if (r < 0 || r >= g.h || q < 0 || q >= g.w) continue;
            for (let k = 0; k < cm; k++)
              out[(a * g.fw + b) * cm + k] +=
                x[((n * g.h + r) * g.w + q) * g.c + Math.floor(k / mult)] * dy[((n * g.oh + i) * g.ow + j) * cm + k];
          }
  return out;
}

/** dx[n,h,w,c] for a depthwise conv with channel multiplier m. */
export function depthwiseInputGradRef(g: Geometry, mult: number, dy: ArrayLike<number>, f: ArrayLike<number>): Float64Array {
  const cm = g.c * mult;
  const out = new Float64Array(g.n * g.h * g.w * g.c);
  for (let n = 0; n < g.n; n++)
    for (let i = 0; i < g.oh; i++)
      for (let j = 0; j < g.ow; j++)
        for (let a = 0; a < g.fh; a++)
          for (let b = 0; b < g.fw; b++) {
            const r = i * g.stride + a * g.dil - g.top;
            const q = j * g.stride + b * g.dil - g.left;
            if (r < 0 || r >= g.h || q < 0 || q >= g.w) continue;
            for (let k = 0; k < cm; k++)
              out[((n * g.h + r) * g.w + q) * g.c + Math.floor(k / mult)] +=
                dy[((n * g.oh + i) * g.ow + j) * cm + k] * f[(a * g.fw + b) * cm + k];
          }
  return out;
}

/** dx[n,h,w,ci] for a regular conv (filter [fh,fw,c,cout]). */
export function conv2dInputGradRef(g: Geometry, cout: number, dy: ArrayLike<number>, f: ArrayLike<number>): Float64Array {
  const out = new Float64Array(g.n * g.h * g.w * g.c);
  for (let n = 0; n < g.n; n++)
    for (let i = 0; i < g.oh; i++)
      for (let j = 0; j < g.ow; j++)
        for (let a = 0; a < g.fh; a++)
          for (let b = 0; b < g.fw; b++) {
            const r = i * g.stride + a * g.dil - g.top;
            const q = j * g.stride + b * g.dil - g.left;
            if (r < 0 || r >= g.h || q < 0 || q >= g.w) continue;
            for (let ci = 0; ci < g.c; ci++)
              for (let co = 0; co < cout; co++)
                out[((n * g.h + r) * g.w + q) * g.c + ci] +=
                  dy[((n * g.oh + i) * g.ow + j) * cout + co] * f[((a * g.fw + b) * g.c + ci) * cout + co];
          }
  return out;
}
