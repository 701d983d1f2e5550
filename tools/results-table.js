#!/usr/bin/env node
// Summarise protocol runs: node tools/results-table.js runs/protocol [role=student]
// Groups run folders named <spec>-seed<N>, prints one markdown row per spec with mean ± std
// (sample std, n−1) of the test metrics over seeds, plus epochs, backend and wall time per run.
const fs = require('fs');
const path = require('path');

const root = process.argv[2] || 'runs/protocol';
const groups = new Map();
for (const dir of fs.readdirSync(root).sort()) {
  const m = /^(.*)-seed(\d+)$/.exec(dir);
  const file = path.join(root, dir, 'metrics.json');
  if (!m || !fs.existsSync(file)) continue;
  const metrics = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (!groups.has(m[1])) groups.set(m[1], []);
  groups.get(m[1]).push({ seed: Number(m[2]), metrics });
}
const stats = (xs) => {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : NaN;
  return { mean, sd };
};
const pm = (xs, scale = 1, digits = 2) => {
  const { mean, sd } = stats(xs.map((x) => x * scale));
  return Number.isNaN(sd) ? mean.toFixed(digits) : `${mean.toFixed(digits)} ± ${sd.toFixed(digits)}`;
};
const roles = (m) => Object.keys(m.eval).filter((r) => r.startsWith('student'));
console.log('| spec | seeds | student | test acc % | ECE | MCE | NLL | Brier | teacher acc % | epochs | backend | wall s/run |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const [name, runs] of groups) {
  for (const role of roles(runs[0].metrics)) {
    const get = (k) => runs.map((r) => r.metrics.eval[role][k]);
    const teacher = runs[0].metrics.eval.teacher ? (100 * runs[0].metrics.eval.teacher.accuracy).toFixed(2) : '–';
    console.log(
      `| ${name} | ${runs.map((r) => r.seed).join(',')} | ${role} | ${pm(get('accuracy'), 100)} | ${pm(get('ece'), 1, 4)} | ${pm(get('mce'), 1, 3)} | ${pm(get('nll'), 1, 4)} | ${pm(get('brier'), 1, 4)} | ${teacher} | ${runs[0].metrics.epochs} | ${runs[0].metrics.backend.name} | ${pm(runs.map((r) => r.metrics.wallSeconds), 1, 0)} |`,
    );
  }
}
