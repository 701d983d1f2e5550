import { execFileSync } from 'child_process';
import * as fs from 'fs';

// Fault injection at the fs call sites: every module of this test (the CLI's output.ts included) gets
// this fs, whose functions ask `mockFault` first and otherwise call the real ones.
let mockFault: ((fn: string, args: unknown[]) => Error | null) | null = null;
jest.mock('fs', () => {
  const real = jest.requireActual('fs');
  const wrapped: Record<string, unknown> = { ...real };
  for (const fn of ['mkdirSync', 'writeFileSync', 'linkSync', 'openSync', 'renameSync', 'readdirSync']) {
    wrapped[fn] = (...args: unknown[]) => {
      const e = mockFault?.(fn, args);
      if (e) throw e;
      return real[fn](...args);
    };
  }
  return wrapped;
});
import * as os from 'os';
import * as path from 'path';
import { nodeStorage } from '@tfkd/engine/node';
import type { KdError, Storage } from '@tfkd/kd-core';
import { captureOutput, runMain } from './__fixtures__/run-main';
import { existingOutput } from './output';
import { runCommand } from './run';

// A finished run is never lost, and a storage failure is a coded error (or, for the teacher cache, a
// warning and a run that goes on) — never KD_INTERNAL, never a half-written folder.
jest.setTimeout(120_000);

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-safety-'));
});
afterEach(() => {
  jest.restoreAllMocks();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const spec = (over = '') => {
  const f = path.join(tmp, 'spec.yaml');
  fs.writeFileSync(
    f,
    `seed: 1
backend: cpu
data: { name: synthetic, train: 32, test: 16, numClasses: 3, shape: [4, 4, 1] }
teacher: { model: mlp, options: { hidden: [8] }, seed: 1, train: { epochs: 1, batchSize: 16 } }
student: { model: mlp, options: { hidden: [4] } }
train: { epochs: 1, batchSize: 16, optimizer: { name: adam, lr: 0.01, weightDecay: 0 } }
plugins: [{ use: loss/cross-entropy, weight: 0.5 }, { use: loss/hinton-kd, weight: 0.5 }]
${over}`,
  );
  return f;
};
const kd = (x: unknown) => x as KdError;
const fail = (p: Promise<unknown>) => p.then(() => null, (x: unknown) => kd(x));
const errno = (code: string) => Object.assign(new Error(`${code}: injected`), { code });

describe('an --out that holds a run', () => {
  it('is refused (KD_OUTPUT_EXISTS, before anything trains); --overwrite replaces it only once the new run completed', async () => {
    const out = path.join(tmp, 'run');
    const cacheDir = path.join(tmp, 'cache');
    await runCommand(spec(), { out, cacheDir, quiet: true, signals: false });
    const first = fs.readFileSync(path.join(out, 'metrics.json'), 'utf8');

    const e = await fail(runCommand(spec(), { out, cacheDir, quiet: true, signals: false, set: ['seed=2'] }));
    expect(e).toMatchObject({ code: 'KD_OUTPUT_EXISTS', path: out });
    expect(e?.message).toMatch(/already holds a finished run \(metrics\.json status completed, finished /);
    expect(e?.fix).toBe('give another --out, or add --overwrite to replace it (only once the new run has completed)');
    expect(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8')).toBe(first);

    // an --overwrite run that fails leaves the old run as it was
    const diverging = await fail(runCommand(spec('nonFinite: stop'), { out, cacheDir, quiet: true, signals: false, overwrite: true, set: ['train.optimizer.lr=1e30', 'student.options.hidden=[64]'] }));
    expect(diverging?.code).toBe('KD_LOSS_NONFINITE');
    expect(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8')).toBe(first);
    expect(fs.readdirSync(tmp).sort()).toEqual(['cache', 'run', 'spec.yaml']);

    await runCommand(spec(), { out, cacheDir, quiet: true, signals: false, overwrite: true, set: ['seed=2'] });
    const second = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
    expect(second.seed).toBe(2);
    expect(fs.readdirSync(tmp).sort()).toEqual(['cache', 'run', 'spec.yaml']);
  });

  it('through main(): exit 2, one coded error, no stack; other files and interrupted runs are guarded too', async () => {
    const out = path.join(tmp, 'notes');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'todo.txt'), 'mine');
    const { code, err } = await runMain(['run', spec(), '--out', out, '--quiet', '--cache-dir', path.join(tmp, 'cache')]);
    expect(code).toBe(2);
    expect(err).toBe(`error KD_OUTPUT_EXISTS at ${out}: ${out} already holds files that are not a finished run; this run would replace it\n  fix: give another --out, or add --overwrite to replace it (only once the new run has completed)\n`);
    expect(fs.readFileSync(path.join(out, 'todo.txt'), 'utf8')).toBe('mine');

    const stopped = path.join(tmp, 'stopped');
    fs.mkdirSync(stopped);
    fs.writeFileSync(path.join(stopped, 'metrics.json'), JSON.stringify({ status: 'interrupted' }));
    expect(existingOutput(stopped, { command: 'kd run s.yaml' })).toMatchObject({
      code: 'KD_OUTPUT_EXISTS',
      fix: `continue it with \`kd run s.yaml --resume ${stopped}\`, replace it with --overwrite, or give another --out`,
    });
    expect(existingOutput(stopped, { resumeTarget: stopped })).toBeNull();
    expect(existingOutput(path.join(tmp, 'new'))).toBeNull();
  });
});

describe('a file-system failure under the run folder (injected at each fs call site)', () => {
  // Each call site of the run-folder path, failing with the errno a user meets there.
  const cases: [string, string][] = [
    ['mkdirSync', 'EACCES'],
    ['writeFileSync', 'EROFS'],
    ['linkSync', 'EPERM'],
    ['openSync', 'ENOSPC'],
    ['renameSync', 'EACCES'],
    ['readdirSync', 'EIO'],
  ];
  it.each(cases)('%s failing with %s: KD_OUTPUT_WRITE naming the path, no run folder, no staging folder', async (fn, code) => {
    const out = path.join(tmp, 'run');
    let hits = 0;
    mockFault = (name, args) => (name === fn && String(args[0]).startsWith(out) && ++hits ? errno(code) : null);
    const { value: e } = await captureOutput(() => fail(runCommand(spec(), { out, cacheDir: path.join(tmp, 'cache'), quiet: true, signals: false }))).finally(() => (mockFault = null));
    expect(hits).toBeGreaterThan(0);
    expect(e?.code).toBe('KD_OUTPUT_WRITE');
    expect(e?.message).toContain(`${code}: injected`);
    expect(e?.path?.startsWith(out)).toBe(true);
    expect(fs.readdirSync(tmp).filter((n) => n.startsWith('run'))).toEqual([]);
  });
});

describe('the sweep folder (kd sweep)', () => {
  const sweepFile = path.resolve(__dirname, '..', '..', '..', 'examples', 'sweeps', 'demo.yaml');
  it('writing sweep.json failing with ENOSPC: exit 2, KD_OUTPUT_WRITE with the fix, no half-written file', async () => {
    const out = path.join(tmp, 'sweep');
    mockFault = (name, args) => (name === 'writeFileSync' && String(args[0]).startsWith(out) ? errno('ENOSPC') : null);
    const { code, err } = await runMain(['sweep', sweepFile, '--plan', '--out', out, '--quiet']).finally(() => (mockFault = null));
    expect(code).toBe(2);
    expect(err).toMatch(new RegExp(`^error KD_OUTPUT_WRITE at ${out}/sweep\\.json: could not write .*ENOSPC: injected\n {2}fix: free space on that disk`, 'm'));
    expect(err).not.toMatch(/\n\s+at /);
    expect(fs.readdirSync(out)).toEqual([]);
  });
});

describe('the teacher cache through the storage port', () => {
  it.each(['mkdirp', 'writeText', 'rename'] as const)('%s failing: a warning, the run completes with its teacher uncached, nothing left in the cache', async (method) => {
    const cacheDir = path.join(tmp, 'cache');
    const broken: Storage = {
      ...nodeStorage,
      [method]: (p: string, ...rest: unknown[]) => {
        if (String(p).startsWith(cacheDir)) throw errno('EACCES');
        return (nodeStorage[method] as (...a: unknown[]) => unknown)(p, ...rest);
      },
    };
    const { value: outcome, err } = await captureOutput(() => runCommand(spec(), { out: path.join(tmp, 'run'), cacheDir, storage: broken, quiet: true, signals: false }));
    expect(outcome.status).toBe('completed');
    expect((outcome.metrics.teachers as Record<string, { cached: boolean; dir: string | null }>).teacher).toMatchObject({ cached: false, dir: null });
    expect(err).toMatch(/^warning: (the teacher cache .* cannot be written|teacher 'teacher' was trained but not cached)/m);
    const left = fs.existsSync(cacheDir) ? execFileSync('find', [cacheDir, '-type', 'f'], { encoding: 'utf8' }).trim() : '';
    expect(left).toBe('');
  });
});

// Real file systems: a read-only and a full tmpfs (mounting needs root; skipped with a message otherwise).
const mountable = (() => {
  if (process.getuid?.() !== 0) return false;
  const probe = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-mount-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    fs.rmSync(probe, { recursive: true, force: true });
  }
})();
if (!mountable) process.stderr.write('output-safety.spec: not root or no mount(8): the read-only and full file-system tests are skipped\n');
const onTmpfs = mountable ? describe : describe.skip;

onTmpfs('real file systems (tmpfs)', () => {
  const mounted: string[] = [];
  const mount = (opts: string) => {
    const dir = fs.mkdtempSync(path.join(tmp, 'fs-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', dir]);
    mounted.push(dir);
    return dir;
  };
  afterEach(() => {
    for (const d of mounted.splice(0)) execFileSync('umount', [d]);
  });

  it('read-only: --out there is KD_OUTPUT_WRITE before anything trains; a cache there is a warning and the run goes on', async () => {
    const ro = mount('ro');
    const refused = await runMain(['run', spec(), '--out', path.join(ro, 'run'), '--quiet', '--cache-dir', path.join(tmp, 'cache')]);
    expect(refused.code).toBe(2);
    expect(refused.err).toMatch(new RegExp(`^error KD_OUTPUT_WRITE at ${ro}/run\\.incomplete: could not create the staging folder .*EROFS`));
    expect(refused.err).toMatch(/\n {2}fix: the file system is read-only: give --out a folder on a writable one\n$/);
    expect(refused.err).not.toMatch(/\n\s+at /);
    const uncached = await runMain(['run', spec(), '--out', path.join(tmp, 'run'), '--quiet', '--cache-dir', path.join(ro, 'cache')]);
    expect(uncached.code).toBe(0);
    expect(uncached.err).toMatch(/^warning: the teacher cache .* cannot be written .*EROFS/m);
  });

  it('read-only: a sweep folder there is KD_OUTPUT_WRITE before any cell is planned', async () => {
    const ro = mount('ro');
    const sweepFile = path.resolve(__dirname, '..', '..', '..', 'examples', 'sweeps', 'demo.yaml');
    const t0 = Date.now();
    const { code, err } = await runMain(['sweep', sweepFile, '--plan', '--out', path.join(ro, 'sweep'), '--quiet']);
    expect(code).toBe(2);
    expect(err).toMatch(new RegExp(`^error KD_OUTPUT_WRITE at ${ro}/sweep: could not create the sweep folder .*EROFS`));
    expect(err).not.toMatch(/\n\s+at /);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('full: a run whose model does not fit is KD_OUTPUT_WRITE (ENOSPC) with no half folder', async () => {
    const small = mount('size=256k');
    const out = path.join(small, 'run');
    // a 784-512-3 student: its weights (1.6 MB) cannot fit in 256 kB
    const { value: e } = await captureOutput(() =>
      fail(runCommand(spec(), { out, cacheDir: path.join(tmp, 'cache'), quiet: true, signals: false, set: ['data.shape=[28, 28, 1]', 'student.options.hidden=[512]'] })),
    );
    expect(e?.code).toBe('KD_OUTPUT_WRITE');
    expect(e?.message).toMatch(/ENOSPC/);
    expect(e?.fix).toMatch(/disk/);
    expect(fs.readdirSync(small)).toEqual([]);
  });
});
