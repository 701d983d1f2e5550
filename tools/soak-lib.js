/**
 * Soak logic shared by `tools/soak.js` (2,000 steps on Fashion-MNIST, wasm) and the jest test
 * `packages/cli/src/soak.spec.ts` (a few hundred steps on a tiny model): step an `Engine.stepper()`,
 * sample `tf.memory().numTensors` and the process RSS every `every` steps, then judge the samples
 * taken after `warmup` steps.
 *
 * Plain CommonJS with its dependencies passed in (tf, the stepper), so the tool can use the built
 * packages and the test the sources.
 */
'use strict';

const MB = 2 ** 20;

/** The wasm backend's linear memory in bytes (grows, never shrinks), or null on other backends. */
function wasmHeapBytes(tf) {
  try {
    const b = tf.backend();
    const heap = b && b.wasm && (b.wasm.HEAPU8 || b.wasm.HEAP8);
    return heap ? heap.buffer.byteLength : null;
  } catch {
    return null;
  }
}

/** One sample: step count, tensors, RSS / V8 heap / wasm heap in MB. Runs a full GC first when exposed. */
function sample(tf, step, msPerStep) {
  if (typeof global.gc === 'function') global.gc();
  const m = process.memoryUsage();
  const wasm = wasmHeapBytes(tf);
  return {
    step,
    numTensors: tf.memory().numTensors,
    rssMB: m.rss / MB,
    heapMB: m.heapUsed / MB,
    wasmMB: wasm === null ? null : wasm / MB,
    msPerStep,
  };
}

/**
 * Runs `steps` steps of `stepper`, sampling at step 0 and every `every` steps (and at the end).
 * `onSample` sees each sample as it is taken (progress output). Returns the samples and the losses.
 */
async function soak({ tf, stepper, steps, every, onSample }) {
  const samples = [sample(tf, 0, null)];
  if (onSample) onSample(samples[0]);
  const losses = [];
  let t0 = process.hrtime.bigint();
  let since = 0;
  for (let s = 1; s <= steps; s++) {
    const r = stepper.step();
    losses.push(r.loss);
    since++;
    if (s % every === 0 || s === steps) {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6 / since;
      const smp = sample(tf, s, ms);
      samples.push(smp);
      if (onSample) onSample(smp);
      // let timers and signal handlers run between windows (the loop is otherwise synchronous)
      await new Promise((resolve) => setImmediate(resolve));
      t0 = process.hrtime.bigint();
      since = 0;
    }
  }
  return { samples, losses };
}

/** Least-squares slope of y over x (MB per step). */
function slope(points) {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((a, p) => a + p[0], 0) / n;
  const my = points.reduce((a, p) => a + p[1], 0) / n;
  const num = points.reduce((a, p) => a + (p[0] - mx) * (p[1] - my), 0);
  const den = points.reduce((a, p) => a + (p[0] - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

/**
 * The verdict on samples: after `warmup` steps the tensor count must stay exactly at its value at
 * the warm-up sample, and RSS may grow by at most `rssBoundMB` over it (when a bound is given).
 * Every loss must be finite.
 */
function judge({ samples, losses }, { warmup, rssBoundMB = null }) {
  const base = samples.find((s) => s.step >= warmup);
  if (!base) throw new Error(`no sample at or after the warm-up step ${warmup}`);
  const after = samples.filter((s) => s.step >= base.step);
  const tensorDrift = after.map((s) => s.numTensors - base.numTensors);
  const rssGrowth = Math.max(...after.map((s) => s.rssMB)) - base.rssMB;
  const rssEndGrowth = after[after.length - 1].rssMB - base.rssMB;
  const rssSlopePer1000 = slope(after.map((s) => [s.step, s.rssMB])) * 1000;
  const nonFinite = losses.filter((l) => !Number.isFinite(l)).length;
  const failures = [];
  if (tensorDrift.some((d) => d !== 0)) {
    const bad = after.find((s) => s.numTensors !== base.numTensors);
    failures.push(`numTensors changed after warm-up: ${base.numTensors} at step ${base.step}, ${bad.numTensors} at step ${bad.step}`);
  }
  if (rssBoundMB !== null && rssGrowth >= rssBoundMB) {
    failures.push(`RSS grew ${rssGrowth.toFixed(1)} MB after step ${base.step} (bound ${rssBoundMB} MB)`);
  }
  if (nonFinite > 0) failures.push(`${nonFinite} non-finite losses`);
  return {
    ok: failures.length === 0,
    failures,
    warmupStep: base.step,
    tensorsAtWarmup: base.numTensors,
    tensorsAtEnd: after[after.length - 1].numTensors,
    rssAtWarmupMB: base.rssMB,
    rssGrowthMB: rssGrowth,
    rssEndGrowthMB: rssEndGrowth,
    rssSlopeMBPer1000: rssSlopePer1000,
  };
}

/** A markdown table of the samples (every `stride`-th, plus the first, the warm-up and the last). */
function table(samples, { warmup = 0, stride = 1 } = {}) {
  const f = (v, d = 1) => (v === null || v === undefined ? '–' : v.toFixed(d));
  const rows = samples.filter((s, i) => i === 0 || i === samples.length - 1 || s.step === warmup || i % stride === 0);
  const lines = ['| step | numTensors | RSS MB | V8 heap MB | wasm heap MB | ms/step (window) |', '|---:|---:|---:|---:|---:|---:|'];
  for (const s of rows) lines.push(`| ${s.step} | ${s.numTensors} | ${f(s.rssMB)} | ${f(s.heapMB)} | ${f(s.wasmMB)} | ${f(s.msPerStep)} |`);
  return lines.join('\n');
}

module.exports = { soak, judge, table, sample, wasmHeapBytes };
