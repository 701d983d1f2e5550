#!/usr/bin/env node
/**
 * Soak test: 2,000 steps of a stacked run on the shipped Fashion-MNIST subset, wasm backend,
 * through `Engine.stepper()`; `tf.memory().numTensors` and the process RSS are sampled every 50
 * steps. Fails (exit 1) when the tensor count changes after the warm-up or RSS grows by the bound
 * or more after it.
 *
 *   npm run soak                      # = npm run build, then node --expose-gc tools/soak.js
 *   node --expose-gc tools/soak.js [--steps=2000] [--every=50] [--warmup=200] [--rss-bound=64] [--backend=wasm]
 *
 * The stack is examples/unix-attention.yaml plus loss/cross-entropy: sampler/unix (keep 48 of 64) →
 * loss/attention (student.block2 ↔ teacher.block3, weight 1000) + loss/hinton-kd (T = 4, 0.9) +
 * loss/cross-entropy (0.1); student cnn-small, teacher cnn-large trained from labels for one epoch
 * (cached in .kd-cache, so only the first soak pays for it).
 *
 * The RSS bound (default 64 MB over the warm-up value, measured after a full GC when --expose-gc is
 * on): in the steady state a step allocates nothing that outlives it — weights, optimizer slots and
 * the wasm heap's high-water mark are all in place after the first steps (WebAssembly memory only
 * grows, and it reaches its peak within the first few hundred steps). A leak of one batch-sized
 * tensor per step (48×28×28×1 float32 ≈ 150 KB) would add ≈ 270 MB over the 1,800 measured steps;
 * 64 MB catches any leak of ≳ 36 KB per step while leaving room for V8's heap and allocator noise.
 * Tensor leaks of any size are caught by the exact numTensors check.
 */
'use strict';
const os = require('os');
const path = require('path');
const { soak, judge, table } = require('./soak-lib');

const ROOT = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const option = (name, dflt) => {
  const a = args.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : dflt;
};
const steps = Number(option('steps', 2000));
const every = Number(option('every', 50));
const warmup = Number(option('warmup', 200));
const rssBoundMB = Number(option('rss-bound', 64));
const backend = option('backend', 'wasm');

async function main() {
  const tf = require('@tensorflow/tfjs-core');
  tf.env().set('PROD', true);
  const { RunSpec } = require(path.join(ROOT, 'packages/kd-core/dist'));
  const { prepareRun } = require(path.join(ROOT, 'packages/engine/dist'));
  const { defaultRegistry } = require(path.join(ROOT, 'packages/cli/dist'));
  const adam = { name: 'adam', lr: 0.001, weightDecay: 0 };
  const spec = RunSpec.parse({
    seed: 1,
    backend,
    data: { name: 'fashion-mnist', subset: true },
    teacher: { model: 'cnn-large', seed: 1, train: { epochs: 1, batchSize: 64, optimizer: adam } },
    student: { model: 'cnn-small' },
    train: { epochs: 10, batchSize: 64, optimizer: adam },
    plugins: [
      { use: 'sampler/unix', with: { keep: 48, w: 10, b: 32 } },
      { use: 'loss/attention', with: { pairs: [['student.block2', 'teacher.block3']] }, weight: 1000 },
      { use: 'loss/hinton-kd', with: { temperature: 4 }, weight: 0.9 },
      { use: 'loss/cross-entropy', weight: 0.1 },
    ],
  });
  const log = (l) => process.stderr.write(`${l}\n`);
  const t0 = Date.now();
  const engine = await prepareRun(spec, { registry: defaultRegistry(), cacheDir: path.join(ROOT, '.kd-cache'), log });
  const stepper = await engine.stepper();
  const prepSeconds = (Date.now() - t0) / 1000;
  const load0 = os.loadavg();
  log(`soak: ${steps} steps on ${tf.getBackend()}, sampling every ${every}, warm-up ${warmup}, RSS bound ${rssBoundMB} MB` +
    `${typeof global.gc === 'function' ? ', GC before each sample' : ' (no --expose-gc: samples without a forced GC)'}; prepare ${prepSeconds.toFixed(1)} s`);
  const t1 = Date.now();
  const result = await soak({
    tf,
    stepper,
    steps,
    every,
    onSample: (s) => s.step % (every * 4) === 0 && log(`  step ${s.step}: ${s.numTensors} tensors, RSS ${s.rssMB.toFixed(1)} MB`),
  });
  const seconds = (Date.now() - t1) / 1000;
  const load1 = os.loadavg();
  const v = judge(result, { warmup, rssBoundMB });
  engine.dispose();

  const cpus = os.cpus();
  console.log(`\nSoak, ${new Date().toISOString().slice(0, 10)}: ${steps} steps of sampler/unix + loss/attention + loss/hinton-kd + loss/cross-entropy`);
  console.log(`data ${spec.data.name} (shipped subset), student cnn-small, teacher cnn-large, batch 64 (UNIX keeps 48), backend ${tf.getBackend()}`);
  console.log(`node ${process.version}, tfjs ${require('@tensorflow/tfjs-core').version_core}, ${cpus.length} × ${cpus[0] ? cpus[0].model.trim() : 'cpu'}`);
  console.log(`load average (1 min) at start ${load0[0].toFixed(2)}, at end ${load1[0].toFixed(2)}; ${seconds.toFixed(0)} s for the steps (${((seconds * 1000) / steps).toFixed(1)} ms/step)\n`);
  console.log(table(result.samples, { warmup, stride: Math.max(1, Math.round(200 / every)) }));
  console.log('');
  console.log(`numTensors: ${result.samples[1] ? result.samples[1].numTensors : '–'} after ${every} steps, ${v.tensorsAtWarmup} at step ${v.warmupStep}, ${v.tensorsAtEnd} at step ${steps}`);
  console.log(`RSS: ${v.rssAtWarmupMB.toFixed(1)} MB at step ${v.warmupStep}; max growth after it ${v.rssGrowthMB.toFixed(1)} MB, at the end ${v.rssEndGrowthMB.toFixed(1)} MB, trend ${v.rssSlopeMBPer1000.toFixed(2)} MB per 1,000 steps (bound ${rssBoundMB} MB)`);
  console.log(v.ok ? 'soak: PASS' : `soak: FAIL\n  ${v.failures.join('\n  ')}`);
  process.exitCode = v.ok ? 0 : 1;
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exitCode = 2;
});
