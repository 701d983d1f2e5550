#!/usr/bin/env node
// Summarise protocol runs: node tools/results-table.js runs/protocol [role=student]
// Groups run folders named <spec>-seed<N>, prints one markdown row per spec with mean ± std
// (sample std, n−1) of the test metrics over seeds, plus epochs, backend and wall time per run.
const fs = require('fs');
const path = require('path');

const root = process.argv[2] || 'runs/protocol';
const cost = process.argv.includes('--cost');
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
  if (xs.some((x) => typeof x !== 'number')) return '–';
  const { mean, sd } = stats(xs.map((x) => x * scale));
  return Number.isNaN(sd) ? mean.toFixed(digits) : `${mean.toFixed(digits)} ± ${sd.toFixed(digits)}`;
};
// Every evaluated entry but the teacher: students, and the extra rows methods report (a DML
// cohort's `ensemble` / `peer-mean`, born-again's generations, BYOT's heads).
const roles = (m) => Object.keys(m.eval).filter((r) => r !== 'teacher' && !r.startsWith('teacher.'));
if (cost) {
  // Teacher-cost view: images the teacher was forwarded on (plus cache hits: what plain KD without
  // the cache would forward), teacher forward GFLOPs, student images, train seconds per epoch.
  console.log('| spec | seeds | test acc % | teacher images forwarded | + cache hits | teacher GFLOPs | student fwd / bwd images | train s/epoch |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const [name, runs] of groups) {
    const l = runs.map((r) => r.metrics.ledger);
    const mean = (f) => l.map(f).reduce((a, b) => a + b, 0) / l.length;
    const t = (x) => x.roles.teacher || { forwardImages: 0, cacheHits: 0, forwardFlops: 0 };
    const secs = (x, r) => Object.values(x.phases).reduce((a, p) => a + p.seconds, 0) / r.metrics.epochs;
    console.log(
      `| ${name} | ${runs.map((r) => r.seed).join(',')} | ${pm(runs.map((r) => r.metrics.eval.student.accuracy), 100)} | ${mean((x) => t(x).forwardImages).toFixed(0)} | ${mean((x) => t(x).cacheHits).toFixed(0)} | ${(mean((x) => t(x).forwardFlops) / 1e9).toFixed(1)} | ${mean((x) => x.roles.student.forwardImages).toFixed(0)} / ${mean((x) => x.roles.student.backwardImages).toFixed(0)} | ${pm(runs.map((r) => secs(r.metrics.ledger, r)), 1, 1)} |`,
    );
  }
  process.exit(0);
}
console.log('| spec | seeds | student | test acc % | ECE | MCE | NLL | Brier | teacher acc % | epochs | backend | wall s/run |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const [name, runs] of groups) {
  for (const role of roles(runs[0].metrics)) {
    const get = (k) => runs.map((r) => (r.metrics.eval[role] ?? {})[k]);
    const teacher = runs[0].metrics.eval.teacher ? (100 * runs[0].metrics.eval.teacher.accuracy).toFixed(2) : '–';
    console.log(
      `| ${name} | ${runs.map((r) => r.seed).join(',')} | ${role} | ${pm(get('accuracy'), 100)} | ${pm(get('ece'), 1, 4)} | ${pm(get('mce'), 1, 3)} | ${pm(get('nll'), 1, 4)} | ${pm(get('brier'), 1, 4)} | ${teacher} | ${runs[0].metrics.epochs} | ${runs[0].metrics.backend.name} | ${pm(runs.map((r) => r.metrics.wallSeconds), 1, 0)} |`,
    );
  }
}
