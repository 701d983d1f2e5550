#!/usr/bin/env node
/**
 * Backend benchmark: ms per training step on tfjs cpu vs tfjs wasm (+ @tfkd/backend-wasm-train).
 *
 *   npm run bench:backend            # builds packages/backend-wasm-train (and kd-core) if needed, then runs
 *   node tools/bench-backend.js [--quick] [--threads=N] [--no-threads] [--no-build]
 *
 * Steps (hand-written tfjs loops, no framework):
 *   a) Hinton MLP KD: teacher 784-1200-1200-10 (frozen, forward only), student 784-128-128-10,
 *      batch 128, loss = T^2 * KL(softmax(t/T) || softmax(s/T)) (batchmean) + CE, T = 4, Adam 1e-3.
 *   b) small CNN train step, batch 64: conv(1->16,3x3,valid)-relu-maxpool2-conv(16->32,3x3)-relu-
 *      maxpool2-flatten-dense10, CE, Adam.
 *   c) ResNet KD step, batch 64, 28x28x1: student = stem + 3 stages of basic blocks (16/32/64 ch,
 *      stride 2 into stages 2 and 3, 1x1 projection shortcuts, no batch norm), teacher the same at
 *      32/64/128 (frozen), KD loss as in (a).
 *
 * To add another implementation of a step (e.g. the "framework" column), push an entry onto
 * `IMPLEMENTATIONS` with the same `build(tf)` contract: returns { step(): void, dispose(): void }.
 * `timeSteps(label, backend, stepFn, n)` is exported for reuse.
 */
'use strict';
const path = require('path');
const fs = require('fs');
const { execFileSync } = require('child_process');

const ROOT = path.resolve(__dirname, '..');
const PKG = path.join(ROOT, 'packages/backend-wasm-train');
const args = process.argv.slice(2);
const flag = (name) => args.includes(`--${name}`);
const option = (name, dflt) => {
  const a = args.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : dflt;
};

/** Builds kd-core and the engine (if they have no dist) and this package (incremental tsc), unless --no-build. */
function ensureBuilt() {
  if (flag('no-build')) return;
  const tsc = path.join(ROOT, 'node_modules/typescript/bin/tsc');
  for (const dir of ['packages/kd-core', 'packages/engine', 'packages/backend-wasm-train']) {
    const abs = path.join(ROOT, dir);
    if (!dir.endsWith('backend-wasm-train') && fs.existsSync(path.join(abs, 'dist/index.js'))) continue;
    execFileSync(process.execPath, [tsc, '-p', path.join(abs, 'tsconfig.lib.json')], { cwd: abs, stdio: 'inherit' });
  }
}

/** Runs `stepFn` n times after `warmup` untimed calls; checks that the tensor count does not grow. */
function timeSteps(label, backend, stepFn, n, warmup = 1) {
  const tf = require('@tensorflow/tfjs');
  if (tf.getBackend() !== backend) throw new Error(`timeSteps(${label}): active backend is ${tf.getBackend()}, not ${backend}`);
  for (let i = 0; i < warmup; i++) stepFn();
  const before = tf.memory().numTensors;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) stepFn();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6 / n;
  const after = tf.memory().numTensors;
  return { label, backend, n, ms, tensorsBefore: before, tensorsAfter: after, leak: after !== before };
}

// ---------------------------------------------------------------------------------------------
// Model pieces (plain tfjs ops).

function rng(seed) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0) / 4294967296) * 2 - 1;
}
function heInit(tf, shape, fanIn, seed) {
  const r = rng(seed);
  const size = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(size);
  const scale = Math.sqrt(6 / fanIn);
  for (let i = 0; i < size; i++) v[i] = r() * scale;
  return tf.tensor(v, shape);
}
function batchData(tf, xShape, classes, seed) {
  const r = rng(seed);
  const size = xShape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(size).map(() => (r() + 1) / 2);
  const y = Array.from({ length: xShape[0] }, () => Math.floor(((r() + 1) / 2) * classes) % classes);
  return { x: tf.tensor(x, xShape), y: tf.tidy(() => tf.oneHot(tf.tensor1d(y, 'int32'), classes).toFloat()) };
}
/** Trainable params become variables (the initial tensors are released). */
function maybeVars(tf, p, trainable) {
  if (!trainable) return p;
  const v = { w: tf.variable(p.w), b: tf.variable(p.b) };
  tf.dispose([p.w, p.b]);
  return v;
}
function dense(tf, fanIn, fanOut, seed, trainable) {
  return maybeVars(tf, { w: heInit(tf, [fanIn, fanOut], fanIn, seed), b: tf.zeros([fanOut]) }, trainable);
}
function convParams(tf, k, cin, cout, seed, trainable) {
  return maybeVars(tf, { w: heInit(tf, [k, k, cin, cout], k * k * cin, seed), b: tf.zeros([cout]) }, trainable);
}
const params = (o) => Object.values(o).flatMap((v) => (v && v.w ? [v.w, v.b] : []));

/** T^2 * KL(softmax(t/T) || softmax(s/T)) averaged over the batch, plus CE on the labels. */
function kdLoss(tf, sLogits, tLogits, y, T) {
  const logPs = tf.logSoftmax(tf.div(sLogits, T));
  const logPt = tf.logSoftmax(tf.div(tLogits, T));
  const kl = tf.div(tf.sum(tf.mul(tf.exp(logPt), tf.sub(logPt, logPs))), sLogits.shape[0]);
  const ce = tf.neg(tf.mean(tf.sum(tf.mul(y, tf.logSoftmax(sLogits)), 1)));
  return tf.add(tf.mul(kl, T * T), ce);
}

function mlp(tf, sizes, seed, trainable) {
  const layers = {};
  for (let i = 0; i + 1 < sizes.length; i++) layers[`l${i}`] = dense(tf, sizes[i], sizes[i + 1], seed + i, trainable);
  const forward = (x) => {
    let h = x;
    const n = sizes.length - 1;
    for (let i = 0; i < n; i++) {
      h = tf.add(tf.matMul(h, layers[`l${i}`].w), layers[`l${i}`].b);
      if (i < n - 1) h = tf.relu(h);
    }
    return h;
  };
  return { layers, forward };
}

/** (a) Hinton MLP KD step. */
function buildMlpKd(tf) {
  const teacher = mlp(tf, [784, 1200, 1200, 10], 1, false);
  const student = mlp(tf, [784, 128, 128, 10], 100, true);
  const { x, y } = batchData(tf, [128, 784], 10, 7);
  const opt = tf.train.adam(1e-3);
  const vars = params(student.layers);
  return {
    step() {
      const t = tf.tidy(() => teacher.forward(x));
      const loss = opt.minimize(() => kdLoss(tf, student.forward(x), t, y, 4), true, vars);
      loss.dataSync();
      tf.dispose([t, loss]);
    },
    dispose() {
      opt.dispose();
      tf.dispose([x, y, ...params(teacher.layers), ...vars]);
    },
  };
}

/** (b) small CNN train step. */
function buildCnn(tf) {
  const p = {
    c1: convParams(tf, 3, 1, 16, 11, true),
    c2: convParams(tf, 3, 16, 32, 12, true),
    d: dense(tf, 5 * 5 * 32, 10, 13, true),
  };
  const { x, y } = batchData(tf, [64, 28, 28, 1], 10, 8);
  const opt = tf.train.adam(1e-3);
  const vars = params(p);
  const forward = (inp) => {
    let h = tf.maxPool(tf.relu(tf.add(tf.conv2d(inp, p.c1.w, 1, 'valid'), p.c1.b)), 2, 2, 'valid');
    h = tf.maxPool(tf.relu(tf.add(tf.conv2d(h, p.c2.w, 1, 'valid'), p.c2.b)), 2, 2, 'valid');
    return tf.add(tf.matMul(tf.reshape(h, [h.shape[0], -1]), p.d.w), p.d.b);
  };
  return {
    step() {
      const loss = opt.minimize(() => tf.losses.softmaxCrossEntropy(y, forward(x)), true, vars);
      loss.dataSync();
      loss.dispose();
    },
    dispose() {
      opt.dispose();
      tf.dispose([x, y, ...vars]);
    },
  };
}

/** A small ResNet: stem + one basic block per stage, widths w, strides 1/2/2, GAP, dense 10. */
function resnet(tf, widths, seed, trainable) {
  const p = { stem: convParams(tf, 3, 1, widths[0], seed, trainable) };
  let cin = widths[0];
  widths.forEach((w, i) => {
    p[`s${i}a`] = convParams(tf, 3, cin, w, seed + 10 * i + 1, trainable);
    p[`s${i}b`] = convParams(tf, 3, w, w, seed + 10 * i + 2, trainable);
    if (cin !== w || i > 0) p[`s${i}p`] = convParams(tf, 1, cin, w, seed + 10 * i + 3, trainable);
    cin = w;
  });
  p.fc = dense(tf, cin, 10, seed + 99, trainable);
  const conv = (h, c, stride) => tf.add(tf.conv2d(h, c.w, stride, 'same'), c.b);
  const forward = (x) => {
    let h = tf.relu(conv(x, p.stem, 1));
    widths.forEach((_, i) => {
      const stride = i === 0 ? 1 : 2;
      const r = conv(tf.relu(conv(h, p[`s${i}a`], stride)), p[`s${i}b`], 1);
      const shortcut = p[`s${i}p`] ? conv(h, p[`s${i}p`], stride) : h;
      h = tf.relu(tf.add(r, shortcut));
    });
    return tf.add(tf.matMul(tf.mean(h, [1, 2]), p.fc.w), p.fc.b);
  };
  return { p, forward };
}

/** (c) ResNet student KD step with a wider frozen ResNet teacher. */
function buildResnetKd(tf) {
  const teacher = resnet(tf, [32, 64, 128], 300, false);
  const student = resnet(tf, [16, 32, 64], 400, true);
  const { x, y } = batchData(tf, [64, 28, 28, 1], 10, 9);
  const opt = tf.train.adam(1e-3);
  const vars = params(student.p);
  return {
    step() {
      const t = tf.tidy(() => teacher.forward(x));
      const loss = opt.minimize(() => kdLoss(tf, student.forward(x), t, y, 4), true, vars);
      loss.dataSync();
      tf.dispose([t, loss]);
    },
    dispose() {
      opt.dispose();
      tf.dispose([x, y, ...params(teacher.p), ...vars]);
    },
  };
}

/** Steps x implementations. `n` = timed steps per backend. */
const STEPS = [
  { id: 'a', name: '(a) MLP KD 784-1200-1200-10 -> 784-128-128-10, b128', n: { cpu: 5, wasm: 30 } },
  { id: 'b', name: '(b) CNN 2 conv + dense, b64', n: { cpu: 3, wasm: 20 } },
  { id: 'c', name: '(c) ResNet KD 16/32/64 <- 32/64/128, b64', n: { cpu: 1, wasm: 5 } },
];
/**
 * The same steps through the framework: the engine's run of a spec (zoo models, loss
 * plugins, the bus, batches gathered from a dataset), stepped with `engine.stepper()`. Measured on
 * wasm only (the cpu side of (c) alone takes minutes per step). (c) uses the zoo ResNets, which have
 * batch norm; the hand-written (c) has none, so (c) compares similar, not identical, networks.
 */
async function buildFramework(tf, id) {
  const { RunSpec } = require(path.join(ROOT, 'packages/kd-core/dist'));
  const { prepareRun } = require(path.join(ROOT, 'packages/engine/dist'));
  const { defaultRegistry } = require(path.join(ROOT, 'packages/cli/dist'));
  const adam = { name: 'adam', lr: 1e-3, weightDecay: 0 };
  const kd = [{ use: 'loss/cross-entropy' }, { use: 'loss/hinton-kd', with: { temperature: 4 } }];
  const teacherTrain = { epochs: 1, maxBatches: 1, batchSize: 64, optimizer: adam };
  const specs = {
    a: { teacher: { model: 'mlp-teacher', seed: 1, train: teacherTrain }, student: { model: 'mlp-student' }, batch: 128, plugins: kd },
    b: { student: { model: 'cnn-small' }, batch: 64, plugins: [{ use: 'loss/cross-entropy' }] },
    c: {
      teacher: { model: 'resnet-teacher', options: { widths: [32, 64, 128], blocksPerStage: 1 }, seed: 1, train: teacherTrain },
      student: { model: 'resnet-student' },
      batch: 64,
      plugins: kd,
    },
  };
  const { batch, plugins, ...roles } = specs[id];
  const spec = RunSpec.parse({
    seed: 1,
    backend: tf.getBackend(),
    data: { name: 'synthetic', train: batch * 4, test: 8, numClasses: 10, shape: [28, 28, 1] },
    ...roles,
    train: { epochs: 1, batchSize: batch, optimizer: adam },
    plugins,
    // The same work as the loops: no teacher-output cache (it would skip the teacher forward from
    // the second pass over the data on).
    teacherCache: 'off',
  });
  const backend = { name: tf.getBackend(), label: 'bench', requested: tf.getBackend(), skipped: [] };
  const engine = await prepareRun(spec, { registry: defaultRegistry(), cacheDir: null, backend });
  const stepper = await engine.stepper();
  return { step: () => stepper.step(), dispose: () => engine.dispose() };
}

/**
 * The zoo's LayersModels in a minimal hand-written loop (fixed batch tensors, variableGrads, Adam):
 * the baseline that isolates the framework's own overhead from tfjs-layers' (same networks as the
 * framework column).
 */
function buildLayersLoop(tf, id) {
  const { MODEL_ZOO } = require(path.join(ROOT, 'packages/models/dist'));
  const zoo = (name, options = {}) =>
    MODEL_ZOO.find((d) => d.id === name).build({ inputShape: [28, 28, 1], numClasses: 10, seed: 1, ...options });
  const setups = {
    a: { student: zoo('mlp-student'), teacher: zoo('mlp-teacher'), batch: 128 },
    b: { student: zoo('cnn-small'), teacher: null, batch: 64 },
    c: { student: zoo('resnet-student'), teacher: zoo('resnet-teacher', { widths: [32, 64, 128], blocksPerStage: 1 }), batch: 64 },
  };
  const { student, teacher, batch } = setups[id];
  const { x, y } = batchData(tf, [batch, 28, 28, 1], 10, 3);
  const vars = student.trainableWeights.map((w) => w.read());
  const opt = tf.train.adam(1e-3);
  return {
    step() {
      tf.tidy(() => {
        const t = teacher ? teacher.apply(x, { training: false }) : null;
        const { value, grads } = tf.variableGrads(() => {
          const s = student.apply(x, { training: true });
          return t ? kdLoss(tf, s, t, y, 4) : tf.losses.softmaxCrossEntropy(y, s);
        }, vars);
        opt.applyGradients(grads);
        value.dataSync();
      });
    },
    dispose() {
      opt.dispose();
      student.dispose();
      teacher?.dispose();
      x.dispose();
      y.dispose();
    },
  };
}

const IMPLEMENTATIONS = [
  { impl: 'hand-written', build: { a: buildMlpKd, b: buildCnn, c: buildResnetKd } },
  {
    impl: 'layers loop',
    backends: ['wasm'],
    build: { a: (tf) => buildLayersLoop(tf, 'a'), b: (tf) => buildLayersLoop(tf, 'b'), c: (tf) => buildLayersLoop(tf, 'c') },
  },
  {
    impl: 'framework',
    backends: ['wasm'],
    build: { a: (tf) => buildFramework(tf, 'a'), b: (tf) => buildFramework(tf, 'b'), c: (tf) => buildFramework(tf, 'c') },
  },
];

async function runBackend(backend, threads) {
  const tf = require('@tensorflow/tfjs');
  if (backend === 'wasm') {
    const { initWasmBackend, wasmThreadsCount } = require(path.join(PKG, 'dist'));
    if (!(await initWasmBackend({ threads }))) throw new Error('wasm backend failed to initialise');
    threads = wasmThreadsCount();
  } else {
    await tf.setBackend('cpu');
  }
  const quick = flag('quick');
  const rows = [];
  for (const impl of IMPLEMENTATIONS) {
    if (impl.backends && !impl.backends.includes(backend)) continue;
    for (const s of STEPS) {
      const model = await impl.build[s.id](tf);
      const n = quick ? 1 : s.n[backend];
      const r = timeSteps(`${s.id}/${impl.impl}`, backend, () => model.step(), n, backend === 'cpu' ? 1 : 2);
      model.dispose();
      rows.push({ ...r, step: s.id, impl: impl.impl, threads: backend === 'wasm' ? threads : 1 });
      process.stderr.write(`  ${backend}${backend === 'wasm' ? ` x${threads}` : ''} ${s.name}: ${r.ms.toFixed(1)} ms/step (n=${n})\n`);
    }
  }
  return rows;
}

function table(rows, threadRows) {
  const get = (list, step, impl, backend) => list.find((r) => r.step === step && r.impl === impl && r.backend === backend);
  const lines = [
    '| step | impl | cpu ms/step | wasm ms/step | wasm speed-up | wasm 2 threads ms/step | numTensors before -> after (cpu / wasm) |',
    '|---|---|---:|---:|---:|---:|---|',
  ];
  for (const impl of IMPLEMENTATIONS) {
    for (const s of STEPS) {
      const cpu = get(rows, s.id, impl.impl, 'cpu');
      const w = get(rows, s.id, impl.impl, 'wasm');
      const t = threadRows && get(threadRows, s.id, impl.impl, 'wasm');
      const fmt = (r) => (r ? r.ms.toFixed(1) : 'n/a');
      const mem = (r) => (r ? `${r.tensorsBefore}->${r.tensorsAfter}${r.leak ? ' LEAK' : ''}` : 'n/a');
      const tcell = t ? `${fmt(t)} (x${t.threads})` : 'n/a';
      lines.push(`| ${s.name} | ${impl.impl} | ${fmt(cpu)} | ${fmt(w)} | ${cpu && w ? (cpu.ms / w.ms).toFixed(1) + 'x' : 'n/a'} | ${tcell} | ${mem(cpu)} / ${mem(w)} |`);
    }
  }
  return lines.join('\n');
}

async function main() {
  if (flag('child')) {
    // Child mode: one backend, JSON on stdout (used for the threaded wasm run, which must be a
    // fresh process because the wasm backend initialises once).
    const rows = await runBackend(option('backend', 'wasm'), Number(option('threads', '1')));
    process.stdout.write(JSON.stringify(rows));
    process.exit(0);
  }
  ensureBuilt();
  const tf = require('@tensorflow/tfjs');
  process.stderr.write(`tfjs ${tf.version.tfjs}, node ${process.version}, ${require('os').cpus().length} cpus\n`);
  const rows = [...(await runBackend('cpu')), ...(await runBackend('wasm', 1))];
  let threadRows = null;
  if (!flag('no-threads')) {
    const threads = option('threads', '2');
    try {
      const out = execFileSync(process.execPath, [__filename, '--child', '--backend=wasm', `--threads=${threads}`, '--no-build', ...(flag('quick') ? ['--quick'] : [])], {
        stdio: ['ignore', 'pipe', 'inherit'],
        timeout: 15 * 60 * 1000,
      });
      threadRows = JSON.parse(out.toString());
    } catch (e) {
      process.stderr.write(`threaded wasm run failed: ${e.message}\n`);
    }
  }
  const leaks = [...rows, ...(threadRows || [])].filter((r) => r.leak);
  console.log(`\nBackend benchmark, ${new Date().toISOString().slice(0, 10)}, tfjs ${tf.version.tfjs}, node ${process.version}, ${require('os').cpus().length} cpus\n`);
  console.log(table(rows, threadRows));
  if (leaks.length) {
    console.log(`\nLEAK: numTensors grew during ${leaks.map((r) => `${r.backend}/${r.label}`).join(', ')}`);
    process.exitCode = 1;
  }
}

module.exports = { timeSteps, STEPS, IMPLEMENTATIONS, buildMlpKd, buildCnn, buildResnetKd, kdLoss };

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
