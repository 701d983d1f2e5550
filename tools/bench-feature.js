#!/usr/bin/env node
/**
 * Cost of each feature loss per training epoch, relative to Hinton KD on the same teacher → student
 * pair (issue #5). One `kd run` at a time — run it on an otherwise idle machine.
 *
 *   npm run bench:feature                       # examples/feature-*.yaml + kd-cnn.yaml
 *                                               # (not the -hint/-init variants: staged runs)
 *   node tools/bench-feature.js [--epochs=5] [--out=DIR] [SPEC...]
 *
 * Each spec runs for `epochs` epochs (default 4) on its own data with evaluation only after the last
 * one (`evalEvery` past the end), so epochs 2..epochs-1 are pure training: the teacher's outputs (taps
 * included) come from the teacher-output cache filled in epoch 1. Reported per spec:
 *   - steady s/epoch: mean of epochs 2..epochs-1 (train only);
 *   - epoch 1 s: includes forwarding the frozen teacher once over the training set;
 *   - setup s: process wall time minus the epochs (start-up, model build, plugin runStart work such as
 *     factor transfer's paraphraser pre-training, final evaluation and calibration, writing the folder);
 *   - × KD: steady s/epoch over that of the pair's "KD twin" — the same spec with its plugins replaced
 *     by CE + loss/hinton-kd (T = 4), run the same way. One twin per (teacher, student) pair.
 * Teachers must be in the cache (.kd-cache) or are trained first (not timed: a separate process).
 */
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');

const ROOT = path.resolve(__dirname, '..');
const BIN = path.join(ROOT, 'packages/cli/dist/bin.js');
const args = process.argv.slice(2);
const option = (name, dflt) => {
  const a = args.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : dflt;
};
const EPOCHS = Number(option('epochs', '4'));
if (!(EPOCHS >= 3)) throw new Error('--epochs must be at least 3 (epoch 1 fills the teacher cache, the last one evaluates)');
const OUT = option('out') ? path.resolve(option('out')) : fs.mkdtempSync(path.join(os.tmpdir(), 'bench-feature-'));
const given = args.filter((a) => !a.startsWith('--'));
const specs = given.length
  ? given.map((f) => path.resolve(f))
  : ['kd-cnn.yaml', ...fs.readdirSync(path.join(ROOT, 'examples')).filter((f) => /^feature-.*\.yaml$/.test(f) && !/-(hint|init)\.yaml$/.test(f)).sort()]
      .map((f) => path.join(ROOT, 'examples', f));

const YAML = require(require.resolve('yaml', { paths: [path.join(ROOT, 'packages/kd-core')] }));

/** Runs one spec file; returns per-epoch seconds and wall seconds. */
function timeRun(specFile, name) {
  const out = path.join(OUT, name);
  fs.rmSync(out, { recursive: true, force: true });
  const env = { ...process.env };
  delete env.FORCE_COLOR;
  const t0 = process.hrtime.bigint();
  execFileSync(process.execPath, [BIN, 'run', specFile, '--out', out, '--quiet', '--set', `train.epochs=${EPOCHS}`, '--set', `evalEvery=${EPOCHS + 1}`], {
    cwd: ROOT, env, stdio: ['ignore', 'ignore', 'inherit'],
  });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const history = fs.readFileSync(path.join(out, 'history.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const secs = history.filter((h) => h.phase === history[history.length - 1].phase).map((h) => h.seconds);
  const steady = secs.slice(1, EPOCHS - 1);
  const accuracy = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8')).eval.student?.accuracy;
  return {
    name, wall, epoch1: secs[0], steady: steady.reduce((a, b) => a + b, 0) / steady.length,
    steadySpread: Math.max(...steady) - Math.min(...steady), setup: wall - history.reduce((a, h) => a + h.seconds, 0), accuracy,
  };
}

/** The spec with its plugins replaced by CE + Hinton KD, written beside the bench output. */
function twinOf(doc, key) {
  const twin = { ...doc, plugins: [{ use: 'loss/cross-entropy', weight: 1 }, { use: 'loss/hinton-kd', with: { temperature: 4 }, weight: 1 }] };
  const file = path.join(OUT, `kd-twin-${key}.yaml`);
  fs.writeFileSync(file, YAML.stringify(twin));
  return file;
}

fs.mkdirSync(OUT, { recursive: true });
const pairKey = (doc) => `${doc.teacher?.model}${doc.teacher?.options ? JSON.stringify(doc.teacher.options) : ''}-${doc.student?.model}`;
const twins = new Map();
const rows = [];
for (const file of specs) {
  const doc = YAML.parse(fs.readFileSync(file, 'utf8'));
  if (!doc.teacher) {
    process.stderr.write(`${path.basename(file)}: no teacher, so no KD twin — skipped\n`);
    continue;
  }
  if (doc.data && !doc.data.subset && (doc.data.path || doc.data.dir)) throw new Error(`${file}: data paths are resolved against the spec folder; bench only the shipped-subset specs`);
  const key = pairKey(doc).replace(/[^a-z0-9-]+/gi, '_');
  if (!twins.has(key)) {
    process.stderr.write(`KD twin for ${key} …\n`);
    twins.set(key, timeRun(twinOf(doc, key), `kd-twin-${key}`));
  }
  const name = path.basename(file, '.yaml');
  process.stderr.write(`${name} …\n`);
  rows.push({ ...timeRun(file, name), twin: twins.get(key), pair: key });
}

const f1 = (x) => x.toFixed(1);
console.log(`<!-- node tools/bench-feature.js --epochs=${EPOCHS}; ${os.cpus().length} × ${os.cpus()[0].model.trim()}; ${new Date().toISOString().slice(0, 10)} -->`);
console.log('| spec | pair | steady s/epoch | × KD twin | epoch 1 s | setup s | KD twin steady s/epoch |');
console.log('|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.name} | ${r.pair} | ${f1(r.steady)} ± ${f1(r.steadySpread / 2)} | ${(r.steady / r.twin.steady).toFixed(2)} | ${f1(r.epoch1)} | ${f1(r.setup)} | ${f1(r.twin.steady)} |`);
}
fs.writeFileSync(path.join(OUT, 'bench-feature.json'), JSON.stringify({ epochs: EPOCHS, rows, twins: Object.fromEntries(twins) }, null, 2));
process.stderr.write(`run folders and bench-feature.json in ${OUT}\n`);
