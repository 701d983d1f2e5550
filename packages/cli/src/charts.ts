/**
 * The figures `kd` draws, as Vega-Lite specs (plain JSON; svg.ts renders them to SVG in Node, a
 * browser can render the same spec interactively): the training curves of a run and a sweep's metric
 * against teacher cost. The reliability diagram's spec lives with its numbers in @tfkd/metrics-ece.
 */
import type { EpochSummary } from '@tfkd/kd-core';
import { reliabilityDiagramSpec, type CalibrationResult, type DiagramOptions } from '@tfkd/metrics-ece';
import type { SweepTable } from '@tfkd/sweep';
import { renderSvg, type VegaLiteSpec } from './svg';

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v5.json';
/** Tableau 10 without its grey, which marks the teachers' reference lines. */
const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f'];
const REFERENCE = '#555555';
const PANEL = { width: 300, height: 200 };
const CONFIG = {
  font: 'sans-serif',
  view: { stroke: '#dddddd' },
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal', grid: true, gridColor: '#eeeeee' },
  legend: { labelFontSize: 11, titleFontSize: 11, labelLimit: 260, orient: 'bottom', direction: 'vertical', columns: 2, columnPadding: 14 },
  title: { fontSize: 13, anchor: 'start' },
};

export interface CurvesInput {
  /** The figure's title (the spec file's name). */
  title: string;
  /** history.jsonl: one `EpochSummary` per epoch, phases one after another. */
  history: readonly EpochSummary[];
  /** The student roles, in spec order: with more than one, each gets its own loss and accuracy panels. */
  students: readonly string[];
  /** Test accuracy (or `metric`) of each teacher role (metrics.json): drawn as dashed reference lines. */
  teachers: Readonly<Record<string, number>>;
  /** The eval metric of the test panels (default `accuracy`; a detection run's `map`, a segmentation run's `miou`). */
  metric?: string;
}

interface Point {
  epoch: number;
  phase: string;
  series: string;
  value: number;
}

/** The name the weighted total `loss` has in a legend. */
export const TOTAL_LOSS = 'total (weighted)';
export const referenceName = (teacher: string) => `${teacher} (reference)`;

/**
 * Training curves: per-term loss and the weighted total (log scale when the values span more than a
 * decade and a half), test accuracy per role with every teacher as a reference line (one line per exit
 * for multi-exit students such as BYOT's, train accuracy when the history records it), and the
 * learning rate, all against the epoch. A run with several students (DML, ONE) gets one row of loss
 * and accuracy panels per student under an overview row.
 */
export function trainingCurvesSpec(input: CurvesInput): VegaLiteSpec {
  const h = input.history;
  const phased = new Set(h.map((e) => e.phase)).size > 1;
  // A run with `stages:` numbers epochs per phase: they are drawn one after another over the run.
  const epochOf = (e: EpochSummary, i: number) => (phased ? i + 1 : e.epoch);
  const xTitle = phased ? `epoch (phases ${[...new Set(h.map((e) => e.phase))].join(' → ')})` : 'epoch';
  const last = Math.max(2, ...h.map(epochOf));
  const x: AxisX = { title: xTitle, domain: [1, last], ticks: epochTicks(last) };
  const series = (name: string, pick: (e: EpochSummary) => number | undefined): Point[] =>
    h.flatMap((e, i) => {
      const v = pick(e);
      return v !== undefined && Number.isFinite(v) ? [{ epoch: epochOf(e, i), phase: e.phase, series: name, value: v }] : [];
    });
  const terms = [...new Set(h.flatMap((e) => Object.keys(e.train)))].filter((t) => t !== 'loss' && !isTrainAccuracy(t));
  const multi = input.students.length > 1;
  const ownerOf = (term: string) => (multi ? input.students.find((s) => term.split(/[:/]/).includes(s)) : undefined);
  const lossOf = (list: string[], withTotal: boolean) => [...(withTotal ? series(TOTAL_LOSS, (e) => e.train.loss) : []), ...list.flatMap((t) => series(t, (e) => e.train[t]))];
  const entries = [...new Set(h.flatMap((e) => Object.keys(e.eval)))].filter((r) => !(r in input.teachers));
  const belongs = (entry: string, s: string) => entry === s || entry.startsWith(`${s}:`);
  const metric = input.metric ?? 'accuracy';
  const accuracyOf = (list: string[]) => [
    ...list.flatMap((r) => series(r, (e) => e.eval[r]?.[metric])),
    ...list.filter((r) => input.students.includes(r)).flatMap((r) => series(`${r} (train)`, (e) => trainAccuracy(e, r, input.students.length))),
  ];
  const references = Object.entries(input.teachers)
    .filter(([, v]) => Number.isFinite(v))
    .map(([t, v]) => ({ series: referenceName(t), value: v }));
  const lr = linePanel({ title: 'learning rate', points: series('learning rate', (e) => e.learningRate), x, y: { title: 'learning rate', format: '~g' }, legend: false });
  const overviewTerms = terms.filter((t) => ownerOf(t) === undefined);
  const overview = [
    lossPanel(multi ? 'training loss: total and shared terms' : 'training loss per term (unweighted) and total (weighted)', lossOf(overviewTerms, true), x),
    linePanel({ title: multi ? `test ${metric}: every student` : `test ${metric}`, points: accuracyOf(entries), references, x, y: { title: metric, zero: false }, legendTitle: 'model' }),
    lr,
  ];
  const rows = multi
    ? input.students.map((s) => [
        lossPanel(`${s}: training loss per term (unweighted)`, lossOf(terms.filter((t) => ownerOf(t) === s), false), x),
        linePanel({ title: `${s}: test ${metric}`, points: accuracyOf(entries.filter((r) => belongs(r, s))), references, x, y: { title: metric, zero: false }, legendTitle: 'model' }),
      ])
    : [];
  // One colour per series over the whole figure (a student keeps its colour in every panel).
  const colours = new Map<string, string>();
  const colourOf = (name: string) => {
    if (!colours.has(name)) colours.set(name, PALETTE[colours.size % PALETTE.length]);
    return colours.get(name) as string;
  };
  for (const panels of [overview, ...rows]) for (const p of panels) recolour(p, colourOf);
  const resolve = { scale: { color: 'independent', y: 'independent', x: 'independent', strokeDash: 'independent' }, legend: { color: 'independent' } };
  return {
    $schema: SCHEMA,
    title: { text: input.title, fontSize: 15, subtitle: `${h.length} epoch${h.length === 1 ? '' : 's'}${multi ? `, ${input.students.length} students` : ''}` },
    background: 'white',
    padding: 12,
    config: CONFIG,
    vconcat: [overview, ...rows].map((panels) => ({ hconcat: panels, resolve, spacing: 28 })),
    resolve,
    spacing: 24,
  };
}

export async function trainingCurvesSvg(input: CurvesInput): Promise<string> {
  return renderSvg(trainingCurvesSpec(input));
}

/** A train-accuracy entry in `EpochSummary.train` (`accuracy`, or `<role>/accuracy` with several students). */
const isTrainAccuracy = (k: string) => k === 'accuracy' || k.endsWith('/accuracy');
function trainAccuracy(e: EpochSummary, role: string, students: number): number | undefined {
  return e.train[`${role}/accuracy`] ?? (students === 1 ? e.train.accuracy : undefined);
}

/** Loss on a log scale when every value is positive and they span more than 1.5 decades; else linear from 0. */
function lossPanel(title: string, points: Point[], x: AxisX): VegaLiteSpec {
  const values = points.map((p) => p.value);
  const log = values.length > 0 && Math.min(...values) > 0 && Math.max(...values) / Math.min(...values) > 10 ** 1.5;
  return linePanel({
    title,
    points,
    x,
    y: log ? { title: 'loss (log scale)', type: 'log' } : { title: 'loss', zero: true },
    legendTitle: 'loss term',
  });
}

interface AxisX {
  title: string;
  domain: [number, number];
  /** Integer epochs only: the multiples of 1, 2, 5, 10, 20, 50 … (the first step giving at most 10 ticks). */
  ticks: number[];
}

export function epochTicks(last: number): number[] {
  const step = [1, 2, 5].flatMap((m) => [1, 10, 100, 1000].map((p) => m * p)).sort((a, b) => a - b).find((st) => Math.floor(last / st) <= 10) ?? 10000;
  const out: number[] = [];
  for (let e = step; e <= last; e += step) out.push(e);
  return out;
}

/** Give every line series its figure-wide colour (teachers' reference lines stay grey). */
function recolour(panel: VegaLiteSpec, colourOf: (name: string) => string): void {
  for (const l of panel.layer as { encoding: { color: { scale: { domain: string[]; range: string[] } } } }[]) {
    const sc = l.encoding.color.scale;
    sc.range = sc.domain.map((d, i) => (sc.range[i] === REFERENCE ? REFERENCE : colourOf(d)));
  }
}

interface PanelOptions {
  title: string;
  points: Point[];
  references?: { series: string; value: number }[];
  x: AxisX;
  y: { title: string; type?: 'log'; zero?: boolean; format?: string };
  legendTitle?: string;
  legend?: boolean;
}

function linePanel(o: PanelOptions): VegaLiteSpec {
  const refs = o.references ?? [];
  const names = [...new Set(o.points.map((p) => p.series))];
  const domain = [...names, ...refs.map((r) => r.series)];
  const range = [...names.map((_, i) => PALETTE[i % PALETTE.length]), ...refs.map(() => REFERENCE)];
  const color = {
    field: 'series',
    type: 'nominal',
    scale: { domain: domain.length > 0 ? domain : ['(none)'], range: range.length > 0 ? range : [REFERENCE] },
    legend: o.legend === false ? null : { title: o.legendTitle ?? null },
  };
  const epochs = new Set(o.points.map((p) => p.epoch)).size;
  const yScale = o.y.type === 'log' ? { type: 'log' } : { zero: o.y.zero ?? true, nice: true };
  const y = { field: 'value', type: 'quantitative', title: o.y.title, scale: yScale, axis: { ...(o.y.format ? { format: o.y.format } : {}), tickCount: 6 } };
  const xEnc = {
    field: 'epoch',
    type: 'quantitative',
    title: o.x.title,
    scale: { domain: o.x.domain, nice: false, zero: false },
    axis: { values: o.x.ticks, format: 'd', grid: false },
  };
  const layer: VegaLiteSpec[] = [
    {
      data: { values: o.points },
      mark: { type: 'line', strokeWidth: 2, point: epochs <= 30 ? { size: 24 } : false, clip: true },
      encoding: {
        x: xEnc,
        y,
        color,
        tooltip: [
          { field: 'series', title: 'series' },
          { field: 'phase', title: 'phase' },
          { field: 'epoch', title: 'epoch' },
          { field: 'value', title: o.y.title, format: '.4~g' },
        ],
      },
    },
  ];
  if (refs.length > 0) {
    layer.push({
      data: { values: refs },
      mark: { type: 'rule', strokeDash: [6, 4], strokeWidth: 1.5 },
      encoding: { y: { field: 'value', type: 'quantitative' }, color, tooltip: [{ field: 'series' }, { field: 'value', format: '.4~g' }] },
    });
  }
  return { title: o.title, ...PANEL, layer };
}

/**
 * A sweep's metric against teacher cost: one point per row and entry at its mean over seeds, the
 * bar its 95 % t-interval (`interval` from @tfkd/sweep, passed in so that the charts do not load
 * the sweep package's queue), x the teacher's forward GFLOPs per run (from the cost ledger).
 */
export function sweepCostSpec(t: SweepTable, interval: (xs: readonly number[]) => { mean: number; low: number; high: number; n: number }): VegaLiteSpec {
  const points = t.rows.map((r) => {
    const ci = interval(r.values);
    return {
      label: r.entry === 'student' ? r.row : `${r.row} ${r.entry}`,
      gflops: r.cost.teacherGflops,
      mean: ci.mean,
      low: Number.isFinite(ci.low) ? ci.low : ci.mean,
      high: Number.isFinite(ci.high) ? ci.high : ci.mean,
      seeds: ci.n,
    };
  });
  const x = { field: 'gflops', type: 'quantitative', title: 'teacher forward GFLOPs per run', scale: { zero: true, nice: true } };
  const y = { type: 'quantitative', title: `${t.metric} (mean, 95 % interval over seeds)`, scale: { zero: false, nice: true } };
  return {
    $schema: SCHEMA,
    title: { text: `${t.name}: ${t.metric} against teacher cost` },
    background: 'white',
    padding: 12,
    config: CONFIG,
    width: 520,
    height: 320,
    data: { values: points },
    layer: [
      { mark: { type: 'rule', color: PALETTE[0], strokeWidth: 1.5 }, encoding: { x, y: { ...y, field: 'low' }, y2: { field: 'high' } } },
      {
        mark: { type: 'point', filled: true, size: 60, color: PALETTE[0] },
        encoding: { x, y: { ...y, field: 'mean' }, tooltip: [{ field: 'label' }, { field: 'mean', format: '.4f' }, { field: 'low', format: '.4f' }, { field: 'high', format: '.4f' }, { field: 'seeds' }] },
      },
      { mark: { type: 'text', align: 'left', dx: 7, dy: -7, fontSize: 10 }, encoding: { x, y: { ...y, field: 'mean' }, text: { field: 'label' } } },
    ],
  };
}

/** The reliability diagram (metrics-ece's spec, its design unchanged) rendered to SVG. */
export async function reliabilitySvg(result: Pick<CalibrationResult, 'bins' | 'ece' | 'mce' | 'n'>, opts: DiagramOptions = {}): Promise<string> {
  return renderSvg(reliabilityDiagramSpec(result, opts));
}
