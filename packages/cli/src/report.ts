/**
 * `kd report RUN_OR_SWEEP…`: one self-contained HTML file per run folder or sweep folder (no script,
 * no external resource; the figures are inline SVG rendered by charts.ts, their Vega-Lite specs kept
 * in a JSON block for an interactive view later). A run: its status, the metrics table, the cost
 * ledger, the training curves, the reliability diagrams and the resolved spec. A sweep: the table
 * `kd sweep table` wrote (table.json: mean ± std over seeds, paired difference with its 95 % interval,
 * cost) and the metric against teacher cost.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { EpochSummary } from '@tfkd/kd-core';
import { KdError } from '@tfkd/kd-core';
import type { SweepTable } from '@tfkd/sweep';
import { sweepCostSpec, trainingCurvesSpec, type CurvesInput } from './charts';
import { renderSvg, type VegaLiteSpec } from './svg';

export interface ReportOptions {
  /** The HTML file (one target only); default `<folder>/report.html`. */
  out?: string;
}

/** Write one report per folder; returns the files written. */
export async function reportCommand(targets: readonly string[], o: ReportOptions = {}): Promise<string[]> {
  if (o.out && targets.length > 1) {
    throw new KdError('KD_SPEC_INVALID', `--out names one file, but ${targets.length} folders were given`, { path: '--out', fix: 'leave --out out (each report goes to <folder>/report.html), or give one folder' });
  }
  const written: string[] = [];
  for (const dir of targets) {
    const html = await reportHtml(dir);
    const file = o.out ?? path.join(dir, 'report.html');
    try {
      fs.writeFileSync(file, html);
    } catch (e) {
      throw new KdError('KD_OUTPUT_WRITE', `cannot write ${file}: ${(e as Error).message}`, { path: file, fix: 'give --out a writable file' });
    }
    written.push(file);
  }
  return written;
}

/** A run folder (metrics.json) or a sweep folder (table.json from `kd sweep table`) as an HTML page. */
export async function reportHtml(dir: string): Promise<string> {
  if (fs.existsSync(path.join(dir, 'metrics.json'))) return runReport(dir);
  if (fs.existsSync(path.join(dir, 'table.json'))) return sweepReport(dir);
  const why = fs.existsSync(path.join(dir, 'sweep.json'))
    ? `${dir} is a sweep folder without table.json`
    : `${dir} holds neither metrics.json (a run folder) nor table.json (a sweep folder)`;
  throw new KdError('KD_DATA_MISSING', why, {
    path: dir,
    fix: fs.existsSync(path.join(dir, 'sweep.json')) ? `write the table first: kd sweep table --out ${dir}` : 'give a folder written by `kd run` or `kd sweep`',
  });
}

interface RunMetrics {
  status: string;
  spec?: string;
  backend?: { name: string; label?: string };
  seed?: number;
  dataset?: { name?: string; source?: string; train?: number; test?: number };
  epochs?: number;
  epochsDone?: number;
  eval: Record<string, Record<string, number>>;
  teachers?: Record<string, { cached?: boolean; key?: string }>;
  /** Players (spec `players:`), when the run had any. */
  players?: string[];
  ledger?: { roles: Record<string, Record<string, number>>; phases?: Record<string, { seconds: number; steps: number }>; totalFlops?: number };
  wallSeconds?: number;
  startedAt?: string;
  finishedAt?: string;
  versions?: Record<string, string>;
}

const readJson = <T>(file: string): T => JSON.parse(fs.readFileSync(file, 'utf8')) as T;

/** What the training curves of a run folder are drawn from: history.jsonl and metrics.json. */
export function curvesInputOf(dir: string): CurvesInput {
  const m = readJson<RunMetrics>(path.join(dir, 'metrics.json'));
  const file = path.join(dir, 'history.jsonl');
  const history = fs.existsSync(file)
    ? fs
        .readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as EpochSummary)
    : [];
  const teacherRoles = [...new Set([...Object.keys(m.teachers ?? {}), ...Object.keys(m.eval).filter((r) => /^teacher(\.\d+)?$/.test(r))])];
  const teachers = Object.fromEntries(teacherRoles.filter((t) => m.eval[t]?.accuracy !== undefined).map((t) => [t, m.eval[t].accuracy]));
  // The ledger counts players (an adversarial critic) too: they are not students.
  const fromLedger = Object.keys(m.ledger?.roles ?? {}).filter((r) => !teacherRoles.includes(r) && !(m.players ?? []).includes(r));
  const fromEval = Object.keys(history[history.length - 1]?.eval ?? m.eval).filter((r) => !r.includes(':') && !teacherRoles.includes(r) && r !== 'ensemble' && r !== 'peer-mean');
  return { title: m.spec ? path.basename(m.spec) : path.basename(path.resolve(dir)), history, students: fromLedger.length > 0 ? fromLedger : fromEval, teachers };
}

async function runReport(dir: string): Promise<string> {
  const m = readJson<RunMetrics>(path.join(dir, 'metrics.json'));
  const input = curvesInputOf(dir);
  const curves = trainingCurvesSpec(input);
  const diagrams = fs
    .readdirSync(dir)
    .filter((f) => /^reliability.*\.svg$/.test(f))
    .sort();
  const specFile = path.join(dir, 'spec.resolved.yaml');
  const name = path.basename(path.resolve(dir));
  const facts: [string, string][] = [
    ['status', m.status],
    ['spec', m.spec ?? '–'],
    ['dataset', m.dataset ? `${m.dataset.name ?? ''} (${m.dataset.source ?? ''}, ${m.dataset.train ?? '?'} train / ${m.dataset.test ?? '?'} test)` : '–'],
    ['backend', m.backend ? (m.backend.label ?? m.backend.name) : '–'],
    ['seed', String(m.seed ?? '–')],
    ['epochs', `${m.epochsDone ?? input.history.length} of ${m.epochs ?? '?'}`],
    ['wall time', m.wallSeconds !== undefined ? `${m.wallSeconds.toFixed(1)} s` : '–'],
    ['started – finished', `${m.startedAt ?? '?'} – ${m.finishedAt ?? '?'}`],
  ];
  const sections = [
    section('Run', table(['', ''], facts, { header: false })),
    section('Metrics (test split, last epoch)', metricsTable(m.eval)),
    section('Cost ledger', ledgerTables(m)),
    section('Training curves', figure(await renderSvg(curves), 'curves')),
    section('Reliability diagrams', diagrams.length > 0 ? `<div class="row">${diagrams.map((f, i) => figure(fs.readFileSync(path.join(dir, f), 'utf8'), `rel${i}`, f)).join('\n')}</div>` : '<p>No reliability diagram in this run folder (an interrupted run has none).</p>'),
    section('Spec (spec.resolved.yaml)', fs.existsSync(specFile) ? `<pre>${esc(fs.readFileSync(specFile, 'utf8'))}</pre>` : '<p>–</p>'),
  ];
  return page(`kd report: ${name}`, sections, { 'training-curves': curves });
}

async function sweepReport(dir: string): Promise<string> {
  const t = readJson<SweepTable>(path.join(dir, 'table.json'));
  const { interval } = await import('@tfkd/sweep');
  const cost = sweepCostSpec(t, interval);
  const f = (v: number | null | undefined, d = 4) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(d));
  const rows = t.rows.map((r) => [
    r.row,
    r.entry,
    r.seeds.join(', '),
    `${f(r.mean)} ± ${f(r.std)}`,
    r.values.map((v) => f(v)).join(', '),
    r.diff ? `${r.diff.mean >= 0 ? '+' : ''}${f(r.diff.mean)} [${f(r.diff.low)}, ${f(r.diff.high)}] vs ${r.diff.baseline} (n=${r.diff.n})` : '–',
    f(r.ece),
    f(r.teacherMetric ?? (t.metric === 'accuracy' ? r.teacherAccuracy : null)),
    f(r.cost.teacherGflops, 3),
    f(r.cost.trainSecondsPerEpoch, 1),
    String(r.missing),
  ]);
  const head = ['row', 'entry', 'seeds', `${t.metric} mean ± std`, 'per seed', 'difference to baseline [95 % interval]', 'ECE', `teacher ${t.metric}`, 'teacher GFLOPs', 's / epoch', 'missing'];
  const sections = [
    section(`Table (${t.metric})`, table(head, rows)),
    section(`${t.metric} against teacher cost`, figure(await renderSvg(cost), 'cost')),
  ];
  return page(`kd report: sweep ${t.name}`, sections, { 'metric-against-teacher-cost': cost });
}

const METRIC_ORDER = ['accuracy', 'nll', 'ece', 'mce', 'adaptiveEce', 'classwiseEce', 'brier', 'temperature', 'eceScaled', 'nllScaled', 'flopsPerImage'];

function metricsTable(ev: Record<string, Record<string, number>>): string {
  const keys = [...new Set(Object.values(ev).flatMap((r) => Object.keys(r)))].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  const cell = (v: number | undefined) => (v === undefined ? '–' : Number.isInteger(v) ? String(v) : v.toFixed(4));
  return table(['role', ...keys], Object.entries(ev).map(([role, r]) => [role, ...keys.map((k) => cell(r[k]))]));
}
const rank = (k: string) => (METRIC_ORDER.includes(k) ? METRIC_ORDER.indexOf(k) : METRIC_ORDER.length);

function ledgerTables(m: RunMetrics): string {
  if (!m.ledger) return '<p>No ledger in metrics.json.</p>';
  const cols = ['flopsPerImage', 'forwardImages', 'backwardImages', 'cacheHits', 'forwardFlops', 'backwardFlops', 'totalFlops'];
  const roles = table(['role', ...cols], Object.entries(m.ledger.roles).map(([role, r]) => [role, ...cols.map((c) => (r[c] === undefined ? '–' : r[c].toLocaleString('en-US')))]));
  const phases = table(['phase', 'seconds', 'steps'], Object.entries(m.ledger.phases ?? {}).map(([p, v]) => [p, v.seconds.toFixed(1), String(v.steps)]));
  const teachers = Object.entries(m.teachers ?? {}).map(([t, v]) => `${t}: ${v.cached ? 'from the teacher cache' : 'trained in this run'}${v.key ? ` (key ${v.key})` : ''}`);
  return `${roles}\n${phases}\n<p>Total ${(m.ledger.totalFlops ?? 0).toLocaleString('en-US')} FLOPs.${teachers.length > 0 ? ` ${esc(teachers.join('; '))}.` : ''}</p>`;
}

function esc(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c] as string);
}

function table(head: string[], rows: string[][], o: { header?: boolean } = {}): string {
  const tr = (cells: string[], tag: string) => `<tr>${cells.map((c) => `<${tag}>${esc(c)}</${tag}>`).join('')}</tr>`;
  return `<table>${o.header === false ? '' : `<thead>${tr(head, 'th')}</thead>`}<tbody>${rows.map((r) => tr(r, 'td')).join('')}</tbody></table>`;
}

function section(title: string, body: string): string {
  const id = title.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
  return `<section id="${id}"><h2>${esc(title)}</h2>\n${body}\n</section>`;
}

/**
 * An SVG inlined in the page: its XML prolog dropped and its ids (vega's clip paths) prefixed, so
 * that several figures in one document never share an id.
 */
function figure(svg: string, prefix: string, caption?: string): string {
  const body = svg
    .replace(/<\?xml[^>]*\?>/, '')
    .replace(/\bid="([^"]+)"/g, `id="${prefix}-$1"`)
    .replace(/url\(#([^)]+)\)/g, `url(#${prefix}-$1)`)
    .replace(/(xlink:)?href="#([^"]+)"/g, (_m, x: string | undefined, id: string) => `${x ?? ''}href="#${prefix}-${id}"`);
  return `<figure class="chart">${body.trim()}${caption ? `<figcaption>${esc(caption)}</figcaption>` : ''}</figure>`;
}

const STYLE = `
body { font-family: sans-serif; margin: 24px auto; max-width: 1280px; padding: 0 16px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; } th { background: #f4f4f4; }
td:first-child, th:first-child { text-align: left; }
pre { background: #f7f7f7; padding: 10px; font-size: 12px; overflow-x: auto; }
figure.chart { margin: 8px 16px 8px 0; display: inline-block; vertical-align: top; }
figure.chart svg { max-width: 100%; height: auto; }
figcaption { font-size: 12px; color: #555; }
.row { display: flex; flex-wrap: wrap; }
nav a { margin-right: 12px; font-size: 13px; }`;

function page(title: string, sections: string[], specs: Record<string, VegaLiteSpec>): string {
  const nav = [...sections.join('\n').matchAll(/<section id="([^"]+)"><h2>([^<]*)<\/h2>/g)].map((m) => `<a href="#${m[1]}">${m[2]}</a>`).join('');
  // The specs as data (not executed): `vegaEmbed(el, spec)` renders any of them interactively.
  const json = JSON.stringify(specs).replace(/</g, '\\u003c');
  return [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<link rel="icon" href="data:,">',
    `<title>${esc(title)}</title>`,
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    `<h1>${esc(title)}</h1>`,
    `<nav>${nav}</nav>`,
    ...sections,
    `<script type="application/json" id="vega-lite-specs">${json}</script>`,
    '</body>',
    '</html>',
    '',
  ].join('\n');
}
