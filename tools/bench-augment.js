#!/usr/bin/env node
/**
 * Augmentation cost against a training step (issue #20): each `augment/*` plugin's whole batchStart
 * work (read the batch, draw per-sample parameters from its seeded generator, typed-array transform,
 * new tensors, replaceBatch) on a b128 28×28×1 batch, against a `cnn-small` train step (b128, CE,
 * Adam) on wasm with @tfkd/backend-wasm-train's kernels — ABAB in one process: every round times the
 * step, then each augmentation; the median over rounds is reported, with the min–max spread.
 *
 *   npm run bench:augment                      # builds kd-core, models, backend-wasm-train, augment if needed
 *   node tools/bench-augment.js [--rounds=7] [--threads=1] [--no-build]
 */
'use strict';
const path = require('path');
const fs = require('fs');
const os = require('os');
const { execFileSync } = require('child_process');

const ROOT = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const option = (name, dflt) => {
  const a = args.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : dflt;
};

function ensureBuilt() {
  if (args.includes('--no-build')) return;
  const tsc = path.join(ROOT, 'node_modules/typescript/bin/tsc');
  for (const dir of ['kd-core', 'models', 'backend-wasm-train', 'augment']) {
    const abs = path.join(ROOT, 'packages', dir);
    if (dir !== 'augment' && fs.existsSync(path.join(abs, 'dist/index.js'))) continue;
    execFileSync(process.execPath, [tsc, '-p', path.join(abs, 'tsconfig.lib.json')], { cwd: abs, stdio: 'inherit' });
  }
}

const CASES = [
  ['augment/random-crop', { padding: 4 }],
  ['augment/random-crop', { padding: 4, mode: 'reflect' }],
  ['augment/flip', {}],
  ['augment/random-erasing', {}],
  ['augment/mixup', {}],
  ['augment/cutmix', { p: 1 }],
  ['augment/randaugment', {}],
];

/** A plugin's batchStart handler with a minimal step context (what the engine's gives it). */
function pluginStep(tf, kd, def, options, batch) {
  let handler = null;
  const plugin = def.create(def.options.parse(options), { name: def.id, specPath: 'plugins[0]', roles: [], rng: new kd.Rng(1) });
  plugin.register({ on: (hook, fn) => hook === 'batchStart' && (handler = fn) });
  const rng = new kd.Rng(7);
  return () =>
    tf.tidy(() => {
      const ctx = {
        batch: { ...batch },
        numClasses: 10,
        rng,
        replaceBatch(b) {
          ctx.batch = { x: b.x, y: b.y, indices: null, size: b.x.shape[0], ...(b.targets ? { targets: b.targets } : {}) };
        },
      };
      handler(ctx);
      ctx.batch.x.dataSync(); // the next consumer reads it
    });
}

async function main() {
  ensureBuilt();
  const tf = require('@tensorflow/tfjs');
  const { initWasmBackend, wasmThreadsCount } = require(path.join(ROOT, 'packages/backend-wasm-train/dist'));
  if (!(await initWasmBackend({ threads: Number(option('threads', '1')) }))) throw new Error('wasm backend failed to initialise');
  const kd = require(path.join(ROOT, 'packages/kd-core/dist'));
  const { AUGMENTATIONS } = require(path.join(ROOT, 'packages/augment/dist'));
  const { MODEL_ZOO } = require(path.join(ROOT, 'packages/models/dist'));
  const rounds = Number(option('rounds', '7'));

  const r = new kd.Rng(21);
  const x = tf.tensor4d(Float32Array.from({ length: 128 * 784 }, () => r.next()), [128, 28, 28, 1]);
  const y = tf.tensor1d(Int32Array.from({ length: 128 }, () => r.int(10)), 'int32');
  const model = MODEL_ZOO.find((d) => d.id === 'cnn-small').build({ inputShape: [28, 28, 1], numClasses: 10, seed: 1 });
  const vars = model.trainableWeights.map((w) => w.read());
  const opt = tf.train.adam(1e-3);
  const yHot = tf.tidy(() => tf.oneHot(y, 10).toFloat());
  const trainStep = () =>
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(yHot, model.apply(x, { training: true })), vars);
      opt.applyGradients(grads);
      value.dataSync();
    });
  const batch = { x, y, indices: null, size: 128 };
  const augs = CASES.map(([id, o]) => ({ label: `${id} ${JSON.stringify(o)}`, fn: pluginStep(tf, kd, AUGMENTATIONS.find((d) => d.id === id), o, batch) }));

  const time = (fn, n) => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn();
    return Number(process.hrtime.bigint() - t0) / 1e6 / n;
  };
  trainStep();
  augs.forEach((a) => a.fn());
  const before = tf.memory().numTensors;
  const stepMs = [];
  const augMs = augs.map(() => []);
  for (let k = 0; k < rounds; k++) {
    stepMs.push(time(trainStep, 3));
    augs.forEach((a, i) => augMs[i].push(time(a.fn, 10)));
  }
  if (tf.memory().numTensors !== before) throw new Error(`tensor leak: ${before} → ${tf.memory().numTensors}`);
  const med = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
  const spread = (v) => `${Math.min(...v).toFixed(2)}–${Math.max(...v).toFixed(2)}`;
  const step = med(stepMs);
  console.log(`Augmentation cost, ${new Date().toISOString()}, tfjs ${tf.version.tfjs}, node ${process.version}, ${os.cpus().length} cpus, wasm x${wasmThreadsCount()}, ${rounds} rounds, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log('');
  console.log('| step / augmentation (b128, 28×28×1) | ms (median) | spread | % of a cnn-small step |');
  console.log('| --- | ---: | ---: | ---: |');
  console.log(`| cnn-small train step (CE, Adam) | ${step.toFixed(1)} | ${spread(stepMs)} | 100 |`);
  augs.forEach((a, i) => console.log(`| ${a.label} | ${med(augMs[i]).toFixed(2)} | ${spread(augMs[i])} | ${((100 * med(augMs[i])) / step).toFixed(1)} |`));
  console.log(`\nload after: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  tf.dispose([x, y, yHot]);
  opt.dispose();
  model.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
