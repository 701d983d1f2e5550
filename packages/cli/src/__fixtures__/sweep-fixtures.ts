import { spawn, spawnSync, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { startEmbeddedRedis, type EmbeddedRedis, type SweepPlan } from '@tfkd/sweep';
import { BIN, plainEnv } from './kd-child';

// What the sweep tests on a real redis-server (sweep.spec.ts, sweep-teachers.spec.ts, sweep-resume.spec.ts)
// share: their specs, a tmp folder with `kd` run in it from the TypeScript sources in child processes, and
// redis-servers of their own.

// Tiny budget on the shipped Fashion-MNIST subset: mlp students (hidden [16]), 1 epoch of 3 batches,
// behind a teacher of 1 epoch of 4 batches.
export const BASE = `
seed: 1
backend: cpu
data: { name: fashion-mnist, subset: true, limit: { train: 512, test: 256 } }
teacher: { model: mlp, options: { hidden: [16] }, seed: 1, train: { epochs: 1, batchSize: 64, maxBatches: 4, optimizer: { name: adam, lr: 0.01, weightDecay: 0 } } }
student: { model: mlp, options: { hidden: [16] } }
train: { epochs: 1, batchSize: 64, maxBatches: 3, optimizer: { name: adam, lr: 0.01, weightDecay: 0 } }
plugins:
  - use: loss/cross-entropy
eval: [accuracy, ece]
`;

/** BASE's student without a teacher (its cells are enqueued directly): `epochs` epochs of 64 steps. */
export const stepsSpec = (epochs: number) => `
seed: 1
backend: cpu
data: { name: fashion-mnist, subset: true, limit: { train: 512, test: 256 } }
student: { model: mlp, options: { hidden: [16] } }
train: { epochs: ${epochs}, batchSize: 8, optimizer: { name: adam, lr: 0.01, weightDecay: 0 } }
plugins:
  - use: loss/cross-entropy
eval: [accuracy, ece]
`;
// Travelling and resumed checkpoints: 8 epochs of 64 steps (well under a second each here), so a kill or
// a signal lands between two epoch-end checkpoints of a cell, with several epochs of the running cell left
// (with 3, a fast machine finished the cell before the signal took effect); no teacher.
export const STEPS = stepsSpec(8);

/** A cell's metrics.json in `dir` (the fields the sweep tests read). */
export const metricsOf = (dir: string) =>
  JSON.parse(fs.readFileSync(path.join(dir, 'metrics.json'), 'utf8')) as {
    status: string;
    eval: Record<string, Record<string, number>>;
    resumes?: number;
    resumedFrom?: { epoch: number; batchIndex: number; step: number };
    checkpoint?: { next: { epoch: number; batchIndex: number }; step: number } | null;
  };
export const exited = (c: ChildProcess) => (c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => c.once('exit', () => r())));
export const lastJson = (s: string) => JSON.parse(s.trim().split('\n').pop() as string);

/**
 * A tmp folder (`prefix` + random) made before the file's tests with `files` (name → text) in it, and
 * removed after them; `kd` run in it. `logs` keeps what the children started with `start` write to
 * stderr, and `until` shows its end (as `logsAre`) to explain a timeout.
 */
export function sweepFolder(prefix: string, files: Record<string, string>, logsAre = 'worker logs') {
  let tmp: string;
  const at = (...p: string[]) => path.join(tmp, ...p);
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(at(name), text);
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  function kd(args: string[], env: NodeJS.ProcessEnv = plainEnv): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, [BIN, ...args], { cwd: tmp, encoding: 'utf8', env });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }
  const logs: string[] = [];
  function start(args: string[], { detached = false, stdout = 'ignore' }: { detached?: boolean; stdout?: 'ignore' | 'pipe' } = {}): ChildProcess {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: tmp, env: plainEnv, detached, stdio: ['ignore', stdout, 'pipe'] });
    child.stderr?.on('data', (d) => logs.push(String(d)));
    return child;
  }
  /** `start`, with the child's own stderr kept too. */
  function startLogged(args: string[]): { child: ChildProcess; log: string[] } {
    const child = start(args);
    const log: string[] = [];
    child.stderr?.on('data', (d) => log.push(String(d)));
    return { child, log };
  }
  async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 120_000): Promise<void> {
    const end = Date.now() + ms;
    while (!(await ok())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; ${logsAre}:\n${logs.join('').split('\n').slice(-40).join('\n')}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  const planOf = (name: string) => JSON.parse(fs.readFileSync(at('sweeps', name, 'sweep.json'), 'utf8')) as SweepPlan;
  return { at, kd, logs, start, startLogged, until, planOf };
}

/**
 * A redis-server of the tests' own in the folder `dir(n)` (n = 1, 2, …), started before the tests of the
 * describe block this is called in and stopped after them: once for all of them, or afresh for each.
 */
export function embeddedRedis(dir: (n: number) => string, per: 'all' | 'each' = 'all'): { readonly url: string } {
  let redis: EmbeddedRedis | undefined;
  let n = 0;
  (per === 'all' ? beforeAll : beforeEach)(async () => {
    redis = await startEmbeddedRedis(dir(++n));
  });
  (per === 'all' ? afterAll : afterEach)(async () => {
    await redis?.stop();
  });
  return {
    get url() {
      return (redis as EmbeddedRedis).url;
    },
  };
}
