import type { LedgerSnapshot } from '@tfkd/kd-core';

/** Two-sided 95 % quantile of Student's t by degrees of freedom (1…30; 1.96 beyond). */
const T975 = [NaN, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042];
export const t975 = (df: number) => (df >= 1 && df <= 30 ? T975[df] : df > 30 ? 1.96 : NaN);

export function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}
/** Sample standard deviation (n − 1); NaN for one value. */
export function std(xs: readonly number[]): number {
  if (xs.length < 2) return NaN;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1));
}
/** Mean and its 95 % t-interval (NaN bounds below two values). */
export function interval(xs: readonly number[]): { mean: number; low: number; high: number; n: number } {
  const m = mean(xs);
  const h = (t975(xs.length - 1) * std(xs)) / Math.sqrt(xs.length);
  return { mean: m, low: m - h, high: m + h, n: xs.length };
}

/** What a finished cell contributes: its `metrics.json` (the parts the table reads). */
export interface CellMetrics {
  eval: Record<string, Record<string, number>>;
  ledger?: LedgerSnapshot;
  epochs?: number;
  wallSeconds?: number;
  backend?: { name: string };
}

export interface TableInput {
  name: string;
  metric: string;
  role?: string;
  rows: { label: string; axes: Record<string, string>; baseline: string | null }[];
  cells: { row: string; seed: number; id: string }[];
}

export interface TableRow {
  row: string;
  axes: Record<string, string>;
  entry: string;
  seeds: number[];
  /** The metric per seed, in `seeds` order. */
  values: number[];
  mean: number;
  std: number;
  /** Paired difference to the baseline row (same entry, seeds both have): mean and 95 % interval. */
  diff: { baseline: string; n: number; mean: number; low: number; high: number } | null;
  /** Calibration means (when the runs report them). */
  ece: number | null;
  nll: number | null;
  brier: number | null;
  teacherAccuracy: number | null;
  /** The teachers' value on the sweep's metric (the `teacher` role's evaluation before training; mAP for a detection sweep). */
  teacherMetric: number | null;
  /** Cost columns from the ledger (means over seeds). */
  cost: { teacherGflops: number; teacherImages: number; teacherCacheHits: number; studentImages: number; trainSecondsPerEpoch: number | null; wallSeconds: number | null };
  missing: number;
}

export interface SweepTable {
  name: string;
  metric: string;
  rows: TableRow[];
}

/** Per row and entry: mean ± std over seeds, each seed's value, the paired difference to the baseline, cost. */
export function sweepTable(input: TableInput, metricsOf: (cellId: string) => CellMetrics | null): SweepTable {
  const rows: TableRow[] = [];
  const byRow = new Map<string, { seed: number; m: CellMetrics | null }[]>();
  for (const c of input.cells) byRow.set(c.row, [...(byRow.get(c.row) ?? []), { seed: c.seed, m: metricsOf(c.id) }]);
  const perEntry = (label: string, entry: string) => new Map((byRow.get(label) ?? []).filter((x) => x.m?.eval[entry]?.[input.metric] !== undefined).map((x) => [x.seed, x.m as CellMetrics]));
  for (const r of input.rows) {
    const runs = byRow.get(r.label) ?? [];
    const done = runs.filter((x) => x.m !== null).map((x) => x.m as CellMetrics);
    if (done.length === 0) continue;
    const entries = input.role ? [input.role] : Object.keys(done[0].eval).filter((e) => e !== 'teacher' && !e.startsWith('teacher.'));
    for (const entry of entries) {
      const got = perEntry(r.label, entry);
      const seeds = [...got.keys()].sort((a, b) => a - b);
      if (seeds.length === 0) continue;
      const ms = seeds.map((s) => got.get(s) as CellMetrics);
      const values = ms.map((m) => m.eval[entry][input.metric]);
      const avg = (f: (m: CellMetrics) => number | undefined) => {
        const xs = ms.map(f).filter((x): x is number => typeof x === 'number');
        return xs.length ? mean(xs) : null;
      };
      let diff: TableRow['diff'] = null;
      if (r.baseline && r.baseline !== r.label) {
        // Same entry in the baseline row; else (a DML peer, an ensemble against a single student) its `student`.
        let baseEntry = entry;
        let base = perEntry(r.baseline, entry);
        if (base.size === 0 && entry !== 'student') {
          baseEntry = 'student';
          base = perEntry(r.baseline, baseEntry);
        }
        const paired = seeds.filter((s) => base.has(s));
        if (paired.length > 0) {
          const d = paired.map((s) => (got.get(s) as CellMetrics).eval[entry][input.metric] - (base.get(s) as CellMetrics).eval[baseEntry][input.metric]);
          diff = { baseline: baseEntry === entry ? r.baseline : `${r.baseline} ${baseEntry}`, ...interval(d) };
        }
      }
      const teacher = (m: CellMetrics) => m.ledger?.roles.teacher;
      rows.push({
        row: r.label,
        axes: r.axes,
        entry,
        seeds,
        values,
        mean: mean(values),
        std: std(values),
        diff,
        ece: avg((m) => m.eval[entry].ece),
        nll: avg((m) => m.eval[entry].nll),
        brier: avg((m) => m.eval[entry].brier),
        teacherAccuracy: avg((m) => m.eval.teacher?.accuracy),
        teacherMetric: avg((m) => m.eval.teacher?.[input.metric]),
        cost: {
          teacherGflops: avg((m) => (teacher(m)?.forwardFlops ?? 0) / 1e9) ?? 0,
          teacherImages: avg((m) => teacher(m)?.forwardImages ?? 0) ?? 0,
          teacherCacheHits: avg((m) => teacher(m)?.cacheHits ?? 0) ?? 0,
          studentImages: avg((m) => m.ledger?.roles[entry]?.forwardImages ?? m.ledger?.roles.student?.forwardImages) ?? 0,
          trainSecondsPerEpoch: avg((m) => (m.ledger && m.epochs ? Object.values(m.ledger.phases).reduce((a, p) => a + p.seconds, 0) / m.epochs : undefined)),
          wallSeconds: avg((m) => m.wallSeconds),
        },
        missing: runs.length - seeds.length,
      });
    }
  }
  return { name: input.name, metric: input.metric, rows };
}

const percent = (metric: string) => metric === 'accuracy';
function num(x: number | null, digits: number): string {
  return x === null || Number.isNaN(x) ? '–' : x.toFixed(digits);
}

/** The table as Markdown (what docs/results.md holds). */
export function tableMarkdown(t: SweepTable): string {
  const pc = percent(t.metric);
  const s = pc ? 100 : 1;
  const d = pc ? 2 : 4;
  const head = `| row | entry | seeds | ${t.metric}${pc ? ' %' : ''} | per seed | Δ vs baseline [95 % CI] | ECE | NLL | Brier | ${pc ? 'teacher acc %' : `teacher ${t.metric}`} | teacher GFLOPs | student images | train s/epoch | wall s/run |`;
  const lines = [head, `|${'---|'.repeat(14)}`];
  for (const r of t.rows) {
    const pm = Number.isNaN(r.std) ? num(r.mean * s, d) : `${num(r.mean * s, d)} ± ${num(r.std * s, d)}`;
    const diff = r.diff ? `${r.diff.mean * s >= 0 ? '+' : ''}${num(r.diff.mean * s, d)} [${num(r.diff.low * s, d)}, ${num(r.diff.high * s, d)}] vs ${r.diff.baseline}` : '–';
    lines.push(
      `| ${r.row} | ${r.entry} | ${r.seeds.join(',')}${r.missing ? ` (${r.missing} missing)` : ''} | ${pm} | ${r.values.map((v) => num(v * s, d)).join(', ')} | ${diff} | ${num(r.ece, 4)} | ${num(r.nll, 4)} | ${num(r.brier, 4)} | ${num(r.teacherMetric === null ? null : r.teacherMetric * s, d)} | ${num(r.cost.teacherGflops, 1)} | ${num(r.cost.studentImages, 0)} | ${num(r.cost.trainSecondsPerEpoch, 1)} | ${num(r.cost.wallSeconds, 0)} |`,
    );
  }
  return lines.join('\n') + '\n';
}

export function tableCsv(t: SweepTable): string {
  const q = (v: unknown) => (typeof v === 'string' && /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v === null || v === undefined || Number.isNaN(v) ? '' : String(v));
  const cols = ['row', 'entry', 'seeds', 'n', `${t.metric}_mean`, `${t.metric}_std`, 'values', 'baseline', 'diff_mean', 'diff_low', 'diff_high', 'ece', 'nll', 'brier', 'teacher_accuracy', `teacher_${t.metric}`, 'teacher_gflops', 'teacher_images', 'teacher_cache_hits', 'student_images', 'train_seconds_per_epoch', 'wall_seconds'];
  const lines = [cols.join(',')];
  for (const r of t.rows) {
    lines.push(
      [r.row, r.entry, r.seeds.join(' '), r.seeds.length, r.mean, r.std, r.values.join(' '), r.diff?.baseline ?? '', r.diff?.mean, r.diff?.low, r.diff?.high, r.ece, r.nll, r.brier, r.teacherAccuracy, r.teacherMetric, r.cost.teacherGflops, r.cost.teacherImages, r.cost.teacherCacheHits, r.cost.studentImages, r.cost.trainSecondsPerEpoch, r.cost.wallSeconds]
        .map(q)
        .join(','),
    );
  }
  return lines.join('\n') + '\n';
}

/** The metric against teacher cost (forward GFLOPs): one point per row and entry, with its 95 % interval. */
export function tableSvg(t: SweepTable): string {
  const W = 640;
  const H = 400;
  const m = { l: 70, r: 20, t: 30, b: 50 };
  const pts = t.rows.map((r) => ({ x: r.cost.teacherGflops, ...interval(r.values), label: r.entry === 'student' ? r.row : `${r.row} ${r.entry}` }));
  const ys = pts.flatMap((p) => [p.mean, Number.isNaN(p.low) ? p.mean : p.low, Number.isNaN(p.high) ? p.mean : p.high]);
  const xs = pts.map((p) => p.x);
  const pad = (lo: number, hi: number) => (hi - lo > 0 ? [lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)] : [lo - 1e-3 - Math.abs(lo) * 0.01, hi + 1e-3 + Math.abs(hi) * 0.01]);
  const [x0, x1] = pad(Math.min(0, ...xs), Math.max(...xs, 0));
  const [y0, y1] = pad(Math.min(...ys), Math.max(...ys));
  const X = (x: number) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
  const Y = (y: number) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="13">${esc(t.name)}: ${esc(t.metric)} against teacher cost (mean, 95 % interval over seeds)</text>`,
    `<line x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}" stroke="black"/>`,
    `<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}" stroke="black"/>`,
    `<text x="${W / 2}" y="${H - 12}" text-anchor="middle">teacher forward GFLOPs per run</text>`,
    `<text x="16" y="${H / 2}" text-anchor="middle" transform="rotate(-90 16 ${H / 2})">${esc(t.metric)}</text>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const xv = x0 + ((x1 - x0) * i) / 4;
    const yv = y0 + ((y1 - y0) * i) / 4;
    out.push(`<text x="${X(xv)}" y="${H - m.b + 14}" text-anchor="middle">${xv.toPrecision(3)}</text>`);
    out.push(`<text x="${m.l - 4}" y="${Y(yv) + 4}" text-anchor="end">${yv.toPrecision(4)}</text>`);
  }
  for (const p of pts) {
    if (!Number.isNaN(p.low)) out.push(`<line x1="${X(p.x)}" y1="${Y(p.low)}" x2="${X(p.x)}" y2="${Y(p.high)}" stroke="#1f77b4"/>`);
    out.push(`<circle cx="${X(p.x)}" cy="${Y(p.mean)}" r="4" fill="#1f77b4"><title>${esc(p.label)}: ${p.mean.toPrecision(4)}</title></circle>`);
    out.push(`<text x="${X(p.x) + 6}" y="${Y(p.mean) - 6}">${esc(p.label)}</text>`);
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}
