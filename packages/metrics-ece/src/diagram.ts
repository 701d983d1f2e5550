import type { BinStat, CalibrationResult } from '@tfkd/kd-core';

export interface DiagramOptions {
  title?: string;
  /** Pixel size of the whole image. Defaults 480 × 520. */
  width?: number;
  height?: number;
}

const M = { left: 64, right: 20, top: 44, bottom: 84 };

/**
 * A reliability diagram as a standalone SVG string (no dependency): one bar per equal-width bin at
 * the height of its accuracy, the gap between accuracy and mean confidence shaded, the diagonal of
 * perfect calibration, the sample count of each bin written below its bar, axis labels, a title and
 * the ECE (and MCE) in the top-left corner. Empty bins have no bar and count 0.
 */
export function reliabilityDiagramSvg(result: Pick<CalibrationResult, 'bins' | 'ece' | 'mce' | 'n'>, opts: DiagramOptions = {}): string {
  const width = opts.width ?? 480;
  const height = opts.height ?? 520;
  const title = opts.title ?? 'Reliability diagram';
  const pw = width - M.left - M.right;
  const ph = height - M.top - M.bottom;
  const x = (v: number) => M.left + v * pw;
  const y = (v: number) => M.top + (1 - v) * ph;
  const r = (v: number) => v.toFixed(2);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${r(width / 2)}" y="26" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(title)}</text>`,
    `<rect x="${M.left}" y="${M.top}" width="${r(pw)}" height="${r(ph)}" fill="#f7f7f7" stroke="#cccccc"/>`,
  );
  for (const t of [0, 0.2, 0.4, 0.6, 0.8, 1]) {
    out.push(
      `<line x1="${r(x(t))}" y1="${r(y(0))}" x2="${r(x(t))}" y2="${r(y(0) + 4)}" stroke="#333333"/>`,
      `<text x="${r(x(t))}" y="${r(y(0) + 32)}" text-anchor="middle" font-size="11">${t.toFixed(1)}</text>`,
      `<line x1="${r(x(0) - 4)}" y1="${r(y(t))}" x2="${r(x(0))}" y2="${r(y(t))}" stroke="#333333"/>`,
      `<text x="${r(x(0) - 7)}" y="${r(y(t) + 4)}" text-anchor="end" font-size="11">${t.toFixed(1)}</text>`,
    );
  }
  out.push(`<g class="bars">`);
  for (const b of result.bins) if (b.count > 0) out.push(bar(b, x, y, r));
  out.push(`</g>`, `<g class="gaps">`);
  for (const b of result.bins) if (b.count > 0) out.push(gap(b, x, y, r));
  out.push(`</g>`);
  out.push(`<line x1="${r(x(0))}" y1="${r(y(0))}" x2="${r(x(1))}" y2="${r(y(1))}" stroke="#555555" stroke-dasharray="5,4"/>`);
  out.push(`<g class="counts" font-size="9" fill="#555555" text-anchor="middle">`);
  for (const b of result.bins) {
    out.push(`<text x="${r(x((b.lo + b.hi) / 2))}" y="${r(y(0) + 15)}">${formatCount(b.count)}</text>`);
  }
  out.push(`</g>`);
  out.push(
    `<text x="${r(x(0) - 7)}" y="${r(y(0) + 15)}" text-anchor="end" font-size="9" fill="#555555">n</text>`,
    `<text x="${r(x(0.5))}" y="${r(height - 22)}" text-anchor="middle" font-size="13">Confidence (max softmax)</text>`,
    `<text x="18" y="${r(y(0.5))}" text-anchor="middle" font-size="13" transform="rotate(-90 18 ${r(y(0.5))})">Accuracy</text>`,
    `<g class="summary" font-size="12">`,
    `<text x="${r(x(0) + 8)}" y="${r(y(1) + 18)}">ECE = ${percent(result.ece)}</text>`,
    `<text x="${r(x(0) + 8)}" y="${r(y(1) + 34)}">MCE = ${percent(result.mce)}</text>`,
    `<text x="${r(x(0) + 8)}" y="${r(y(1) + 50)}">n = ${result.n}</text>`,
    `</g>`,
    legend(x(0) + 8, y(1) + 60),
    `</svg>`,
  );
  return out.join('\n') + '\n';
}

/** A Vega-Lite spec as plain JSON (no dependency here: `kd` renders it with vega, a page with vega-embed). */
export type VegaLiteSpec = Record<string, unknown>;

/**
 * The same reliability diagram as a Vega-Lite spec, for rendering through a charting library (the
 * CLI's run folders and `kd report`): bars at each non-empty bin's accuracy, the gap to its mean
 * confidence shaded, the dashed diagonal, each bin's count under the axis, ECE / MCE / n in the
 * top-left corner and the two-entry legend below them. `reliabilityDiagramSvg` draws the same by hand,
 * with no dependency, for the `metric/calibration` plugin's per-epoch files.
 */
export function reliabilityDiagramSpec(result: Pick<CalibrationResult, 'bins' | 'ece' | 'mce' | 'n'>, opts: DiagramOptions = {}): VegaLiteSpec {
  const width = opts.width ?? 480;
  const height = opts.height ?? 520;
  const bins = result.bins.map((b) => ({
    lo: b.lo,
    hi: b.hi,
    mid: (b.lo + b.hi) / 2,
    accuracy: b.accuracy,
    confidence: b.confidence,
    top: Math.max(b.accuracy, b.confidence),
    bottom: Math.min(b.accuracy, b.confidence),
    count: b.count,
    label: formatCount(b.count),
  }));
  const filled = bins.filter((b) => b.count > 0);
  const ticks = [0, 0.2, 0.4, 0.6, 0.8, 1];
  const axis = (title: string, extra: Record<string, unknown> = {}) => ({ title, values: ticks, format: '.1f', grid: false, tickSize: 4, titleFontSize: 13, titleFontWeight: 'normal', labelFontSize: 11, ...extra });
  const x = { type: 'quantitative', scale: { domain: [0, 1], nice: false, zero: false } };
  const y = { type: 'quantitative', scale: { domain: [0, 1], nice: false, zero: false } };
  const kinds = { domain: ['Accuracy', 'Gap to confidence'], range: ['#4c72b0', '#dd4444'] };
  // a layer drawing one constant text has one empty datum (without data it would draw nothing)
  const one = { values: [{}] };
  const corner = (dy: number, text: string) => ({
    data: one,
    mark: { type: 'text', align: 'left', baseline: 'alphabetic', dx: 8, dy, fontSize: 12 },
    encoding: { x: { datum: 0, ...x }, y: { datum: 1, ...y }, text: { value: text } },
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: opts.title ?? 'Reliability diagram', fontSize: 16, anchor: 'middle' },
    background: '#ffffff',
    width: width - M.left - M.right,
    height: height - M.top - M.bottom,
    padding: { left: 8, right: M.right, top: 10, bottom: 8 },
    config: { font: 'sans-serif', view: { fill: '#f7f7f7', stroke: '#cccccc' } },
    layer: [
      {
        data: { values: filled },
        mark: { type: 'rect', stroke: '#2b4a80' },
        encoding: {
          x: { field: 'lo', ...x, axis: axis('Confidence (max softmax)', { labelPadding: 20, titlePadding: 10 }) },
          x2: { field: 'hi' },
          y: { field: 'accuracy', ...y, axis: axis('Accuracy') },
          y2: { datum: 0 },
          color: { datum: 'Accuracy', scale: kinds, legend: { title: null, orient: 'none', legendX: 8, legendY: 58, symbolType: 'square', symbolSize: 140, labelFontSize: 11, rowPadding: 6 } },
        },
      },
      {
        data: { values: filled },
        mark: { type: 'rect', fillOpacity: 0.35, stroke: '#cc3333' },
        encoding: { x: { field: 'lo', ...x }, x2: { field: 'hi' }, y: { field: 'top', ...y }, y2: { field: 'bottom' }, color: { datum: 'Gap to confidence' } },
      },
      {
        data: { values: [{ c: 0, a: 0 }, { c: 1, a: 1 }] },
        mark: { type: 'line', color: '#555555', strokeDash: [5, 4], strokeWidth: 1 },
        encoding: { x: { field: 'c', ...x }, y: { field: 'a', ...y } },
      },
      {
        data: { values: bins },
        mark: { type: 'text', dy: 12, baseline: 'middle', fontSize: 9, color: '#555555' },
        encoding: { x: { field: 'mid', ...x }, y: { datum: 0, ...y }, text: { field: 'label' } },
      },
      {
        data: one,
        mark: { type: 'text', align: 'right', dx: -7, dy: 12, baseline: 'middle', fontSize: 9, color: '#555555' },
        encoding: { x: { datum: 0, ...x }, y: { datum: 0, ...y }, text: { value: 'n' } },
      },
      corner(18, `ECE = ${percent(result.ece)}`),
      corner(34, `MCE = ${percent(result.mce)}`),
      corner(50, `n = ${result.n}`),
    ],
  };
}

type Scale = (v: number) => number;

function bar(b: BinStat, x: Scale, y: Scale, r: (v: number) => string): string {
  return `<rect x="${r(x(b.lo))}" y="${r(y(b.accuracy))}" width="${r(x(b.hi) - x(b.lo))}" height="${r(y(0) - y(b.accuracy))}" fill="#4c72b0" stroke="#2b4a80"/>`;
}

function gap(b: BinStat, x: Scale, y: Scale, r: (v: number) => string): string {
  const top = Math.max(b.accuracy, b.confidence);
  const bottom = Math.min(b.accuracy, b.confidence);
  return `<rect x="${r(x(b.lo))}" y="${r(y(top))}" width="${r(x(b.hi) - x(b.lo))}" height="${r(y(bottom) - y(top))}" fill="#dd4444" fill-opacity="0.35" stroke="#cc3333"/>`;
}

function legend(lx: number, ly: number): string {
  return [
    `<g class="legend" font-size="11">`,
    `<rect x="${lx.toFixed(2)}" y="${ly.toFixed(2)}" width="12" height="12" fill="#4c72b0"/>`,
    `<text x="${(lx + 17).toFixed(2)}" y="${(ly + 10).toFixed(2)}">Accuracy</text>`,
    `<rect x="${lx.toFixed(2)}" y="${(ly + 18).toFixed(2)}" width="12" height="12" fill="#dd4444" fill-opacity="0.35" stroke="#cc3333"/>`,
    `<text x="${(lx + 17).toFixed(2)}" y="${(ly + 28).toFixed(2)}">Gap to confidence</text>`,
    `</g>`,
  ].join('\n');
}

function percent(v: number): string {
  return Number.isFinite(v) ? `${(100 * v).toFixed(2)}%` : 'n/a';
}

/** 1234 → "1234", 12345 → "12.3k": counts must fit under a bar. */
export function formatCount(c: number): string {
  if (c < 10000) return String(c);
  if (c < 1e6) return `${(c / 1000).toFixed(c < 1e5 ? 1 : 0)}k`;
  return `${(c / 1e6).toFixed(1)}M`;
}

export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] as string);
}
