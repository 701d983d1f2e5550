/** A small dependency-free SVG line chart for training curves. */
export interface Series {
  name: string;
  points: [number, number][];
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function panel(series: Series[], x0: number, y0: number, w: number, h: number, title: string, yLabel: string): string {
  const pts = series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y));
  if (pts.length === 0) return '';
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  const [xMin, xMax] = [Math.min(...xs), Math.max(...xs)];
  let [yMin, yMax] = [Math.min(...ys), Math.max(...ys)];
  if (yMax - yMin < 1e-9) [yMin, yMax] = [yMin - 0.5, yMax + 0.5];
  const pad = (yMax - yMin) * 0.05;
  yMin -= pad;
  yMax += pad;
  const sx = (x: number) => x0 + 50 + ((x - xMin) / Math.max(1e-9, xMax - xMin)) * (w - 60);
  const sy = (y: number) => y0 + h - 30 - ((y - yMin) / (yMax - yMin)) * (h - 60);
  const parts: string[] = [
    `<text x="${x0 + w / 2}" y="${y0 + 16}" text-anchor="middle" font-size="13">${esc(title)}</text>`,
    `<line x1="${x0 + 50}" y1="${y0 + h - 30}" x2="${x0 + w - 10}" y2="${y0 + h - 30}" stroke="#333"/>`,
    `<line x1="${x0 + 50}" y1="${y0 + 30}" x2="${x0 + 50}" y2="${y0 + h - 30}" stroke="#333"/>`,
    `<text x="${x0 + w / 2}" y="${y0 + h - 6}" text-anchor="middle" font-size="11">epoch</text>`,
    `<text x="${x0 + 12}" y="${y0 + h / 2}" text-anchor="middle" font-size="11" transform="rotate(-90 ${x0 + 12} ${y0 + h / 2})">${esc(yLabel)}</text>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const v = yMin + ((yMax - yMin) * i) / 4;
    parts.push(`<text x="${x0 + 46}" y="${sy(v) + 4}" text-anchor="end" font-size="10">${v.toFixed(3)}</text>`);
    parts.push(`<line x1="${x0 + 50}" y1="${sy(v)}" x2="${x0 + w - 10}" y2="${sy(v)}" stroke="#eee"/>`);
  }
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    const d = s.points.filter(([, y]) => Number.isFinite(y)).map(([x, y], j) => `${j ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    parts.push(`<path d="${d}" fill="none" stroke="${c}" stroke-width="2"/>`);
    parts.push(`<text x="${x0 + w - 12}" y="${y0 + 34 + 14 * i}" text-anchor="end" font-size="11" fill="${c}">${esc(s.name)}</text>`);
  });
  return parts.join('\n');
}

/** Two panels side by side: training loss and test accuracy per epoch. */
export function trainingCurvesSvg(loss: Series[], accuracy: Series[], title: string): string {
  const w = 420;
  const h = 300;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * w}" height="${h + 24}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${w}" y="16" text-anchor="middle" font-size="14" font-weight="bold">${esc(title)}</text>`,
    panel(loss, 0, 20, w, h, 'training loss', 'loss'),
    panel(accuracy, w, 20, w, h, 'test accuracy', 'accuracy'),
    '</svg>',
  ].join('\n');
}
