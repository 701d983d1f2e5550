import { spawn, spawnSync, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { runMain } from './__fixtures__/run-main';
import { StopRequest } from './run';

// Issue #11: checkpoints, resume and interruption, through `kd` in child processes (a real
// SIGKILL / SIGINT / SIGTERM), plus in-process runs for the failure paths. The children run the CLI
// from its sources (__fixtures__/from-source.js: SWC, as jest does), so no build is needed and none
// races pack.spec.ts's; `node packages/cli/dist/bin.js` behaves the same once built.
jest.setTimeout(120_000);

const BIN = path.join(__dirname, '__fixtures__', 'from-source.js');
// Child processes get a plain environment: no colour codes (nx sets FORCE_COLOR).
const plainEnv: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
delete plainEnv.FORCE_COLOR;

// cpu: a dense student (the cpu backend's convolutions are slow); 512 images in batches of 16 are
// 32 steps per epoch, about half a second, so a kill after the first checkpoint lands inside epoch 2.
const CPU_SPEC = `
seed: 3
backend: cpu
data: { name: synthetic, train: 512, test: 128, numClasses: 4, shape: [8, 8, 1], noise: 0.6 }
teacher: { model: mlp, options: { hidden: [32] }, seed: 1, train: { epochs: 2, optimizer: { name: adam, lr: 0.01, weightDecay: 0 } } }
student: { model: mlp, options: { hidden: [64, 64] } }
train: { epochs: 3, batchSize: 16, optimizer: { name: sgd, lr: 0.05, momentum: 0.9, weightDecay: 5e-4 }, schedule: { name: cosine } }
plugins:
  - use: loss/cross-entropy
    weight: 0.1
  - use: loss/hinton-kd
    with: { temperature: 4 }
    weight: 0.9
eval: [accuracy, ece]
`;
// wasm: a convolutional student (the project's wasm training kernels) with Adam; also 32 steps per epoch.
const WASM_SPEC = `
seed: 5
backend: wasm
data: { name: synthetic, train: 512, test: 128, numClasses: 4, shape: [12, 12, 1], noise: 0.6 }
teacher: { model: mlp, options: { hidden: [32] }, seed: 1, train: { epochs: 2, optimizer: { name: adam, lr: 0.01, weightDecay: 0 } } }
student: { model: cnn-small }
train: { epochs: 3, batchSize: 16, optimizer: { name: adam, lr: 0.005, weightDecay: 0 } }
plugins:
  - use: loss/cross-entropy
    weight: 0.1
  - use: loss/hinton-kd
    with: { temperature: 4 }
    weight: 0.9
eval: [accuracy]
`;

let tmp: string;
const at = (...p: string[]) => path.join(tmp, ...p);

function kd(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: tmp, encoding: 'utf8', env: plainEnv });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface Running {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

function start(args: string[]): Running {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: tmp, env: plainEnv });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => (stdout += d));
  child.stderr?.on('data', (d) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { child, exited };
}

/** Poll (10 ms) until `file` exists; fails if the child exits first. */
async function waitFor(file: string, run: Running): Promise<void> {
  let done = false;
  void run.exited.then(() => (done = true));
  for (;;) {
    if (fs.existsSync(file)) return;
    if (done) throw new Error(`the run ended before ${file} appeared:\n${(await run.exited).stderr}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function results(dir: string) {
  const metrics = JSON.parse(fs.readFileSync(at(dir, 'metrics.json'), 'utf8'));
  const history = fs
    .readFileSync(at(dir, 'history.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  return { metrics, history, weights: fs.readFileSync(at(dir, 'student', 'weights.bin')) };
}

/** Everything of a run that does not depend on wall time. */
function comparable(r: ReturnType<typeof results>) {
  return {
    eval: r.metrics.eval,
    ledger: r.metrics.ledger.roles,
    steps: r.metrics.ledger.phases.distill.steps,
    history: r.history.map(({ seconds: _s, ...h }: { seconds: number }) => h),
  };
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-resume-'));
  fs.writeFileSync(at('cpu.yaml'), CPU_SPEC);
  fs.writeFileSync(at('wasm.yaml'), WASM_SPEC);
  // Uninterrupted references (they also train and cache the teachers).
  for (const b of ['cpu', 'wasm']) {
    const r = kd(['run', `${b}.yaml`, '--out', `${b}-whole`, '--cache-dir', 'cache', '--quiet']);
    if (r.status !== 0) throw new Error(`reference run on ${b} failed:\n${r.stderr}`);
  }
}, 120_000);

afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe.each(['cpu', 'wasm'])('kd run on %s, killed and resumed', (backend) => {
  it('SIGKILL inside epoch 2, --resume <out>.incomplete: the same metrics, history, cost ledger and weights as one uninterrupted run', async () => {
    const out = `${backend}-killed`;
    const run = start(['run', `${backend}.yaml`, '--out', out, '--cache-dir', 'cache', '--quiet']);
    await waitFor(at(`${out}.incomplete`, 'checkpoint', 'checkpoint.json'), run);
    run.child.kill('SIGKILL');
    expect((await run.exited).signal).toBe('SIGKILL');

    // Nothing at the output folder; the staging folder holds the checkpoint of epoch 1's end.
    expect(fs.existsSync(at(out))).toBe(false);
    const saved = JSON.parse(fs.readFileSync(at(`${out}.incomplete`, 'checkpoint', 'checkpoint.json'), 'utf8'));
    expect(saved.next).toEqual({ epoch: 2, batchIndex: 0 });
    expect(saved.history.map((h: { epoch: number }) => h.epoch)).toEqual([1]);

    // A new run into that folder would throw the checkpoint away: refused, before anything is built.
    const again = kd(['run', `${backend}.yaml`, '--out', out, '--cache-dir', 'cache', '--quiet']);
    expect(again.status).toBe(2);
    expect(again.stderr).toContain(`error KD_OUTPUT_WRITE at ${at(`${out}.incomplete`)}: `);
    expect(again.stderr).toContain(`--resume ${at(`${out}.incomplete`)}`);

    const resumed = kd(['run', `${backend}.yaml`, '--resume', `${out}.incomplete`, '--cache-dir', 'cache', '--quiet']);
    expect(resumed.stderr).toBe('');
    expect(resumed.status).toBe(0);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ outDir: out, status: 'completed' });

    const whole = results(`${backend}-whole`);
    const cont = results(out);
    expect(comparable(cont)).toEqual(comparable(whole));
    expect(cont.weights.equals(whole.weights)).toBe(true);
    expect(cont.metrics.resumes).toBe(1);
    // Epoch 2 is re-run from its start: the 32 steps of epoch 1 were done before.
    expect(cont.metrics.resumedFrom).toEqual({ dir: `${out}.incomplete`, epoch: 2, batchIndex: 0, step: 32 });
    expect(fs.existsSync(at(`${out}.incomplete`))).toBe(false);
    expect(fs.existsSync(at(out, 'checkpoint'))).toBe(false);
    // The student learned something (4 classes: chance is 0.25).
    expect(whole.metrics.eval.student.accuracy).toBeGreaterThan(0.5);
    expect(whole.history).toHaveLength(3);
  });
});

describe('kd run interrupted by a signal', () => {
  it('SIGINT: stops after the current step, exit 130, an interrupted run folder whose checkpoint --resume continues to the uninterrupted result', async () => {
    const run = start(['run', 'cpu.yaml', '--out', 'int', '--cache-dir', 'cache', '--quiet']);
    await waitFor(at('int.incomplete', 'checkpoint', 'checkpoint.json'), run);
    await sleep(100);
    run.child.kill('SIGINT');
    const { code, stdout, stderr } = await run.exited;
    expect(code).toBe(130);
    expect(stderr).toContain('SIGINT: stopping after the current step');

    const m = JSON.parse(fs.readFileSync(at('int', 'metrics.json'), 'utf8'));
    expect(m.status).toBe('interrupted');
    expect(m.signal).toBe('SIGINT');
    // The signal was sent during epoch 2 — or, on a loaded machine, as late as epoch 3 (32 steps an epoch
    // take well under a second): where it stopped follows from the epochs it finished.
    const finished = m.epochsDone as number;
    expect([1, 2]).toContain(finished);
    expect(m.stoppedAt.epoch).toBe(finished + 1);
    expect(m.stoppedAt.step).toBe(32 * finished + m.stoppedAt.batchIndex);
    // The checkpoint in the folder is the one at the step where it stopped.
    expect(m.checkpoint).toEqual({ dir: 'checkpoint', next: { epoch: finished + 1, batchIndex: m.stoppedAt.batchIndex }, step: m.stoppedAt.step });
    expect(JSON.parse(stdout)).toMatchObject({ outDir: 'int', status: 'interrupted', resume: 'kd run cpu.yaml --resume int' });
    expect(fs.existsSync(at('int', 'checkpoint', 'checkpoint.json'))).toBe(true);
    expect(fs.existsSync(at('int', 'student', 'model.json'))).toBe(true);
    expect(fs.readFileSync(at('int', 'history.jsonl'), 'utf8').trim().split('\n')).toHaveLength(finished);
    expect(fs.existsSync(at('int.incomplete'))).toBe(false);

    const resumed = kd(['run', 'cpu.yaml', '--resume', 'int', '--cache-dir', 'cache', '--quiet']);
    expect(resumed.stderr).toBe('');
    expect(resumed.status).toBe(0);
    const whole = results('cpu-whole');
    const cont = results('int');
    expect(comparable(cont)).toEqual(comparable(whole));
    expect(cont.weights.equals(whole.weights)).toBe(true);
    expect(cont.metrics.status).toBe('completed');
    expect(cont.metrics.resumedFrom).toEqual({ dir: 'int', ...m.checkpoint.next, step: m.stoppedAt.step });

    // A completed run has nothing to resume.
    const done = kd(['run', 'cpu.yaml', '--resume', 'int', '--cache-dir', 'cache', '--quiet']);
    expect(done.status).toBe(2);
    expect(done.stderr).toContain(`error KD_CHECKPOINT_INVALID at int: the run in ${at('int')} completed; there is nothing to resume`);
  });

  it('SIGTERM: exit 143 and an interrupted folder; resuming it with another spec is KD_RESUME_MISMATCH naming the path', async () => {
    const run = start(['run', 'cpu.yaml', '--out', 'term', '--cache-dir', 'cache', '--quiet']);
    await waitFor(at('term.incomplete', 'checkpoint', 'checkpoint.json'), run);
    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(143);
    const m = JSON.parse(fs.readFileSync(at('term', 'metrics.json'), 'utf8'));
    expect(m).toMatchObject({ status: 'interrupted', signal: 'SIGTERM' });
    expect([1, 2]).toContain(m.epochsDone); // sent as epoch 1's checkpoint appeared; later on a loaded machine

    const other = kd(['run', 'cpu.yaml', '--resume', 'term', '--cache-dir', 'cache', '--quiet', '--set', 'train.epochs=4']);
    expect(other.status).toBe(2);
    expect(other.stderr).toMatch(/^error KD_RESUME_MISMATCH at train\.epochs: the spec differs from the checkpoint's at train\.epochs \(hash [0-9a-f]{16}, checkpoint [0-9a-f]{16}\)\n {2}fix: resume with the spec file and --set/m);
    // Nothing was touched: the folder still resumes with the right spec.
    expect(JSON.parse(fs.readFileSync(at('term', 'metrics.json'), 'utf8')).status).toBe('interrupted');
    expect(fs.existsSync(at('term.incomplete'))).toBe(false);
  });

  it('a second SIGINT exits at once with 130; the handlers exist only during the run', () => {
    const before = process.listenerCount('SIGINT');
    const beforeTerm = process.listenerCount('SIGTERM');
    const lines: string[] = [];
    const stop = new StopRequest((l) => void lines.push(l), () => '/runs/x.incomplete');
    const exit = jest.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    const write = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    stop.install();
    try {
      expect(process.listenerCount('SIGINT')).toBe(before + 1);
      process.emit('SIGINT' as never);
      expect(stop.signal).toBe('SIGINT');
      expect(stop.exitCode).toBe(130);
      expect(exit).not.toHaveBeenCalled();
      expect(lines).toEqual(['SIGINT: stopping after the current step and writing a checkpoint (Ctrl-C again stops at once)']);
      process.emit('SIGINT' as never);
      expect(exit).toHaveBeenCalledWith(130);
      expect(write).toHaveBeenCalledWith('SIGINT again: stopped at once; the last epoch-end checkpoint (if any) is in /runs/x.incomplete\n');
    } finally {
      stop.uninstall();
      exit.mockRestore();
      write.mockRestore();
    }
    expect(process.listenerCount('SIGINT')).toBe(before);
    expect(process.listenerCount('SIGTERM')).toBe(beforeTerm);
  });
});

describe('a checkpoint that cannot be written', () => {
  // A third-party plugin (loaded through `packages:`) whose state at the end of epoch 2 is not JSON
  // (a BigInt) and which throws at the start of epoch 3 when told to.
  const flags = { badStateAt: 0, throwAt: 0 };

  beforeAll(async () => {
    const { definePlugin, PLUGIN_DEFINITION } = await import('@tfkd/kd-core');
    const { z } = await import('zod');
    const { ContainerModule } = await import('inversify');
    (global as Record<string, unknown>).__flakyModule = new ContainerModule((o) => {
      o.bind(PLUGIN_DEFINITION).toConstantValue(
        definePlugin({
          id: 'test/flaky-state',
          kind: 'observer',
          describe: 'state that is not JSON at one epoch, a throw at another (test)',
          options: z.object({}).strict(),
          create(_o, deps) {
            let epoch = 0;
            return {
              name: deps.name,
              register(bus) {
                bus.on('epochStart', (e) => {
                  epoch = e.epoch;
                  if (e.epoch === flags.throwAt) throw new Error('flaky: epoch 3');
                });
              },
              getState: () => ({ epoch, ...(epoch === flags.badStateAt ? { big: BigInt(epoch) } : {}) }),
              setState(s) {
                epoch = (s as { epoch: number }).epoch;
              },
            };
          },
        }),
      );
    });
    fs.writeFileSync(at('flaky.js'), 'module.exports = { kdModule: global.__flakyModule };');
    fs.writeFileSync(at('flaky.yaml'), `${CPU_SPEC}packages: [./flaky.js]\n`.replace('  - use: loss/cross-entropy', '  - use: test/flaky-state\n  - use: loss/cross-entropy'));
  });

  it('the run warns and keeps the last good checkpoint; when it then fails, the staging folder stays and resumes to the uninterrupted result', async () => {
    const spec = at('flaky.yaml');
    const common = ['--cache-dir', at('cache'), '--quiet'];
    Object.assign(flags, { badStateAt: 2, throwAt: 3 });
    const { code, err } = await runMain(['run', spec, '--out', at('flaky'), ...common]);
    expect(code).toBe(2);
    expect(err).toContain('warning: checkpoint not written (the previous one is kept): KD_OUTPUT_WRITE at ');
    expect(err).toContain('BigInt');
    expect(err).toContain("error KD_PLUGIN_FAILED");
    expect(err).toContain(`the last checkpoint is kept in ${at('flaky.incomplete')}: continue with \`kd run ${spec} --resume ${at('flaky.incomplete')}\``);
    expect(fs.existsSync(at('flaky'))).toBe(false);
    expect(fs.readdirSync(at('flaky.incomplete')).filter((n) => n.startsWith('checkpoint'))).toEqual(['checkpoint']);
    const kept = JSON.parse(fs.readFileSync(at('flaky.incomplete', 'checkpoint', 'checkpoint.json'), 'utf8'));
    // Epoch 1's checkpoint: epoch 2's could not be written, epoch 3 never ended.
    expect(kept.next).toEqual({ epoch: 2, batchIndex: 0 });
    expect(kept.step).toBe(32);
    expect(kept.plugins[0]).toMatchObject({ name: 'test/flaky-state', state: { epoch: 1 } });

    Object.assign(flags, { badStateAt: 0, throwAt: 0 });
    expect((await runMain(['run', spec, '--out', at('flaky-whole'), ...common])).code).toBe(0);
    expect((await runMain(['run', spec, '--resume', at('flaky.incomplete'), ...common])).code).toBe(0);
    const whole = results('flaky-whole');
    const cont = results('flaky');
    expect(comparable(cont)).toEqual(comparable(whole));
    expect(cont.weights.equals(whole.weights)).toBe(true);
    expect(cont.metrics.checkpoints).toEqual({ written: 2, failed: 0 });
    // The plugin is an observer: the students are those of the plain cpu spec.
    expect(cont.weights.equals(results('cpu-whole').weights)).toBe(true);
  });
});
