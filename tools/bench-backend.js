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
 * Conv steps (#19; the zoo's LayersModels in a minimal loop, wasm):
 *   d) cnn-large train step, b128, CE, Adam      e) cnn-large forward (inference), b128
 *   f) KD step, cnn-large teacher (frozen) -> cnn-small student, b128, T = 4, Adam: sequential
 *      (teacher forward inline), and `f-overlap`: the teacher forward of batch i+1 in a worker thread
 *      (@tfkd/engine/node TeacherWorker, own wasm backend) while the student steps batch i; plus its
 *      parts `f-teacher` (teacher forward alone) and `f-student` (student step with given logits).
 *
 *   node tools/bench-backend.js --conv [--rounds=3] [--threads=N]   # d/e/f in ABAB rounds, median + spread
 *   node tools/bench-backend.js --peer [--rounds=3]                 # PyTorch peer vs ours, alternated per round
 *   node tools/bench-backend.js --threads-vs=2 [--rounds=3]         # d/e at 1 vs N wasm threads (ABAB processes)
 *   node tools/bench-backend.js --profile [--batch=128]             # tf.profile per kernel of d and e
 *   node tools/bench-backend.js --ab-kernels [--rounds=5]           # d/e with the #19 kernels vs native, ABAB in-process
 *   node tools/bench-backend.js --ab-kernels --dw [--rounds=9]      # dW: SIMD GEMM vs the composed XNNPACK path per cnn-large layer
 *                                                                   # (+ forward conv and dx GFLOP/s), then the cnn-large step, ABAB in-process
 *   node tools/bench-backend.js --fold [--rounds=5] [--batch=128]   # frozen-teacher forward, batch norms folded vs not, ABAB in-process
 *   node tools/bench-backend.js --engine-teacher [--rounds=5]       # the engine's KD step (Engine.stepper) with kd run's --teacher-worker /
 *                                                                   # --teacher-fold-bn off/on, resnet-teacher -> resnet-student b64, ABCD in-process
 *   node tools/bench-backend.js --kernel-calls [--only=b,d]         # kernel calls per train step, tf.train.adam vs the fused Adam (no timing)
 *   node tools/bench-backend.js --ab-fused [--rounds=9] [--only=b,d] # before (tf.train.adam + JS loops) vs after (fused Adam + SIMD loops), ABAB in-process
 *   node tools/bench-backend.js --run=b [--steps=40]                # one step kind in its own process, then exit (whole-process timing from outside)
 *
 * Options of every mode: --adam=tfjs (the steps' optimizer: tf.train.adam; default: kd-core's
 * FusedAdamOptimizer, bit-identical results), --simd=off (@tfkd/backend-wasm-train's JS loops instead
 * of its wasm SIMD loops, same results), --relu-grad=tfjs (ReLU's gradient as tfjs's Step → Cast →
 * Multiply instead of the one-kernel TfkdReluGrad, same results), --from-source (load the @tfkd
 * packages from their TypeScript sources, build nothing), --threads=N.
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
const args = process.argv.slice(2);
const flag = (name) => args.includes(`--${name}`);
const option = (name, dflt) => {
  const a = args.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : dflt;
};

/**
 * --from-source: load the @tfkd packages from their TypeScript sources (SWC, as jest does) instead of
 * their dist folders — nothing is built. Otherwise each package's dist (built by ensureBuilt).
 */
const FROM_SOURCE = flag('from-source');
if (FROM_SOURCE) require(path.join(ROOT, 'packages/cli/src/__fixtures__/register-source.js'));
/** `pkg('engine', 'node')` = @tfkd/engine/node, from src or dist. */
function pkg(name, sub = '') {
  return FROM_SOURCE ? require(`@tfkd/${name}${sub ? `/${sub}` : ''}`) : require(path.join(ROOT, 'packages', name, 'dist', sub));
}

/**
 * The steps' optimizer: `--adam=fused` (default; kd-core's FusedAdamOptimizer, what the engine's
 * makeOptimizer makes: one kernel call per step, bit-identical to tfjs Adam) or `--adam=tfjs`
 * (tf.train.adam, ~15 kernel calls per variable — the optimizer before #19's fused update).
 */
let adamChoice = option('adam', 'fused');
function makeAdam(tf, lr = 1e-3) {
  if (adamChoice === 'tfjs') return tf.train.adam(lr);
  const { FusedAdamOptimizer } = pkg('kd-core');
  if (FusedAdamOptimizer == null) throw new Error('kd-core has no FusedAdamOptimizer: rebuild @tfkd/kd-core (and @tfkd/backend-wasm-train), or pass --from-source');
  return new FusedAdamOptimizer(lr);
}
/** Builds with the given Adam ('tfjs' | 'fused') whatever --adam says. */
function withAdam(which, build) {
  const keep = adamChoice;
  adamChoice = which;
  try {
    return build();
  } finally {
    adamChoice = keep;
  }
}

/** Builds kd-core and the engine (if they have no dist) and this package (incremental tsc), unless --no-build. */
function ensureBuilt() {
  if (flag('no-build') || FROM_SOURCE) return;
  const tsc = path.join(ROOT, 'node_modules/typescript/bin/tsc');
  for (const dir of ['packages/kd-core', 'packages/engine', 'packages/backend-wasm-train']) {
    const abs = path.join(ROOT, dir);
    if (dir === 'packages/kd-core' && fs.existsSync(path.join(abs, 'dist/index.js'))) continue;
    if (dir === 'packages/engine' && fs.existsSync(path.join(abs, 'dist/node/teacher-worker.js'))) continue;
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
  const opt = makeAdam(tf);
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
  const opt = makeAdam(tf);
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
  const opt = makeAdam(tf);
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
  const { RunSpec } = pkg('kd-core');
  const { prepareRun } = pkg('engine');
  const { defaultRegistry } = pkg('cli');
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
  const { MODEL_ZOO } = pkg('models');
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
  const opt = makeAdam(tf);
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
    const { initWasmBackend, registerWasmTrainingKernels, wasmThreadsCount } = pkg('backend-wasm-train');
    if (!(await initWasmBackend({ threads }))) throw new Error('wasm backend failed to initialise');
    applyKernelOptions(registerWasmTrainingKernels);
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

// ---------------------------------------------------------------------------------------------
// Conv steps (#19): cnn-large train / forward, cnn-large -> cnn-small KD (sequential and overlapped).

function zooModel(name) {
  const { MODEL_ZOO } = pkg('models');
  return MODEL_ZOO.find((d) => d.id === name).build({ inputShape: [28, 28, 1], numClasses: 10, seed: 1 });
}

/** Fixed random batches (the order is known in advance: batch i of step k is k mod nBatches). */
function convData(tf, batch, nBatches) {
  const r = rng(17);
  const per = 28 * 28;
  const images = Float32Array.from({ length: batch * nBatches * per }, () => (r() + 1) / 2);
  const labels = Int32Array.from({ length: batch * nBatches }, () => Math.floor(((r() + 1) / 2) * 10) % 10);
  const order = Array.from({ length: nBatches }, (_, b) => Int32Array.from({ length: batch }, (_, i) => b * batch + i));
  const gather = (idx) => {
    const xs = new Float32Array(idx.length * per);
    const ys = new Int32Array(idx.length);
    idx.forEach((k, i) => {
      xs.set(images.subarray(k * per, (k + 1) * per), i * per);
      ys[i] = labels[k];
    });
    return { x: tf.tensor4d(xs, [idx.length, 28, 28, 1]), y: tf.tidy(() => tf.oneHot(tf.tensor1d(ys, 'int32'), 10).toFloat()) };
  };
  return { images, order, gather };
}

/** d) cnn-large train step. */
function buildCnnLargeTrain(tf, batch = 128) {
  const m = zooModel('cnn-large');
  const { x, y } = batchData(tf, [batch, 28, 28, 1], 10, 21);
  const vars = m.trainableWeights.map((w) => w.read());
  const opt = makeAdam(tf);
  return {
    step() {
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, m.apply(x, { training: true })), vars);
        opt.applyGradients(grads);
        value.dataSync();
      });
    },
    dispose() {
      opt.dispose();
      m.dispose();
      tf.dispose([x, y]);
    },
  };
}

/** e) cnn-large forward (inference). */
function buildCnnLargeForward(tf, batch = 128) {
  const m = zooModel('cnn-large');
  const { x, y } = batchData(tf, [batch, 28, 28, 1], 10, 22);
  return {
    step() {
      tf.tidy(() => m.apply(x, { training: false }).dataSync());
    },
    dispose() {
      m.dispose();
      tf.dispose([x, y]);
    },
  };
}

/**
 * f) KD step cnn-large -> cnn-small. mode: 'sequential' | 'overlap' (TeacherWorker) | 'teacher'
 * (teacher forward only) | 'student' (student step on precomputed teacher logits). `losses` records
 * every step's loss (the bit-identity check compares sequential and overlap).
 */
async function buildCnnKd(tf, mode, batch = 128, nBatches = 4) {
  const teacher = zooModel('cnn-large');
  const student = zooModel('cnn-small');
  const data = convData(tf, batch, nBatches);
  const vars = student.trainableWeights.map((w) => w.read());
  const opt = makeAdam(tf);
  const fixedT = mode === 'student' ? data.order.map((idx) => tf.tidy(() => teacher.apply(data.gather(idx).x, { training: false }))) : null;
  let worker = null;
  if (mode === 'overlap') {
    const { TeacherWorker } = pkg('engine', 'node');
    worker = await TeacherWorker.start({ model: teacher, images: data.images, sampleShape: [28, 28, 1], maxBatch: batch });
  }
  let k = 0;
  const losses = [];
  const batchOf = (i) => data.order[i % nBatches];
  return {
    losses,
    step() {
      const idx = batchOf(k);
      if (mode === 'teacher') {
        tf.tidy(() => teacher.apply(data.gather(idx).x, { training: false }).dataSync());
        k++;
        return;
      }
      if (worker && k === 0) worker.prefetch(idx);
      if (worker) worker.prefetch(batchOf(k + 1));
      tf.tidy(() => {
        const { x, y } = data.gather(idx);
        const t = worker ? worker.takeTensors(idx)[0] : fixedT ? fixedT[k % nBatches] : teacher.apply(x, { training: false });
        const { value, grads } = tf.variableGrads(() => kdLoss(tf, student.apply(x, { training: true }), t, y, 4), vars);
        opt.applyGradients(grads);
        losses.push(value.dataSync()[0]);
      });
      k++;
    },
    async close() {
      if (worker) await worker.close();
    },
    dispose() {
      opt.dispose();
      teacher.dispose();
      student.dispose();
      if (fixedT) tf.dispose(fixedT);
    },
  };
}

const CONV_STEPS = [
  { id: 'd', name: 'cnn-large train step b128 (CE, Adam)', build: (tf) => buildCnnLargeTrain(tf), n: 5 },
  { id: 'e', name: 'cnn-large forward b128', build: (tf) => buildCnnLargeForward(tf), n: 10 },
  { id: 'f', name: 'KD cnn-large -> cnn-small b128, sequential', build: (tf) => buildCnnKd(tf, 'sequential'), n: 8 },
  { id: 'f-overlap', name: 'KD cnn-large -> cnn-small b128, teacher in a worker (overlapped)', build: (tf) => buildCnnKd(tf, 'overlap'), n: 8 },
  { id: 'f-teacher', name: '  its teacher forward alone', build: (tf) => buildCnnKd(tf, 'teacher'), n: 8 },
  { id: 'f-student', name: '  its student step alone', build: (tf) => buildCnnKd(tf, 'student'), n: 8 },
];

const median = (v) => {
  const a = [...v].sort((p, q) => p - q);
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
};
const spread = (v) => `${Math.min(...v).toFixed(2)}–${Math.max(...v).toFixed(2)}`;
const loadavg = () => require('os').loadavg().map((l) => l.toFixed(2)).join(' ');

/** Times `n` steps of a built step (after 2 warm-up steps); returns ms/step and the tensor check. */
async function timeBuilt(tf, s, n) {
  const model = await s.build(tf);
  const r = timeSteps(s.id, tf.getBackend(), () => model.step(), n, 2);
  await model.close?.();
  model.dispose();
  return r;
}

async function initWasm(threads) {
  const { initWasmBackend, registerWasmTrainingKernels, wasmThreadsCount } = pkg('backend-wasm-train');
  if (!(await initWasmBackend({ threads }))) throw new Error('wasm backend failed to initialise');
  applyKernelOptions(registerWasmTrainingKernels);
  return wasmThreadsCount();
}

/** --simd and --relu-grad, after the wasm backend is up. */
function applyKernelOptions(registerWasmTrainingKernels) {
  // --simd=off: the package's JS loops instead of its wasm SIMD loops (same results).
  if (option('simd', 'on') === 'off') registerWasmTrainingKernels({ simd: false });
  // ReLU's gradient: the one-kernel TfkdReluGrad (default here, as in the engine's wasm provider;
  // opt-in in the package), or with --relu-grad=tfjs tfjs's Step → Cast → Multiply (same results).
  useFusedReluGrad(option('relu-grad', 'fused') !== 'tfjs');
}

/** The one-kernel ReLU gradient on (true) or tfjs's three kernels (false). */
function useFusedReluGrad(on) {
  pkg('backend-wasm-train').registerWasmTrainingKernels({ fusedReluGradient: on });
}

/** --conv: every conv step, in rounds (each round times every step once: ABAB across steps). */
async function convMain() {
  const tf = require('@tensorflow/tfjs');
  const threads = await initWasm(Number(option('threads', '1')));
  const rounds = Number(option('rounds', '3'));
  const only = option('only', null)?.split(',');
  const steps = CONV_STEPS.filter((s) => !only || only.includes(s.id));
  process.stderr.write(`conv steps, wasm x${threads}, ${rounds} rounds, load ${loadavg()}\n`);
  const ms = Object.fromEntries(steps.map((s) => [s.id, []]));
  const leaks = [];
  for (let r = 0; r < rounds; r++) {
    for (const s of steps) {
      const t = await timeBuilt(tf, s, flag('quick') ? 1 : s.n);
      ms[s.id].push(t.ms);
      if (t.leak) leaks.push(s.id);
      process.stderr.write(`  round ${r + 1} ${s.id}: ${t.ms.toFixed(1)} ms/step (load ${loadavg()})\n`);
    }
  }
  // Bit-identity of the overlapped KD loop against the sequential one (same backend, same batches).
  let identical = 'n/a';
  if (steps.some((s) => s.id === 'f-overlap')) {
    const run = async (mode) => {
      const m = await buildCnnKd(tf, mode);
      for (let i = 0; i < 6; i++) m.step();
      await m.close();
      m.dispose();
      return m.losses;
    };
    const a = await run('sequential');
    const b = await run('overlap');
    identical = a.length === b.length && a.every((v, i) => Object.is(v, b[i])) ? 'yes (6 steps, losses bit-identical)' : `NO: ${a} vs ${b}`;
  }
  console.log(`\nConv steps, ${new Date().toISOString().slice(0, 10)}, wasm x${threads}, ${rounds} rounds, load at end ${loadavg()}\n`);
  console.log('| step | ms/step median | min–max |');
  console.log('|---|---:|---|');
  for (const s of steps) console.log(`| ${s.name} | ${median(ms[s.id]).toFixed(1)} | ${Math.min(...ms[s.id]).toFixed(1)}–${Math.max(...ms[s.id]).toFixed(1)} |`);
  if (ms['f-overlap'] && ms['f-teacher'] && ms['f-student']) {
    const ratios = ms['f-overlap'].map((v, i) => v / Math.max(ms['f-teacher'][i], ms['f-student'][i]));
    console.log(`\noverlapped KD step / max(teacher forward, student step), per round: ${ratios.map((v) => v.toFixed(2)).join(', ')} (median ${median(ratios).toFixed(2)}; target <= 1.15)`);
    const seq = ms['f'].map((v, i) => ms['f-overlap'][i] / v);
    console.log(`overlapped / sequential KD step, per round: ${seq.map((v) => v.toFixed(2)).join(', ')} (median ${median(seq).toFixed(2)})`);
  }
  console.log(`overlapped losses identical to sequential: ${identical}`);
  if (leaks.length) {
    console.log(`LEAK: numTensors grew during ${leaks.join(', ')}`);
    process.exitCode = 1;
  }
  await tf.removeBackend?.('wasm');
  process.exit(process.exitCode ?? 0);
}

/** The PyTorch peer (Debian python3-torch): the same steps, one JSON line of ms/step. */
const PEER_SOURCE = String.raw`
import json, sys, time, torch, torch.nn as nn, torch.nn.functional as F
torch.set_num_threads(2); torch.manual_seed(0)
which = sys.argv[1].split(',')
def timeit(f, n):
    f(); f(); t0 = time.time()
    for _ in range(n): f()
    return (time.time() - t0) / n * 1000
def mk(h): return nn.Sequential(nn.Linear(784,h), nn.ReLU(), nn.Linear(h,h), nn.ReLU(), nn.Linear(h,10))
def block(i, o): return [nn.Conv2d(i, o, 3, padding=1), nn.ReLU(), nn.Conv2d(o, o, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
def large(): return nn.Sequential(*block(1, 32), *block(32, 64), *block(64, 128), nn.Flatten(), nn.Linear(128*3*3, 256), nn.ReLU(), nn.Linear(256, 10))
def small(): return nn.Sequential(nn.Conv2d(1,16,3,padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16,32,3,padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32*7*7,10))
T = 4.0
def kd(sl, tl, y): return F.kl_div(F.log_softmax(sl/T,-1), F.softmax(tl/T,-1), reduction='batchmean')*T*T + F.cross_entropy(sl,y)
out = {}
if 'a' in which:
    teacher, student = mk(1200).eval(), mk(128); opt = torch.optim.Adam(student.parameters(), 1e-3)
    x = torch.randn(128,784); y = torch.randint(0,10,(128,))
    def a():
        with torch.no_grad(): tl = teacher(x)
        l = kd(student(x), tl, y); opt.zero_grad(); l.backward(); opt.step()
    out['a'] = timeit(a, 20)
if 'b' in which:
    cnn = nn.Sequential(nn.Conv2d(1,16,3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16,32,3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32*5*5,10))
    o2 = torch.optim.Adam(cnn.parameters(), 1e-3); xi = torch.randn(64,1,28,28); yi = torch.randint(0,10,(64,))
    def b():
        l = F.cross_entropy(cnn(xi), yi); o2.zero_grad(); l.backward(); o2.step()
    out['b'] = timeit(b, 10)
if 'd' in which or 'e' in which or 'f' in which:
    net = large(); opt3 = torch.optim.Adam(net.parameters(), 1e-3)
    x3 = torch.rand(128, 1, 28, 28); y3 = torch.randint(0, 10, (128,))
    def d():
        l = F.cross_entropy(net(x3), y3); opt3.zero_grad(); l.backward(); opt3.step()
    def e():
        with torch.no_grad(): net(x3)
    if 'd' in which: out['d'] = timeit(d, 5)
    if 'e' in which: out['e'] = timeit(e, 10)
    if 'f' in which:
        net.eval(); st = small(); opt4 = torch.optim.Adam(st.parameters(), 1e-3)
        def f():
            with torch.no_grad(): tl = net(x3)
            l = kd(st(x3), tl, y3); opt4.zero_grad(); l.backward(); opt4.step()
        out['f'] = timeit(f, 8)
print(json.dumps(out))
`;
const PYTHON = '/usr/bin/python3';
const peerEnv = () => {
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  return env;
};
function peerAvailable() {
  try {
    execFileSync(PYTHON, ['-c', 'import torch'], { env: peerEnv(), stdio: 'ignore', timeout: 120000 });
    return true;
  } catch {
    return false;
  }
}
function runPeer(ids) {
  const out = execFileSync(PYTHON, ['-c', PEER_SOURCE, ids.join(',')], { env: peerEnv(), timeout: 15 * 60 * 1000 });
  return JSON.parse(out.toString().trim().split('\n').pop());
}

/** --peer: per round, the PyTorch peer (a child process) then ours (in this process); ratio per round. */
async function peerMain() {
  if (!peerAvailable()) {
    console.log(`--peer: PyTorch is not importable by ${PYTHON} (Debian: apt-get install -y python3-torch libopenblas0-pthread); skipped.`);
    return;
  }
  const tf = require('@tensorflow/tfjs');
  const threads = await initWasm(Number(option('threads', '1')));
  const rounds = Math.max(3, Number(option('rounds', '3')));
  const ids = (option('only', 'a,b,d,e,f') || '').split(',');
  const ours = {
    a: { name: '(a) Hinton MLP KD step b128', build: (t) => buildMlpKd(t), n: 20 },
    b: { name: '(b) small CNN train step b64', build: (t) => buildCnn(t), n: 10 },
    d: { name: 'cnn-large train step b128', build: (t) => buildCnnLargeTrain(t), n: 5 },
    e: { name: 'cnn-large forward b128', build: (t) => buildCnnLargeForward(t), n: 10 },
    f: { name: 'KD cnn-large -> cnn-small b128 (sequential)', build: (t) => buildCnnKd(t, 'sequential'), n: 8 },
    'f-overlap': { name: 'KD cnn-large -> cnn-small b128 (teacher in a worker)', build: (t) => buildCnnKd(t, 'overlap'), n: 8 },
  };
  const peerIds = ids.filter((i) => i !== 'f-overlap');
  const res = Object.fromEntries(ids.map((i) => [i, { peer: [], ours: [], load: [] }]));
  process.stderr.write(`--peer: ${rounds} rounds, wasm x${threads}, load ${loadavg()}\n`);
  for (let r = 0; r < rounds; r++) {
    const peer = runPeer(peerIds); // A
    const l = loadavg();
    for (const id of ids) {
      // B
      const t = await timeBuilt(tf, { id, ...ours[id] }, flag('quick') ? 1 : ours[id].n);
      res[id].ours.push(t.ms);
      res[id].peer.push(peer[id === 'f-overlap' ? 'f' : id]);
      res[id].load.push(l);
    }
    process.stderr.write(`  round ${r + 1}: ${ids.map((i) => `${i} ${res[i].ours[r].toFixed(1)}/${res[i].peer[r].toFixed(1)}`).join(', ')} (ours/peer ms; load ${loadavg()})\n`);
  }
  console.log(`\nPyTorch ${'(2 threads, Debian python3-torch)'} vs ours (tfjs ${tf.version.tfjs} wasm x${threads} + @tfkd/backend-wasm-train), ${new Date().toISOString().slice(0, 10)}, ${rounds} rounds alternated (peer, ours), load at end ${loadavg()}\n`);
  console.log('| step | PyTorch ms (median) | ours ms (median) | ratio ours/PyTorch, median | per round (min–max) |');
  console.log('|---|---:|---:|---:|---|');
  for (const id of ids) {
    const v = res[id];
    const ratios = v.ours.map((o, i) => o / v.peer[i]);
    console.log(`| ${ours[id].name} | ${median(v.peer).toFixed(1)} | ${median(v.ours).toFixed(1)} | **${median(ratios).toFixed(2)}×** | ${spread(ratios)} |`);
  }
  process.exit(0);
}

/** --threads-vs=N: d and e in child processes at 1 and N threads, alternated (A B A B ...). */
async function threadsVsMain() {
  const n = Number(option('threads-vs', '2'));
  const rounds = Number(option('rounds', '3'));
  const only = option('only', 'd,e');
  const res = { 1: [], [n]: [] };
  for (let r = 0; r < rounds; r++) {
    for (const t of [1, n]) {
      const out = execFileSync(process.execPath, [__filename, '--conv', `--threads=${t}`, '--rounds=1', `--only=${only}`, '--json'], {
        stdio: ['ignore', 'pipe', 'inherit'],
        timeout: 20 * 60 * 1000,
      });
      res[t].push(JSON.parse(out.toString().trim().split('\n').pop()));
    }
  }
  console.log(`\nwasm threads: ${n} vs 1, ${rounds} rounds alternated, load at end ${loadavg()}\n`);
  console.log(`| step | 1 thread ms (median) | ${n} threads ms (median) | ratio ${n}/1, median | per round |`);
  console.log('|---|---:|---:|---:|---|');
  for (const id of only.split(',')) {
    const a = res[1].map((x) => x[id]);
    const b = res[n].map((x) => x[id]);
    const ratios = b.map((v, i) => v / a[i]);
    console.log(`| ${id} | ${median(a).toFixed(1)} | ${median(b).toFixed(1)} | ${median(ratios).toFixed(2)} | ${spread(ratios)} |`);
  }
}

/** --profile: tf.profile per kernel of a cnn-large train step and forward (wasm + our kernels). */
async function profileMain() {
  const tf = require('@tensorflow/tfjs');
  const threads = await initWasm(Number(option('threads', '1')));
  const batch = Number(option('batch', '128'));
  const { execSync } = require('child_process');
  let cpu = '';
  try {
    cpu = execSync("lscpu | sed -n 's/^Model name: *//p'").toString().trim();
  } catch {
    cpu = require('os').cpus()[0]?.model ?? '';
  }
  console.log(`Profile ${new Date().toISOString()}, ${cpu}, ${require('os').cpus().length} cpus, wasm x${threads}, batch ${batch}, load ${loadavg()}`);
  const cases = [
    ['(b) small CNN train step, b64', () => buildCnn(tf)],
    ['cnn-large train step', () => buildCnnLargeTrain(tf, batch)],
    ['cnn-large forward', () => buildCnnLargeForward(tf, batch)],
  ];
  for (const [label, build] of cases) {
    const s = build();
    s.step();
    s.step();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < 3; i++) s.step();
    const wall = Number(process.hrtime.bigint() - t0) / 3e6;
    // Kernels nest (ours call native ones): count only the outermost of each call.
    const prof = await tf.profile(() => s.step());
    const agg = new Map();
    let total = 0;
    for (const k of prof.kernels) {
      const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
      const a = agg.get(k.name) ?? { ms: 0, n: 0 };
      a.ms += ms;
      a.n++;
      agg.set(k.name, a);
    }
    const inner = new Set(['Conv2D', 'Transpose', 'PadV2', 'Slice', 'Reverse', 'Reshape', 'Concat', 'BatchMatMul']);
    console.log(`\n${label}${label.startsWith('cnn-large') ? `, b${batch}` : ''}: ${wall.toFixed(1)} ms/step (wall, mean of 3); ${prof.kernels.length} kernel calls (nested ones included)\n`);
    console.log('| kernel | ms | calls |');
    console.log('|---|---:|---:|');
    for (const [name, a] of [...agg].sort((p, q) => q[1].ms - p[1].ms)) {
      if (a.ms < 0.05) continue;
      total += a.ms;
      console.log(`| ${name}${inner.has(name) ? ' (incl. calls inside composed kernels)' : ''} | ${a.ms.toFixed(1)} | ${a.n} |`);
    }
    s.dispose();
  }
  process.exit(0);
}

/**
 * --ab-kernels: the #19 kernels (MaxPoolGrad, Sum, Identity) against the native ones, in one
 * process, alternated step by step (A B A B ...) on the cnn-large train step (and forward).
 */
async function abKernelsMain() {
  const tf = require('@tensorflow/tfjs');
  const { registerWasmTrainingKernels } = pkg('backend-wasm-train');
  await initWasm(1);
  const names = ['MaxPoolGrad', 'Sum', 'Identity'];
  registerWasmTrainingKernels({ replaceSlowKernels: false });
  const native = Object.fromEntries(names.map((k) => [k, tf.getKernel(k, 'wasm')]));
  registerWasmTrainingKernels();
  const ours = Object.fromEntries(names.map((k) => [k, tf.getKernel(k, 'wasm')]));
  const use = (set) => {
    for (const k of names) {
      tf.unregisterKernel(k, 'wasm');
      tf.registerKernel(set[k]);
    }
  };
  const rounds = Number(option('rounds', '5'));
  const cases = [
    ['(a) MLP KD step b128', () => buildMlpKd(tf)],
    ['(b) small CNN step b64', () => buildCnn(tf)],
    ['cnn-large train step b128', () => buildCnnLargeTrain(tf)],
    ['cnn-large forward b128', () => buildCnnLargeForward(tf)],
  ];
  for (const [label, build] of cases) {
    const s = build();
    s.step();
    s.step();
    const t = { native: [], ours: [] };
    for (let r = 0; r < rounds; r++) {
      for (const [side, set] of [['native', native], ['ours', ours]]) {
        use(set);
        const t0 = process.hrtime.bigint();
        s.step();
        t[side].push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }
    const ratios = t.ours.map((v, i) => v / t.native[i]);
    console.log(`${label}: native ${median(t.native).toFixed(1)} ms, with #19 kernels ${median(t.ours).toFixed(1)} ms, ratio ${median(ratios).toFixed(2)} (per pair ${spread(ratios)}), ${rounds} pairs, load ${loadavg()}`);
    s.dispose();
  }
  use(ours);
  process.exit(0);
}

/**
 * --ab-kernels --dw [--rounds=9] [--batch=128] [--threads=N] [--no-step]: Conv2DBackpropFilter (dW) —
 * the kernel as registered (wasm SIMD GEMM on the heap) against the previous composition of native
 * kernels (`conv2DBackpropFilterComposed`: batch-as-channels XNNPACK conv + 2 transposes, im2col +
 * BatchMatMul for the 1-channel first layer), swapped by re-registering the kernel, in one process,
 * alternated (A B, then B A: the order flips every round) on each cnn-large layer at batch b. The
 * forward conv (Conv2D) and dx (Conv2DBackpropInput) of the same layer are timed in the same rounds,
 * for GFLOP/s (2·N·OH·OW·FH·FW·Cin·Cout each). Then the whole cnn-large train step b128 with only
 * dW swapped (ABAB). Prints the max relative difference between the two dW results per layer.
 */
async function abDwMain() {
  const tf = require('@tensorflow/tfjs');
  const bwt = pkg('backend-wasm-train');
  if (bwt.conv2DBackpropFilterComposed == null) throw new Error('backend-wasm-train has no conv2DBackpropFilterComposed: rebuild it, or pass --from-source');
  const threads = await initWasm(Number(option('threads', '1')));
  const rounds = Number(option('rounds', '9'));
  const batch = Number(option('batch', '128'));
  const K = 'Conv2DBackpropFilter';
  const gemm = tf.getKernel(K, 'wasm');
  const composed = { kernelName: K, backendName: 'wasm', kernelFunc: bwt.conv2DBackpropFilterComposed };
  const use = (cfg) => {
    tf.unregisterKernel(K, 'wasm');
    tf.registerKernel(cfg);
  };
  let cpu = '';
  try {
    cpu = require('child_process').execSync("lscpu | sed -n 's/^Model name: *//p'").toString().trim();
  } catch {
    cpu = require('os').cpus()[0]?.model ?? '';
  }
  console.log(`dW A/B ${new Date().toISOString()}, ${cpu}, ${require('os').cpus().length} cpus, node ${process.version}, wasm x${threads}, batch ${batch}, ${rounds} rounds, load ${loadavg()}`);
  const layers = [
    ['conv1a', 28, 1, 32],
    ['conv1b', 28, 32, 32],
    ['conv2a', 14, 32, 64],
    ['conv2b', 14, 64, 64],
    ['conv3a', 7, 64, 128],
    ['conv3b', 7, 128, 128],
  ];
  const timeIt = (f) => {
    const t0 = process.hrtime.bigint();
    const o = f();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    o.dispose();
    return ms;
  };
  const gf = (ms, flop) => (flop / (ms * 1e6)).toFixed(1);
  const rows = [];
  const sums = { fwd: 0, dx: 0, old: 0, new: 0, flop: 0 };
  const tensorsBefore = tf.memory().numTensors;
  for (const [name, s, cin, cout] of layers) {
    const x = tf.randomUniform([batch, s, s, cin], -1, 1, 'float32', 1);
    const dy = tf.randomUniform([batch, s, s, cout], -1, 1, 'float32', 2);
    const filter = tf.randomUniform([3, 3, cin, cout], -1, 1, 'float32', 3);
    const conv = { strides: 1, pad: 'same', dataFormat: 'NHWC' };
    const fwd = () => tf.engine().runKernel('Conv2D', { x, filter }, { ...conv, dilations: 1 });
    const dx = () => tf.engine().runKernel('Conv2DBackpropInput', { dy, filter }, { ...conv, inputShape: x.shape });
    const dw = () => tf.engine().runKernel(K, { x, dy }, { ...conv, filterShape: [3, 3, cin, cout] });
    const flop = 2 * batch * s * s * 9 * cin * cout;
    // Same result? (max |new − old| / max |old|)
    use(composed);
    const a = dw();
    use(gemm);
    const b = dw();
    const [av, bv] = [a.dataSync(), b.dataSync()];
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < av.length; i++) {
      diff = Math.max(diff, Math.abs(av[i] - bv[i]));
      scale = Math.max(scale, Math.abs(av[i]));
    }
    // Both against float64 sums on 64 entries of dW (each a sum over N·OH·OW products).
    const xs = x.dataSync();
    const dys = dy.dataSync();
    const r64 = { old: 0, new: 0, scale: 0 };
    for (let e = 0; e < 64; e++) {
      const [ta, tb, ci, co] = [e % 3, (e * 7) % 3, (e * 13) % cin, (e * 29) % cout];
      let ref = 0;
      for (let m = 0; m < batch; m++) {
        for (let i = 0; i < s; i++) {
          const rr = i + ta - 1;
          if (rr < 0 || rr >= s) continue;
          for (let j = 0; j < s; j++) {
            const qq = j + tb - 1;
            if (qq < 0 || qq >= s) continue;
            ref += xs[((m * s + rr) * s + qq) * cin + ci] * dys[((m * s + i) * s + j) * cout + co];
          }
        }
      }
      const k = ((ta * 3 + tb) * cin + ci) * cout + co;
      r64.old = Math.max(r64.old, Math.abs(av[k] - ref));
      r64.new = Math.max(r64.new, Math.abs(bv[k] - ref));
      r64.scale = Math.max(r64.scale, Math.abs(ref));
    }
    tf.dispose([a, b]);
    for (const cfg of [composed, gemm, composed, gemm]) {
      use(cfg);
      timeIt(dw);
    }
    timeIt(fwd);
    timeIt(dx);
    const t = { old: [], new: [], fwd: [], dx: [] };
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 ? [['new', gemm], ['old', composed]] : [['old', composed], ['new', gemm]];
      for (const [side, cfg] of order) {
        use(cfg);
        t[side].push(timeIt(dw));
      }
      t.fwd.push(timeIt(fwd));
      t.dx.push(timeIt(dx));
    }
    use(gemm);
    tf.dispose([x, dy, filter]);
    const ratios = t.new.map((v, i) => v / t.old[i]);
    const m = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, median(v)]));
    for (const k of ['fwd', 'dx', 'old', 'new']) sums[k] += m[k];
    sums.flop += flop;
    rows.push(
      `| ${name} ${batch}×${s}×${s}×${cin} → 3×3×${cin}×${cout} | ${(flop / 1e9).toFixed(2)} | ${m.fwd.toFixed(1)} (${gf(m.fwd, flop)}) | ${m.dx.toFixed(1)} (${gf(m.dx, flop)}) | ${m.old.toFixed(1)} (${gf(m.old, flop)}) | ${m.new.toFixed(1)} (${gf(m.new, flop)}) | **${median(ratios).toFixed(2)}** | ${spread(ratios)} | ${(diff / Math.max(scale, 1e-30)).toExponential(1)} | ${(r64.old / r64.scale).toExponential(1)} / ${(r64.new / r64.scale).toExponential(1)} |`,
    );
    process.stderr.write(`  ${name}: done (load ${loadavg()})\n`);
  }
  console.log('\n| layer (x → filter) | GFLOP | forward ms (GFLOP/s) | dx ms (GFLOP/s) | old dW ms (GFLOP/s) | new dW ms (GFLOP/s) | new/old, median | per round | max rel. diff new vs old | rel. error vs float64 (64 entries), old / new |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---|---:|---:|');
  for (const r of rows) console.log(r);
  console.log(
    `| **all six** | ${(sums.flop / 1e9).toFixed(2)} | ${sums.fwd.toFixed(1)} (${gf(sums.fwd, sums.flop)}) | ${sums.dx.toFixed(1)} (${gf(sums.dx, sums.flop)}) | ${sums.old.toFixed(1)} (${gf(sums.old, sums.flop)}) | ${sums.new.toFixed(1)} (${gf(sums.new, sums.flop)}) | ${(sums.new / sums.old).toFixed(2)} (sum of medians) | | | |`,
  );
  console.log(`\nload after the kernels: ${loadavg()}; tensors ${tensorsBefore} → ${tf.memory().numTensors}`);
  if (!flag('no-step')) {
    const s = buildCnnLargeTrain(tf, batch);
    for (const cfg of [composed, gemm]) {
      use(cfg);
      s.step();
      s.step();
    }
    const t = { old: [], new: [] };
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 ? [['new', gemm], ['old', composed]] : [['old', composed], ['new', gemm]];
      for (const [side, cfg] of order) {
        use(cfg);
        const t0 = process.hrtime.bigint();
        s.step();
        t[side].push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }
    use(gemm);
    s.dispose();
    const ratios = t.new.map((v, i) => v / t.old[i]);
    console.log(`\ncnn-large train step b${batch}: old dW ${median(t.old).toFixed(1)} ms, new dW ${median(t.new).toFixed(1)} ms, ratio new/old ${median(ratios).toFixed(2)} (per pair ${spread(ratios)}), ${rounds} pairs, load ${loadavg()}`);
  }
  process.exit(0);
}

/**
 * --fold: the frozen-teacher forward (inference, b128) of the zoo's batch-norm models as built and
 * with their batch norms folded (`foldBatchNorm` of @tfkd/models: conv + BN + ReLU → one FusedConv2D),
 * alternated in one process (A B A B ...), n forwards per side per round. Batch-norm statistics are
 * randomised (as a trained model's), and the folded outputs are checked against the original's.
 */
async function foldMain() {
  const tf = require('@tensorflow/tfjs');
  const threads = await initWasm(Number(option('threads', '1')));
  const { foldBatchNorm, MODEL_ZOO } = pkg('models');
  const rounds = Number(option('rounds', '5'));
  const batch = Number(option('batch', '128'));
  const n = flag('quick') ? 1 : 3;
  process.stderr.write(`fold: wasm x${threads}, b${batch}, ${rounds} rounds of ${n} forwards per side, load ${loadavg()}\n`);
  const rows = [];
  for (const [id, extra] of [['resnet-teacher', {}], ['resnet', {}], ['byot-resnet', { batchNorm: true }]]) {
    const m = MODEL_ZOO.find((d) => d.id === id).build({ inputShape: [28, 28, 1], numClasses: 10, seed: 1, ...extra });
    const r = rng(31);
    for (const l of m.layers.filter((x) => x.getClassName() === 'BatchNormalization')) {
      const c = l.getWeights()[0].shape[0];
      const ws = [0.5, -0.5, -0.2, 0.2].map((lo, k) => tf.tensor1d(Array.from({ length: c }, () => (k === 3 ? 0.2 + 1.5 * ((r() + 1) / 2) : lo + (r() + 1) / 2))));
      l.setWeights(ws);
      tf.dispose(ws);
    }
    const folded = await foldBatchNorm(m);
    const { x, y } = batchData(tf, [batch, 28, 28, 1], 10, 23);
    y.dispose();
    const outs = (model) => {
      const o = model.apply(x, { training: false });
      return Array.isArray(o) ? o : [o];
    };
    const forward = (model) => () => tf.tidy(() => outs(model).forEach((t) => t.dataSync()));
    const rel = tf.tidy(() => Math.max(...outs(m).map((a, i) => tf.max(tf.abs(tf.sub(a, outs(folded.model)[i]))).dataSync()[0] / tf.max(tf.abs(a)).dataSync()[0])));
    const kernels = async (model) => (await tf.profile(forward(model))).kernels.length;
    const [kA, kB] = [await kernels(m), await kernels(folded.model)];
    for (let i = 0; i < 2; i++) [m, folded.model].forEach((mm) => forward(mm)());
    const t = { built: [], folded: [] };
    for (let k = 0; k < rounds; k++) {
      for (const [side, model] of [['built', m], ['folded', folded.model]]) t[side].push(timeSteps(`${id} ${side}`, tf.getBackend(), forward(model), n, 0).ms);
    }
    const ratios = t.folded.map((v, i) => v / t.built[i]);
    rows.push({ id, folds: folded.folds.length, kA, kB, built: median(t.built), folded: median(t.folded), ratio: median(ratios), spread: spread(ratios), rel });
    process.stderr.write(`  ${id}: ${median(t.built).toFixed(1)} → ${median(t.folded).toFixed(1)} ms (load ${loadavg()})\n`);
    x.dispose();
    folded.model.dispose();
    m.dispose();
  }
  console.log(`\nFrozen-teacher forward, batch norms folded — ${new Date().toISOString()}, wasm x${threads}, b${batch}, ${rounds} ABAB rounds of ${n}, load at end ${loadavg()}\n`);
  console.log('| model | BNs folded | kernel calls as built → folded | as built ms (median) | folded ms (median) | ratio folded/built, median | per round | max rel. diff of outputs |');
  console.log('|---|---:|---|---:|---:|---:|---|---:|');
  for (const w of rows) console.log(`| ${w.id} | ${w.folds} | ${w.kA} → ${w.kB} | ${w.built.toFixed(1)} | ${w.folded.toFixed(1)} | ${w.ratio.toFixed(2)} | ${w.spread} | ${w.rel.toExponential(1)} |`);
  process.exit(0);
}

/**
 * --engine-teacher: the framework's KD step (`Engine.stepper()`, CE + Hinton KD, teacher-output cache
 * off so the teacher is forwarded every step) with a frozen resnet-teacher (randomised BN statistics,
 * handed over as `models`) and a resnet-student, b64, in four configurations of
 * `EngineOptions.teacherForward` — none, worker (`--teacher-worker`), fold (`--teacher-fold-bn`), both —
 * stepped alternately in one process (A B C D per round, n steps each). Checks that the worker's
 * losses equal the plain ones bit for bit (and fold+worker the fold ones).
 */
async function engineTeacherMain() {
  const tf = require('@tensorflow/tfjs');
  const threads = await initWasm(Number(option('threads', '1')));
  const { RunSpec } = pkg('kd-core');
  const { Engine } = pkg('engine');
  const { teacherWorkerSource } = pkg('engine', 'node');
  const { defaultRegistry } = pkg('cli');
  const { foldBatchNorm, MODEL_ZOO } = pkg('models');
  const rounds = Number(option('rounds', '5'));
  const batch = Number(option('batch', '64'));
  const n = flag('quick') ? 1 : 4;
  const teacher = MODEL_ZOO.find((d) => d.id === 'resnet-teacher').build({ inputShape: [28, 28, 1], numClasses: 10, seed: 1 });
  teacher.trainable = false;
  const r = rng(37);
  for (const l of teacher.layers.filter((x) => x.getClassName() === 'BatchNormalization')) {
    const c = l.getWeights()[0].shape[0];
    const ws = [0.5, -0.5, -0.2, 0.2].map((lo, k) => tf.tensor1d(Array.from({ length: c }, () => (k === 3 ? 0.2 + 1.5 * ((r() + 1) / 2) : lo + (r() + 1) / 2))));
    l.setWeights(ws);
    tf.dispose(ws);
  }
  const spec = RunSpec.parse({
    seed: 1,
    backend: 'wasm',
    data: { name: 'synthetic', train: batch * 8, test: 8, numClasses: 10, shape: [28, 28, 1] },
    teacher: { model: 'resnet-teacher' },
    student: { model: 'resnet-student' },
    train: { epochs: 1, batchSize: batch, optimizer: { name: 'adam', lr: 1e-3, weightDecay: 0 } },
    plugins: [{ use: 'loss/cross-entropy' }, { use: 'loss/hinton-kd', with: { temperature: 4 } }],
    teacherCache: 'off',
  });
  const backend = { name: 'wasm', label: 'bench', requested: 'wasm', skipped: [] };
  const configs = [
    ['sequential', {}],
    ['worker', { worker: teacherWorkerSource }],
    ['fold', { foldBatchNorm }],
    ['worker + fold', { worker: teacherWorkerSource, foldBatchNorm }],
  ];
  process.stderr.write(`engine-teacher: wasm x${threads}, b${batch}, ${rounds} rounds of ${n} steps per configuration, load ${loadavg()}\n`);
  const runs = [];
  for (const [label, teacherForward] of configs) {
    const engine = new Engine(spec, { registry: defaultRegistry(), backend, models: new Map([['teacher', teacher]]), teacherForward, log: () => undefined });
    const stepper = await engine.stepper();
    runs.push({ label, engine, stepper, ms: [], losses: [] });
  }
  const step = (x) => () => x.losses.push(x.stepper.step().loss);
  for (const x of runs) for (let i = 0; i < 2; i++) step(x)();
  for (let k = 0; k < rounds; k++) {
    for (const x of runs) {
      x.ms.push(timeSteps(x.label, 'wasm', step(x), n, 0).ms);
      // A worker is still computing the next batch: let it finish before the next configuration is timed.
      if (x.label.includes('worker')) await new Promise((res) => setTimeout(res, Math.max(500, 1.5 * x.ms[k])));
    }
    process.stderr.write(`  round ${k + 1}: ${runs.map((x) => `${x.label} ${x.ms[k].toFixed(0)}`).join(', ')} ms/step (load ${loadavg()})\n`);
  }
  const same = (a, b) => a.losses.length === b.losses.length && a.losses.every((v, i) => Object.is(v, b.losses[i]));
  console.log(`\nEngine KD step with teacherForward options — ${new Date().toISOString()}, resnet-teacher (frozen) -> resnet-student, b${batch}, wasm x${threads}, ${rounds} rounds of ${n} steps, load at end ${loadavg()}\n`);
  console.log('| teacherForward | ms/step median | min–max | vs sequential, median per round |');
  console.log('|---|---:|---|---:|');
  for (const x of runs) console.log(`| ${x.label} | ${median(x.ms).toFixed(1)} | ${spread(x.ms)} | ${median(x.ms.map((v, i) => v / runs[0].ms[i])).toFixed(2)} |`);
  console.log(`\nworker losses = sequential losses bit for bit: ${same(runs[0], runs[1]) ? 'yes' : 'NO'}; worker + fold = fold: ${same(runs[2], runs[3]) ? 'yes' : 'NO'} (${runs[0].losses.length} steps each)`);
  for (const x of runs) x.engine.dispose();
  teacher.dispose();
  process.exit(0);
}

/** The steps the #19 modes below know, by id. */
const NAMED_STEPS = {
  a: { name: '(a) Hinton MLP KD step b128', build: (tf) => buildMlpKd(tf) },
  b: { name: '(b) small CNN train step b64', build: (tf) => buildCnn(tf) },
  c: { name: '(c) ResNet KD step b64', build: (tf) => buildResnetKd(tf) },
  d: { name: 'cnn-large train step b128', build: (tf) => buildCnnLargeTrain(tf) },
  'layers-b': { name: 'cnn-small (zoo) train step b64, layers loop', build: (tf) => buildLayersLoop(tf, 'b') },
};

/** Kernel calls of one step (tf.profile; nested calls inside composed kernels included), by kernel. */
async function kernelCalls(tf, step) {
  const prof = await tf.profile(() => step());
  const by = new Map();
  for (const k of prof.kernels) by.set(k.name, (by.get(k.name) ?? 0) + 1);
  return { total: prof.kernels.length, by: [...by].sort((p, q) => q[1] - p[1] || (p[0] < q[0] ? -1 : 1)) };
}

/**
 * --kernel-calls [--only=b,d]: kernel calls per train step with tfjs's Adam and with the fused one
 * (the count the #19 work is judged by; time-free, so it can be taken on a loaded machine).
 */
async function kernelCallsMain() {
  const tf = require('@tensorflow/tfjs');
  const threads = await initWasm(Number(option('threads', '1')));
  const ids = option('only', 'b,d').split(',');
  console.log(`Kernel calls per train step, wasm x${threads}, ${new Date().toISOString()} (tf.profile; calls inside composed kernels included)\n`);
  for (const id of ids) {
    const row = {};
    for (const adam of ['tfjs', 'fused']) {
      const s = withAdam(adam, () => NAMED_STEPS[id].build(tf));
      s.step();
      s.step();
      row[adam] = await kernelCalls(tf, () => s.step());
      s.dispose();
    }
    console.log(`${NAMED_STEPS[id].name}: ${row.tfjs.total} kernel calls with tf.train.adam → ${row.fused.total} with the fused Adam`);
    for (const adam of ['tfjs', 'fused']) console.log(`  ${adam}: ${row[adam].by.map(([k, n]) => `${k} ${n}`).join(', ')}`);
  }
  process.exit(0);
}

/**
 * --ab-fused [--rounds=9] [--only=b,d] [--threads=N]: the #19 speed work against its baseline in one
 * process, alternated step by step (A B A B ...): A = tf.train.adam, the JS loops of MaxPoolGrad/Sum
 * and tfjs's 3-kernel ReLU gradient (before), B = the fused Adam, the wasm SIMD loops and the one-kernel
 * ReLU gradient (after). Each side has its own model and optimizer. (The one-pass first-layer dW is in both.)
 */
async function abFusedMain() {
  const tf = require('@tensorflow/tfjs');
  const { registerWasmTrainingKernels } = pkg('backend-wasm-train');
  const threads = await initWasm(Number(option('threads', '1')));
  const rounds = Number(option('rounds', '9'));
  const ids = option('only', 'b,d').split(',');
  process.stderr.write(`ab-fused: wasm x${threads}, ${rounds} pairs per step, load ${loadavg()}\n`);
  for (const id of ids) {
    const sides = [
      { label: 'before', simd: false, s: withAdam('tfjs', () => NAMED_STEPS[id].build(tf)), ms: [] },
      { label: 'after', simd: true, s: withAdam('fused', () => NAMED_STEPS[id].build(tf)), ms: [] },
    ];
    const use = (side) => {
      registerWasmTrainingKernels({ simd: side.simd });
      useFusedReluGrad(side.simd);
    };
    for (const side of sides) {
      use(side);
      side.s.step();
      side.s.step();
    }
    for (let r = 0; r < rounds; r++) {
      for (const side of sides) {
        use(side);
        const t0 = process.hrtime.bigint();
        side.s.step();
        side.ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }
    use(sides[1]);
    const ratios = sides[1].ms.map((v, i) => v / sides[0].ms[i]);
    console.log(`${NAMED_STEPS[id].name}: before (tf.train.adam, JS MaxPoolGrad/Sum loops, 3-kernel ReLU gradient) ${median(sides[0].ms).toFixed(1)} ms, after (fused Adam, SIMD loops, fused ReLU gradient) ${median(sides[1].ms).toFixed(1)} ms, ratio after/before ${median(ratios).toFixed(2)} (per pair ${spread(ratios)}), ${rounds} pairs, wasm x${threads}, load ${loadavg()}`);
    sides.forEach((side) => side.s.dispose());
  }
  process.exit(0);
}

/**
 * --run=<a|b|c|d> [--steps=N] [--adam=tfjs|fused] [--simd=off] [--relu-grad=tfjs] [--threads=N]: one step kind, N steps
 * after 2 warm-ups, then exit — for timing whole processes from outside (before/after as two commands).
 */
async function runOneMain() {
  const tf = require('@tensorflow/tfjs');
  const threads = await initWasm(Number(option('threads', '1')));
  const id = option('run', 'b');
  const n = Number(option('steps', '40'));
  const s = NAMED_STEPS[id].build(tf);
  const r = timeSteps(id, 'wasm', () => s.step(), n, 2);
  s.dispose();
  console.log(`${NAMED_STEPS[id].name}: ${r.ms.toFixed(2)} ms/step over ${n} steps, wasm x${threads}, adam ${adamChoice}, simd ${option('simd', 'on')}, relu-grad ${option('relu-grad', 'fused')}${r.leak ? ' LEAK' : ''}`);
  await tf.removeBackend?.('wasm');
  process.exit(r.leak ? 1 : 0);
}

async function main() {
  if (flag('kernel-calls')) {
    ensureBuilt();
    return kernelCallsMain();
  }
  if (flag('ab-fused')) {
    ensureBuilt();
    return abFusedMain();
  }
  if (args.some((a) => a.startsWith('--run='))) {
    ensureBuilt();
    return runOneMain();
  }
  if (flag('engine-teacher')) {
    ensureBuilt();
    return engineTeacherMain();
  }
  if (flag('fold')) {
    ensureBuilt();
    return foldMain();
  }
  if (flag('ab-kernels')) {
    ensureBuilt();
    return flag('dw') ? abDwMain() : abKernelsMain();
  }
  if (flag('conv') && flag('json')) {
    // Child of --threads-vs: one round, JSON of ms/step by step id on stdout.
    const tf = require('@tensorflow/tfjs');
    await initWasm(Number(option('threads', '1')));
    const only = option('only', 'd,e').split(',');
    const out = {};
    for (const s of CONV_STEPS.filter((c) => only.includes(c.id))) out[s.id] = (await timeBuilt(tf, s, s.n)).ms;
    process.stdout.write(JSON.stringify(out) + '\n');
    process.exit(0);
  }
  if (flag('conv') || flag('peer') || flag('threads-vs') || args.some((a) => a.startsWith('--threads-vs=')) || flag('profile')) {
    ensureBuilt();
    if (flag('profile')) return profileMain();
    if (flag('peer')) return peerMain();
    if (args.some((a) => a.startsWith('--threads-vs='))) return threadsVsMain();
    return convMain();
  }
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

module.exports = { timeSteps, STEPS, IMPLEMENTATIONS, CONV_STEPS, buildMlpKd, buildCnn, buildResnetKd, buildCnnLargeTrain, buildCnnLargeForward, buildCnnKd, kdLoss };

if (require.main === module) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
