#!/usr/bin/env node
/**
 * The figures of docs/results.md, "The distillistic thesis' experiments", from the committed run folders
 * of their sweeps (sweeps/<name>/runs/<row>-seed<N>/history.jsonl and metrics.json) — no training:
 *
 *   (a) docs/img/thesis-dml-curves.svg   every DML peer's test accuracy per epoch, each seed, with and
 *                                        without augmentation (sweeps/thesis-dml), and without it at a
 *                                        constant learning rate, 2 and 3 peers (sweeps/thesis-dml-constant)
 *                                        and the student alone at that rate (sweeps/thesis-scratch-constant)
 *   (c) docs/img/thesis-downscale.svg    test accuracy against the student's input resolution: the
 *                                        student from labels, cross-quality KD, the low-resolution DML
 *                                        peer; mean ± sample std over seeds (sweeps/thesis-downscale,
 *                                        sweeps/thesis-downscale-dml)
 *
 * It also prints the DML peers' differences to the student from labels, and cross-quality KD's to the
 * low-resolution peer, paired by seed (the figures the text quotes).
 *
 * Usage: node tools/thesis-figures.js [--sweeps sweeps] [--out docs/img]   (after `npm run build`)
 * A figure whose sweep has no finished run yet is skipped with a line saying so.
 */
'use strict';
const fs = require('fs');
const path = require('path');
const vega = require('vega');
const vl = require('vega-lite');
const { interval, mean, std } = require('@tfkd/sweep');

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const ROOT = path.resolve(__dirname, '..');
const SWEEPS = path.resolve(ROOT, opt('--sweeps', 'sweeps'));
const OUT = path.resolve(ROOT, opt('--out', path.join('docs', 'img')));

const CONFIG = {
  font: 'sans-serif',
  view: { stroke: '#dddddd' },
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal', grid: true, gridColor: '#eeeeee' },
  legend: { labelFontSize: 11, titleFontSize: 11, orient: 'bottom', direction: 'horizontal', labelLimit: 0 },
  title: { fontSize: 13, anchor: 'start' },
};

async function renderSvg(spec) {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Finished runs of a sweep: { row, seed, dir, metrics, history }. */
function runsOf(sweep) {
  const dir = path.join(SWEEPS, sweep, 'runs');
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .map((name) => ({ name, m: /^(.*)-seed(\d+)$/.exec(name) }))
    .filter(({ m, name }) => m && fs.existsSync(path.join(dir, name, 'metrics.json')))
    .map(({ name, m }) => ({
      row: m[1],
      seed: Number(m[2]),
      metrics: JSON.parse(fs.readFileSync(path.join(dir, name, 'metrics.json'), 'utf8')),
      history: fs
        .readFileSync(path.join(dir, name, 'history.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
    }))
    .filter((r) => r.metrics.status === 'completed');
}

/** Error bar half-width: the sample std, 0 for a single seed. */
const spread = (xs) => (xs.length < 2 ? 0 : std(xs));
/** `a − b` paired by seed over the seeds both have: mean [95 % interval] (per seed), as `kd sweep table` reports it. */
function paired(a, b) {
  const d = [...a.keys()].filter((seed) => b.has(seed)).sort((x, y) => x - y).map((seed) => a.get(seed) - b.get(seed));
  if (d.length === 0) return '–';
  const sign = (x) => `${x >= 0 ? '+' : ''}${x.toFixed(2)}`;
  const i = interval(d);
  return `${sign(i.mean)} [${sign(i.low)}, ${sign(i.high)}] (${d.map(sign).join(', ')})`;
}

async function dmlCurves() {
  // The student trained alone at the constant rate (thesis-scratch-constant) is the control of the constant-rate panels.
  const alone = runsOf('thesis-scratch-constant').map((r) => ({ ...r, row: 'alone-constant' }));
  const runs = [...runsOf('thesis-dml'), ...runsOf('thesis-dml-constant'), ...alone];
  if (runs.length === 0) return console.log('(a) skipped: no finished run in sweeps/thesis-dml{,-constant}/runs');
  const values = [];
  for (const r of runs)
    for (const e of r.history)
      for (const [role, ev] of Object.entries(e.eval ?? {}))
        if ((role.startsWith('student.') || (r.row === 'alone-constant' && role === 'student')) && typeof ev.accuracy === 'number')
          values.push({ setting: r.row, epoch: e.epoch, accuracy: 100 * ev.accuracy, peer: `${role}, seed ${r.seed}` });
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: 'DML of mlp-students: every peer, every seed (test accuracy per epoch)', subtitle: `${runs.length} runs; augmented, plain: cosine schedule, 2 peers; *-constant: lr held at 0.05; alone-constant: the student without peers` },
    background: 'white',
    padding: 12,
    config: CONFIG,
    data: { values },
    facet: { field: 'setting', type: 'nominal', title: null, sort: ['augmented', 'plain', 'plain-k2-constant', 'plain-k3-constant', 'alone-constant'] },
    columns: 2,
    spec: {
      width: 320,
      height: 220,
      mark: { type: 'line', point: { size: 14 }, strokeWidth: 1.3 },
      encoding: {
        x: { field: 'epoch', type: 'quantitative', title: 'epoch' },
        y: { field: 'accuracy', type: 'quantitative', title: 'test accuracy %', scale: { zero: false } },
        color: { field: 'peer', type: 'nominal', title: 'peer' },
      },
    },
  };
  const file = path.join(OUT, 'thesis-dml-curves.svg');
  fs.writeFileSync(file, await renderSvg(spec));
  console.log(`(a) ${path.relative(ROOT, file)}: ${runs.length} runs`);
}

async function downscale() {
  const points = [];
  const add = (runs, method, role) => {
    const by = new Map();
    for (const r of runs) {
      const m = /^(?:(.*)-)?px(\d+)$/.exec(r.row);
      if (!m) continue;
      const px = Number(m[2]);
      const name = method(m[1]);
      const acc = r.metrics.eval?.[role]?.accuracy;
      if (typeof acc !== 'number') continue;
      const key = `${name}@${px}`;
      if (!by.has(key)) by.set(key, { method: name, px, accs: [] });
      by.get(key).accs.push(100 * acc);
    }
    for (const p of by.values()) points.push({ method: p.method, px: p.px, mean: mean(p.accs), low: mean(p.accs) - spread(p.accs), high: mean(p.accs) + spread(p.accs), seeds: p.accs.length });
  };
  add(runsOf('thesis-downscale'), (spec) => (spec === 'scratch' ? 'student from labels' : 'cross-quality KD'), 'student');
  add(runsOf('thesis-downscale-dml'), () => 'DML (low-resolution peer)', 'student.1');
  if (points.length === 0) return console.log('(c) skipped: no finished run in sweeps/thesis-downscale{,-dml}/runs');
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: 'Downscaling series: test accuracy against the student\'s input resolution', subtitle: 'mean ± sample std over seeds (seeds per point in the table)' },
    background: 'white',
    padding: 12,
    config: CONFIG,
    width: 420,
    height: 260,
    data: { values: points },
    encoding: {
      x: { field: 'px', type: 'quantitative', title: 'student input (pixels per side, bilinear down + up to 28)', scale: { domain: [6, 29] }, axis: { values: [7, 10, 14, 21, 28] } },
      color: { field: 'method', type: 'nominal', title: null },
    },
    layer: [
      { mark: { type: 'line', point: true }, encoding: { y: { field: 'mean', type: 'quantitative', title: 'test accuracy %', scale: { zero: false } } } },
      { mark: { type: 'errorbar', ticks: true }, encoding: { y: { field: 'low', type: 'quantitative', title: 'test accuracy %' }, y2: { field: 'high' } } },
    ],
  };
  const file = path.join(OUT, 'thesis-downscale.svg');
  fs.writeFileSync(file, await renderSvg(spec));
  console.log(`(c) ${path.relative(ROOT, file)}: ${points.length} points`);
  for (const p of points.sort((a, b) => a.method.localeCompare(b.method) || b.px - a.px))
    console.log(`    ${p.method.padEnd(28)} ${String(p.px).padStart(2)} px: ${p.mean.toFixed(2)} ± ${((p.high - p.low) / 2).toFixed(2)} (${p.seeds} seeds)`);
  // The DML peers against the student from labels of the same seed (another sweep, so not in its table).
  const acc = (runs, row, role) => new Map(runs.filter((r) => r.row === row && typeof r.metrics.eval?.[role]?.accuracy === 'number').map((r) => [r.seed, 100 * r.metrics.eval[role].accuracy]));
  const labels = runsOf('thesis-downscale');
  const dml = runsOf('thesis-downscale-dml');
  console.log('    paired by seed, pp [95 % interval] (per seed):');
  for (const px of [28, 21, 14, 10, 7]) {
    const low = paired(acc(dml, `px${px}`, 'student.1'), acc(labels, `scratch-px${px}`, 'student'));
    const full = paired(acc(dml, `px${px}`, 'student.0'), acc(labels, 'scratch-px28', 'student'));
    const kd = paired(acc(labels, `cross-quality-kd-px${px}`, 'student'), acc(dml, `px${px}`, 'student.1'));
    console.log(`    ${String(px).padStart(2)} px: low-resolution DML peer − student from labels at ${px} px ${low}; its 28-px partner − student from labels at 28 px ${full}; cross-quality KD − low-resolution DML peer ${kd}`);
  }
}

(async () => {
  fs.mkdirSync(OUT, { recursive: true });
  await dmlCurves();
  await downscale();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
