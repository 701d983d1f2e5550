#!/usr/bin/env node
// `npm run demo`: a real teacher → student distillation on the shipped Fashion-MNIST subset.
// Trains (or reuses from .kd-cache) the MLP teacher, then the same student from labels and with
// Hinton KD, and prints the three test accuracies. Run folders land in runs/demo/.
const path = require('path');
const { main } = require('../packages/cli/dist/main.js');
const fs = require('fs');

async function run(spec, out) {
  // --overwrite: running the demo again replaces its own two run folders (once each new run is complete)
  const code = await main(['run', path.join(__dirname, '..', 'examples', spec), '--out', out, '--quiet', '--overwrite']);
  if (code !== 0) process.exit(code);
  return JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
}

(async () => {
  const t0 = Date.now();
  process.stderr.write('kd demo: MLP teacher 784-1200-1200-10 → student 784-128-128-10 on the shipped Fashion-MNIST subset\n');
  process.stderr.write('1/2 scratch student (labels only)…\n');
  const scratch = await run('demo-scratch.yaml', 'runs/demo/scratch');
  process.stderr.write('2/2 teacher (trained once, then cached in .kd-cache) and KD student…\n');
  const kd = await run('demo-kd.yaml', 'runs/demo/kd');
  const pct = (v) => `${(100 * v).toFixed(2)}%`;
  const rows = [
    ['teacher (mlp-teacher)', kd.eval.teacher],
    ['student from scratch', scratch.eval.student],
    ['student with Hinton KD', kd.eval.student],
  ];
  console.log(`\nFashion-MNIST ${kd.dataset.source} (${kd.dataset.train} train / ${kd.dataset.test} test), backend ${kd.backend.name}`);
  console.log('| model | test accuracy | ECE |');
  console.log('|---|---|---|');
  for (const [name, m] of rows) console.log(`| ${name} | ${pct(m.accuracy)} | ${m.ece !== undefined ? m.ece.toFixed(4) : '-'} |`);
  const gain = kd.eval.student.accuracy - scratch.eval.student.accuracy;
  console.log(`\nKD − scratch: ${(100 * gain).toFixed(2)} pp; teacher forward images ${kd.ledger.roles.teacher.forwardImages}; wall ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  console.log('run folders: runs/demo/scratch, runs/demo/kd (metrics.json, history.jsonl, training-curves.svg, reliability diagrams, the student model)');
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
