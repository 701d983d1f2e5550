import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { encodeIdx } from '@tfkd/datasets';
import { runMain } from './__fixtures__/run-main';

jest.setTimeout(120_000);

let tmp: string;

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-cli-'));
});
afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function spec(name: string, text: string): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, text);
  return f;
}

const tiny = `
seed: 2
backend: cpu
data: { name: synthetic, train: 64, test: 32, numClasses: 4, shape: [6, 6, 1] }
teacher: { model: mlp, options: { hidden: [32] }, seed: 1, train: { epochs: 2, optimizer: { name: adam, lr: 0.01, weightDecay: 0 } } }
student: { model: mlp, options: { hidden: [8] } }
train: { epochs: 2, batchSize: 16, optimizer: { name: adam, lr: 0.01, weightDecay: 0 } }
plugins:
  - use: loss/cross-entropy
    weight: 0.1
  - use: loss/hinton-kd
    with: { temperature: 4 }
    weight: 0.9
eval: [accuracy, ece]
`;

describe('kd run', () => {
  it.each([
    ['upsampled back', '{ resize: [3, 3], upsample: true }'],
    ['model built for the view', '{ resize: [3, 3] }'],
  ])('a student with a view (%s): metrics.json calibration equals the engine evaluation on the viewed test images', async (_label, view) => {
    const f = spec('view.yaml', tiny.replace('student: { model: mlp, options: { hidden: [8] } }', `student: { model: mlp, options: { hidden: [8] }, view: ${view} }`));
    const out = path.join(tmp, 'view');
    expect((await runMain(['run', f, '--out', out, '--cache-dir', path.join(tmp, 'cache'), '--quiet'])).code).toBe(0);
    const m = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
    const last = JSON.parse(fs.readFileSync(path.join(out, 'history.jsonl'), 'utf8').trim().split('\n').pop() as string);
    // two routes to the same figures: the metric plugins inside the engine, and the CLI's pass over
    // the saved model for the diagrams — both must apply the student's view
    for (const k of ['accuracy', 'ece']) expect([k, m.eval.student[k]]).toEqual([k, last.eval.student[k]]);
    // the engine's NLL is a float32 tensor sum, the CLI's float64: equal to ~1e-7
    expect(m.eval.student.nll).toBeCloseTo(last.eval.student.nll, 6);
  });

  it('relative data paths are resolved against the spec folder, not the working folder', async () => {
    const dir = path.join(tmp, 'project');
    fs.mkdirSync(path.join(dir, 'idx'), { recursive: true });
    // 12 training and 6 test images, 2×2, label = brightest quadrant mod 3
    const images = (n: number, seed: number) => Array.from({ length: n * 4 }, (_, i) => (i * 37 + seed * 11) % 256);
    const labels = (img: number[]) => Array.from({ length: img.length / 4 }, (_, b) => img.slice(b * 4, b * 4 + 4).indexOf(Math.max(...img.slice(b * 4, b * 4 + 4))) % 3);
    const tr = images(12, 1);
    const te = images(6, 2);
    fs.writeFileSync(path.join(dir, 'idx', 'tr-x'), encodeIdx([12, 2, 2], tr));
    fs.writeFileSync(path.join(dir, 'idx', 'tr-y'), encodeIdx([12], labels(tr)));
    fs.writeFileSync(path.join(dir, 'idx', 'te-x'), encodeIdx([6, 2, 2], te));
    fs.writeFileSync(path.join(dir, 'idx', 'te-y'), encodeIdx([6], labels(te)));
    const f = path.join(dir, 'run.yaml');
    fs.writeFileSync(
      f,
      `backend: cpu
data: { name: idx, dir: idx, numClasses: 3, train: { images: tr-x, labels: tr-y }, test: { images: te-x, labels: te-y } }
student: { model: mlp, options: { hidden: [4] } }
train: { epochs: 1, batchSize: 4 }
plugins: [{ use: loss/cross-entropy }]
`,
    );
    const out = path.join(tmp, 'rel');
    // the working folder (the repository root under jest) has no idx/ folder
    expect(fs.existsSync(path.resolve('idx'))).toBe(false);
    expect((await runMain(['run', f, '--out', out, '--cache-dir', path.join(tmp, 'cache'), '--quiet'])).code).toBe(0);
    const m = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
    expect(m.dataset).toMatchObject({ train: 12, test: 6 });
  });

  it('writes the whole run folder, and reuses the cached teacher on the second run', async () => {
    const f = spec('tiny.yaml', tiny);
    const out = path.join(tmp, 'run1');
    const cache = path.join(tmp, 'cache');
    expect((await runMain(['run', f, '--out', out, '--cache-dir', cache, '--quiet'])).code).toBe(0);
    expect(fs.readdirSync(out).sort()).toEqual(
      expect.arrayContaining(['history.jsonl', 'metrics.json', 'spec.resolved.yaml', 'student', 'training-curves.svg']),
    );
    const m = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
    expect(m.status).toBe('completed');
    expect(m.backend.name).toBe('cpu');
    expect(m.seed).toBe(2);
    expect(m.dataset).toMatchObject({ name: 'synthetic-2:train', source: 'synthetic', train: 64, test: 32 });
    expect(m.teachers.teacher.cached).toBe(false);
    // student trains on 2 epochs × 64 images; the frozen teacher is forwarded in epoch 1 and served
    // from the teacher-output cache in epoch 2 (evaluation is not counted)
    expect(m.ledger.roles.student.backwardImages).toBe(128);
    expect(m.ledger.roles.teacher.forwardImages).toBe(64);
    expect(m.ledger.roles.teacher.cacheHits).toBe(64);
    expect(m.ledger.roles.teacher.backwardImages).toBe(0);
    expect(m.eval.student.accuracy).toBeGreaterThanOrEqual(0);
    expect(typeof m.eval.student.ece).toBe('number');
    const history = fs.readFileSync(path.join(out, 'history.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(history.map((h) => h.epoch)).toEqual([1, 2]);
    expect(Object.keys(history[0].train).sort()).toEqual(['loss', 'loss/cross-entropy', 'loss/hinton-kd']);
    const resolved = fs.readFileSync(path.join(out, 'spec.resolved.yaml'), 'utf8');
    expect(resolved).toContain('nonFinite: stop');
    expect(fs.existsSync(path.join(out, 'student', 'model.json'))).toBe(true);
    expect(fs.readdirSync(tmp).filter((n) => n.includes('.incomplete'))).toEqual([]);

    const out2 = path.join(tmp, 'run2');
    expect((await runMain(['run', f, '--out', out2, '--cache-dir', cache, '--quiet'])).code).toBe(0);
    const m2 = JSON.parse(fs.readFileSync(path.join(out2, 'metrics.json'), 'utf8'));
    expect(m2.teachers.teacher.cached).toBe(true);
    expect(m2.eval.teacher.accuracy).toBe(m.eval.teacher.accuracy);
    // Same seed, same cached teacher: the same student.
    expect(m2.eval.student.accuracy).toBe(m.eval.student.accuracy);
  });

  it('calibrate: temperature holds out training data and reports ECE before and after scaling', async () => {
    const f = spec('cal.yaml', `${tiny}calibrate: { method: temperature, holdout: 0.25 }\n`);
    const out = path.join(tmp, 'cal');
    expect((await runMain(['run', f, '--out', out, '--cache-dir', path.join(tmp, 'c'), '--quiet'])).code).toBe(0);
    const m = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
    // 64 training images, 16 held out: the student trains on 48 per epoch for 2 epochs.
    expect(m.dataset.train).toBe(48);
    expect(m.ledger.roles.student.backwardImages).toBe(96);
    expect(m.eval.student.heldOut).toBe(16);
    expect(m.eval.student.temperature).toBeGreaterThan(0);
    // Scaling by T never changes the argmax, so accuracy is unchanged; NLL on test is reported both ways.
    expect(Number.isFinite(m.eval.student.eceScaled)).toBe(true);
    expect(Number.isFinite(m.eval.student.nllScaled)).toBe(true);
    expect(fs.existsSync(path.join(out, 'reliability-student-temperature.svg'))).toBe(true);
    expect(m.eval.teacher.temperature).toBeUndefined();
  });

  it('applies --set overrides', async () => {
    const f = spec('tiny.yaml', tiny);
    const out = path.join(tmp, 'run');
    expect((await runMain(['run', f, '--out', out, '--cache-dir', path.join(tmp, 'c'), '--quiet', '--set', 'train.epochs=1'])).code).toBe(0);
    const history = fs.readFileSync(path.join(out, 'history.jsonl'), 'utf8').trim().split('\n');
    expect(history).toHaveLength(1);
  });

  const failures: [string, string, string, string][] = [
    ['malformed YAML', 'seed: [1\n', 'KD_SPEC_PARSE', 'bad.yaml'],
    ['unknown field', tiny.replace('seed: 2', 'sed: 2'), 'KD_SPEC_INVALID', '(root)'],
    ['unknown plugin id', tiny.replace('loss/hinton-kd', 'loss/hinton-kdd'), 'KD_PLUGIN_UNKNOWN', 'plugins[1].use'],
    ['bad option', tiny.replace('temperature: 4', 'temperature: -4'), 'KD_PLUGIN_OPTIONS', 'plugins[1].with.temperature'],
    ['unknown model', tiny.replace('model: mlp, options: { hidden: [8] }', 'model: mlpp'), 'KD_MODEL_UNKNOWN', 'student.model'],
    ['missing data folder', tiny.replace(/data: .*/, 'data: { name: fashion-mnist, path: /nonexistent/fmnist }'), 'KD_DATA_MISSING', ''],
  ];
  it.each(failures)('%s: one coded error, exit 2, no run folder', async (_what, text, code, where) => {
    const f = spec('bad.yaml', text);
    const out = path.join(tmp, 'out');
    const r = await runMain(['run', f, '--out', out, '--cache-dir', path.join(tmp, 'c'), '--quiet']);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`error ${code}`);
    if (where) expect(r.err).toMatch(new RegExp(` at \\S*${where.replace(/[[\].()]/g, '\\$&')}: `));
    expect(r.err).toContain('fix: ');
    expect(fs.existsSync(out)).toBe(false);
    expect(fs.readdirSync(tmp).filter((n) => n.includes('.incomplete'))).toEqual([]);
  });

  it('unknown tap: names the layer and the layers that exist', async () => {
    const { definePlugin, PLUGIN_DEFINITION } = await import('@tfkd/kd-core');
    const { z } = await import('zod');
    const { ContainerModule } = await import('inversify');
    const pkg = path.join(tmp, 'tapper.js');
    // A third-party package loaded by `packages:` that asks for a tap.
    (global as Record<string, unknown>).__tapperModule = new ContainerModule((o) => {
      o.bind(PLUGIN_DEFINITION).toConstantValue(
        definePlugin({
          id: 'loss/tapper',
          kind: 'loss',
          describe: 'asks for a tap',
          options: z.object({ tap: z.string() }).strict(),
          requires: (opt) => ({ taps: [opt.tap] }),
          create: (_o, deps) => ({ name: deps.name, register() {} }),
        }),
      );
    });
    fs.writeFileSync(pkg, 'module.exports = { kdModule: global.__tapperModule };');
    const f = spec('tap.yaml', `${tiny}packages: [./tapper.js]\n`.replace('  - use: loss/cross-entropy', '  - use: loss/tapper\n    with: { tap: student.block7 }\n  - use: loss/cross-entropy'));
    const r = await runMain(['run', f, '--out', path.join(tmp, 'o'), '--cache-dir', path.join(tmp, 'c'), '--quiet']);
    expect(r.code).toBe(2);
    expect(r.err).toContain("error KD_TAP_UNKNOWN at plugins[0]: role 'student'");
    expect(r.err).toContain("has no layer 'block7'");
    expect(r.err).toContain('fc1');
  });

  it('corrupt IDX file: names the file', async () => {
    const dir = path.join(tmp, 'fm');
    fs.mkdirSync(dir);
    const subset = path.join(__dirname, '..', '..', 'datasets', 'data', 'fashion-mnist-subset');
    for (const n of fs.readdirSync(subset)) fs.copyFileSync(path.join(subset, n), path.join(dir, n));
    const bad = path.join(dir, 'train-images-idx3-ubyte.gz');
    fs.writeFileSync(bad, fs.readFileSync(bad).subarray(0, 5000));
    const f = spec('c.yaml', tiny.replace(/data: .*/, `data: { name: fashion-mnist, path: ${dir} }`));
    const r = await runMain(['run', f, '--out', path.join(tmp, 'o'), '--cache-dir', path.join(tmp, 'c'), '--quiet']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('error KD_DATA_CORRUPT');
    expect(r.err).toContain(bad);
  });
});

describe('kd list', () => {
  it('lists plugins with their defaults, models and datasets', async () => {
    const r = await runMain(['list']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/loss\/hinton-kd {2}\(loss\)/);
    expect(r.out).toMatch(/temperature: number = 4/);
    expect(r.out).toContain('mlp-teacher');
    expect(r.out).toContain('fashion-mnist');
    expect((await runMain(['list', '--json'])).code).toBe(0);
  });
});
