import { spawn, spawnSync, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { KEYS, connection, startEmbeddedRedis, type EmbeddedRedis, type SweepPlan } from '@tfkd/sweep';
import { runCommand } from './run';
import { BIN, plainEnv } from './__fixtures__/kd-child';

// A sweep whose spec `load:`s a saved teacher by a relative path: the folder travels through Redis
// (content-addressed), so a worker with its own working folder (another machine) runs the cell, and the
// cell's id names the weights, not a path of the submitting machine. Real redis-server, `kd` from sources.
jest.setTimeout(180_000);


const TEACHER = `
seed: 3
backend: cpu
data: { name: fashion-mnist, subset: true, limit: { train: 512, test: 256 } }
student: { model: mlp, options: { hidden: [24] } }
train: { epochs: 1, batchSize: 64, optimizer: { name: adam, lr: 0.01, weightDecay: 0 } }
plugins: [{ use: loss/cross-entropy }]
`;
const LOADED = `
seed: 1
backend: cpu
data: { name: fashion-mnist, subset: true, limit: { train: 512, test: 256 } }
teacher: { load: ./saved-teacher }
student: { model: mlp, options: { hidden: [16] } }
train: { epochs: 1, batchSize: 64, maxBatches: 3, optimizer: { name: adam, lr: 0.01, weightDecay: 0 } }
plugins:
  - use: loss/cross-entropy
    weight: 0.5
  - use: loss/hinton-kd
    weight: 0.5
eval: [accuracy]
`;
const SWEEP = 'spec: loaded.yaml\naxes:\n  seed: [1, 2]\n';

let tmp: string;
const at = (...p: string[]) => path.join(tmp, ...p);
const kd = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { cwd: tmp, encoding: 'utf8', env: plainEnv });
const planIds = (file: string) =>
  kd(['sweep', file, '--plan'])
    .stdout.split('\n')
    .filter((l) => /^c-[0-9a-f]{16}\s/.test(l))
    .map((l) => l.slice(0, 18));
const metricsOf = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'metrics.json'), 'utf8')) as { eval: Record<string, Record<string, number>> };

let redis: EmbeddedRedis;
beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-sweep-models-'));
  fs.mkdirSync(at('here'));
  fs.writeFileSync(at('teacher.yaml'), TEACHER);
  const t = await runCommand(at('teacher.yaml'), { out: at('teacher-run'), quiet: true });
  expect(t.status).toBe('completed');
  fs.cpSync(at('teacher-run', 'student'), at('here', 'saved-teacher'), { recursive: true });
  fs.writeFileSync(at('here', 'loaded.yaml'), LOADED);
  fs.writeFileSync(at('here', 'sweep.yaml'), SWEEP);
  redis = await startEmbeddedRedis(at('redis'));
});
afterAll(async () => {
  await redis?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('a sweep that loads a saved model', () => {
  it('cell ids name the weights: the same folder elsewhere gives the same ids, changed weights new ones', () => {
    const ids = planIds('here/sweep.yaml');
    expect(ids).toHaveLength(2);
    fs.cpSync(at('here'), at('elsewhere', 'deeper'), { recursive: true });
    expect(planIds('elsewhere/deeper/sweep.yaml')).toEqual(ids);
    const weights = at('elsewhere', 'deeper', 'saved-teacher', 'weights.bin');
    const buf = fs.readFileSync(weights);
    buf[0] ^= 1;
    fs.writeFileSync(weights, buf);
    const changed = planIds('elsewhere/deeper/sweep.yaml');
    expect(changed).toHaveLength(2);
    for (const id of changed) expect(ids).not.toContain(id);
  });

  it('a worker with its own folder fetches the model from Redis and gives the kd run result', async () => {
    const sub = kd(['sweep', 'here/sweep.yaml', '--redis', redis.url, '--detach', '--out', 'sweeps/loaded', '--quiet']);
    expect(sub.status).toBe(0);
    const plan = JSON.parse(fs.readFileSync(at('sweeps', 'loaded', 'sweep.json'), 'utf8')) as SweepPlan;
    const hash = Object.keys(plan.cells[0].models)[0];
    expect(hash).toMatch(/^m-[0-9a-f]{16}$/);
    for (const c of plan.cells) expect(c.specText).toContain(`load: models/${hash}`);
    // The worker runs in another folder: the relative `./saved-teacher` does not exist from there.
    fs.mkdirSync(at('machine-b-cwd'), { recursive: true });
    const w: ChildProcess = spawn(process.execPath, [BIN, 'worker', '--redis', redis.url, '--dir', at('machine-b')], { cwd: at('machine-b-cwd'), env: plainEnv, stdio: 'ignore' });
    const client = connection(redis.url);
    try {
      const end = Date.now() + 150_000;
      while ((await client.llen(KEYS.completions)) < 2) {
        if (Date.now() > end) throw new Error('timed out waiting for 2 results');
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(fs.existsSync(at('machine-b', 'specs', plan.cells[0].id, 'models', hash, 'model.json'))).toBe(true);
      expect(kd(['sweep', 'table', 'here/sweep.yaml', '--out', 'sweeps/loaded', '--redis', redis.url]).status).toBe(0);
      for (const c of plan.cells) {
        const alone = await runCommand(at('here', 'loaded.yaml'), { out: at(`alone-${c.seed}`), set: [`seed=${c.seed}`], quiet: true });
        expect(alone.status).toBe('completed');
        expect(metricsOf(at('sweeps', 'loaded', 'runs', `${c.row}-seed${c.seed}`)).eval).toEqual(metricsOf(at(`alone-${c.seed}`)).eval);
      }
    } finally {
      w.kill('SIGTERM');
      await new Promise<void>((r) => (w.exitCode !== null || w.signalCode !== null ? r() : w.once('exit', () => r())));
      client.disconnect();
    }
  });
});
