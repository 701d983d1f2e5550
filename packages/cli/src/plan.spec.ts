import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { LifecycleBus } from '@tfkd/kd-core';
import { runMain } from './__fixtures__/run-main';
import { runCommand } from './run';

// The plan → execute split through `kd run`: a spec is checked whole (teachers it would train
// included, built untrained) before any weight moves, and `--plan` shows what each run uses.
jest.setTimeout(120_000);

let tmp: string;

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-plan-'));
});
afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function write(name: string, text: string): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, text);
  return f;
}

// The case of the architecture issue: a cnn-large teacher trained from labels (107 s of training
// before the old engine found the typo) and an attention loss whose taps name no layer.
const missingTap = `
seed: 1
data: { name: fashion-mnist, subset: true }
teacher: { model: cnn-large, seed: 1, train: { epochs: 8, batchSize: 64, optimizer: { name: adam, lr: 0.001, weightDecay: 0 } } }
student: { model: cnn-small }
train: { epochs: 10, batchSize: 64, optimizer: { name: adam, lr: 0.001, weightDecay: 0 } }
plugins:
  - use: loss/hinton-kd
    with: { temperature: 4 }
  - use: loss/attention
    with: { pairs: [[student.no_such_layer, teacher.also_missing]] }
    weight: 1000
`;

describe('kd run plans before it trains', () => {
  it('a tap typo behind a teacher trained from labels fails with KD_TAP_UNKNOWN in seconds: no step, no cache, no run folder', async () => {
    const cache = path.join(tmp, 'cache');
    const out = path.join(tmp, 'run');
    let steps = 0;
    const observe = (bus: LifecycleBus) => void bus.events$.subscribe((e) => void (e.hook === 'batchEnd' && steps++));
    const t0 = Date.now();
    const e = await runCommand(write('typo.yaml', missingTap), { out, cacheDir: cache, quiet: true, signals: false, observe }).then(
      () => null,
      (x: unknown) => x as { code: string; path: string; message: string },
    );
    const seconds = (Date.now() - t0) / 1000;
    expect(e).toMatchObject({ code: 'KD_TAP_UNKNOWN', path: 'plugins[1]' });
    expect(e?.message).toMatch(/^role 'teacher' \(cnn-large\) has no layer 'also_missing'/);
    expect(steps).toBe(0);
    expect(fs.existsSync(path.join(cache, 'teachers'))).toBe(false);
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.existsSync(`${out}.incomplete`)).toBe(false);
    // the bound, with room: loading the subset and building two untrained models
    expect(seconds).toBeLessThan(10);
  });

  it('the same spec through main(): exit 2 and the coded error on stderr', async () => {
    const { code, err } = await runMain(['run', write('typo.yaml', missingTap), '--out', path.join(tmp, 'run'), '--cache-dir', path.join(tmp, 'cache'), '--quiet']);
    expect(code).toBe(2);
    expect(err).toMatch(/^error KD_TAP_UNKNOWN at plugins\[1\]: /m);
    expect(fs.readdirSync(tmp).sort()).toEqual(['typo.yaml']);
  });
});

const tinyKd = `
seed: 2
backend: cpu
data: { name: synthetic, train: 64, test: 32, numClasses: 4, shape: [6, 6, 1] }
teacher: { model: mlp, options: { hidden: [32] }, seed: 1, train: { epochs: 2, batchSize: 32, optimizer: { name: adam, lr: 0.01, weightDecay: 0 } } }
student: { model: mlp, options: { hidden: [8] } }
train: { epochs: 3, batchSize: 16, optimizer: { name: sgd, lr: 0.05, momentum: 0.9, weightDecay: 0 } }
plugins:
  - use: loss/cross-entropy
    weight: 0.1
  - use: loss/hinton-kd
    weight: 0.9
`;

describe('kd run --plan', () => {
  it("prints each run with its own recipe, trains nothing; the teacher's recipe and key do not follow --set train.*", async () => {
    const f = write('kd.yaml', tinyKd);
    const cache = path.join(tmp, 'cache');
    const plan1 = await runMain(['run', f, '--plan', '--cache-dir', cache, '--out', path.join(tmp, 'run')]);
    expect(plan1.code).toBe(0);
    const first = plan1.out.trim().split('\n');
    expect(first[0]).toBe('plan: 2 runs, data synthetic (64 train / 32 test), backend cpu');
    expect(first[1]).toMatch(/^1\. teacher 'teacher': mlp from labels; 2 epochs × batch 32, adam lr 0\.01 — trained, then cached in .*teachers\/([0-9a-f]{16})$/);
    expect(first[2]).toBe('2. distill: teacher mlp, student mlp; plugins loss/cross-entropy, loss/hinton-kd; 3 epochs × batch 16, sgd lr 0.05 momentum 0.9');
    expect(fs.readdirSync(tmp).sort()).toEqual(['kd.yaml']);

    // the run's `train:` is the student's: overriding it changes the main run, not the teacher
    const plan2 = await runMain(['run', f, '--plan', '--cache-dir', cache, '--set', 'train.epochs=7', '--set', 'train.batchSize=8']);
    expect(plan2.code).toBe(0);
    const second = plan2.out.trim().split('\n');
    expect(second[1]).toBe(first[1]);
    expect(second[2]).toContain('7 epochs × batch 8');

    // once the teacher is trained, the plan says it will be loaded from the cache
    expect((await runMain(['run', f, '--quiet', '--cache-dir', cache, '--out', path.join(tmp, 'run')])).code).toBe(0);
    const plan3 = await runMain(['run', f, '--plan', '--cache-dir', cache, '--set', 'train.epochs=7']);
    expect(plan3.code).toBe(0);
    const key = /teachers\/([0-9a-f]{16})$/.exec(first[1])?.[1];
    expect(plan3.out.split('\n')[1]).toMatch(new RegExp(`^1\\. teacher 'teacher': mlp from labels; .* — cached, loaded from .*teachers/${key}$`));
    expect(fs.readdirSync(path.join(cache, 'teachers'))).toEqual([key]);
  });
});
