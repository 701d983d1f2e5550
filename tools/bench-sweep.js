#!/usr/bin/env node
// Benchmark of `kd sweep` (docs/benchmarks.md, "Sweeps"): the same 8 cells with 1 local worker, then
// with 2, each on a fresh private redis-server; throughput ratio, and the queue's per-job overhead read
// back from BullMQ's job timestamps. Usage: npm run bench:sweep   (or node tools/bench-sweep.js
// [--from-source] [--quick] [--workers 1,2]); needs redis-server (apt-get install -y redis-server).
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const ROOT = path.join(__dirname, '..');
const fromSource = process.argv.includes('--from-source');
const quick = process.argv.includes('--quick');
const workerCounts = (process.argv.find((a) => a.startsWith('--workers=')) ?? '--workers=1,2').slice(10).split(',').map(Number);
const BIN = fromSource ? path.join(ROOT, 'packages/cli/src/__fixtures__/from-source.js') : path.join(ROOT, 'packages/cli/dist/bin.js');
if (fromSource) require(path.join(ROOT, 'packages/cli/src/__fixtures__/register-source.js'));
const sweepLib = fromSource ? require(path.join(ROOT, 'packages/sweep/src/index.ts')) : require(path.join(ROOT, 'packages/sweep/dist/index.js'));

// 8 cells (2 stacks × 2 learning rates × 2 seeds), no teacher: each cell is one single-threaded wasm run
// of the mlp student on the shipped subset (12 epochs: about 8 s; --quick: about 2 s).
const train = quick ? 'epochs: 1, batchSize: 64, maxBatches: 10' : 'epochs: 12, batchSize: 64';
const SPEC = `seed: 1
backend: wasm
data: { name: fashion-mnist, subset: true, limit: { train: ${quick ? 1024 : 6000}, test: 1000 } }
student: { model: mlp-student }
train: { ${train}, optimizer: { name: adam, lr: 0.001, weightDecay: 0 } }
plugins:
  - use: loss/cross-entropy
eval: [accuracy]
`;
const GRID = `spec: base.yaml
axes:
  stack:
    ce: [{ use: loss/cross-entropy }]
    ls: [{ use: loss/label-smoothing }]
  set: { lr1: train.optimizer.lr=0.001, lr2: train.optimizer.lr=0.002 }
  seed: [1, 2]
`;

async function main() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-bench-sweep-'));
  fs.writeFileSync(path.join(work, 'base.yaml'), SPEC);
  fs.writeFileSync(path.join(work, 'grid.yaml'), GRID);
  const env = { ...process.env, NO_COLOR: '1', CI: '1' };
  delete env.FORCE_COLOR;
  const results = [];
  for (const n of workerCounts) {
    const out = path.join(work, `w${n}`);
    const t0 = process.hrtime.bigint();
    const r = spawnSync(process.execPath, [BIN, 'sweep', 'grid.yaml', '--workers', String(n), '--out', out, '--cache-dir', path.join(work, 'cache'), '--quiet'], { cwd: work, env, encoding: 'utf8' });
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r.status !== 0) {
      console.error(r.stderr);
      process.exit(1);
    }
    // BullMQ's own timestamps: when each job was taken and finished, on which worker.
    const redis = await sweepLib.startEmbeddedRedis(path.join(out, 'redis'));
    const conn = sweepLib.connection(redis.url);
    const { Queue } = require('bullmq');
    const queue = new Queue(sweepLib.QUEUE, { connection: conn });
    const jobs = (await queue.getJobs(['completed'])).filter((j) => j.name === 'cell');
    await queue.close();
    conn.disconnect();
    await redis.stop();
    const runSeconds = jobs.map((j) => JSON.parse(fs.readFileSync(path.join(out, 'work', 'runs', j.id, 'metrics.json'), 'utf8')).wallSeconds);
    const jobSeconds = jobs.map((j) => (j.finishedOn - j.processedOn) / 1000);
    // Per job, what the queue adds around the run: the gap between a worker's jobs (fetch, lock) plus
    // the worker's own wrapper (spec copy, run-folder upload to Redis, completion), i.e. job time − run time
    // where run time is `kd run`'s whole runCommand as seen from the job (planning and writing included).
    const byWorker = new Map();
    for (const j of jobs) byWorker.set(j.returnvalue.worker, [...(byWorker.get(j.returnvalue.worker) ?? []), j]);
    const gaps = [];
    for (const list of byWorker.values()) {
      list.sort((a, b) => a.processedOn - b.processedOn);
      for (let i = 1; i < list.length; i++) gaps.push((list[i].processedOn - list[i - 1].finishedOn) / 1000);
    }
    const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
    results.push({ workers: n, cells: jobs.length, wall, cellsPerMinute: (60 * jobs.length) / wall, meanJobSeconds: mean(jobSeconds), meanRunSeconds: mean(runSeconds), meanGapSeconds: mean(gaps) });
  }
  const base = results[0];
  console.log('| workers | cells | sweep wall s | cells / min | throughput vs 1 worker | mean job s | mean training s (metrics.wallSeconds) | mean gap between a worker\'s jobs s |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    console.log(`| ${r.workers} | ${r.cells} | ${r.wall.toFixed(1)} | ${r.cellsPerMinute.toFixed(2)} | ${(r.cellsPerMinute / base.cellsPerMinute).toFixed(2)}× | ${r.meanJobSeconds.toFixed(2)} | ${r.meanRunSeconds.toFixed(2)} | ${Number.isNaN(r.meanGapSeconds) ? '–' : r.meanGapSeconds.toFixed(3)} |`);
  }
  fs.rmSync(work, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
