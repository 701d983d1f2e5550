import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { isKdError, parseSpec } from '@tfkd/kd-core';
import { executePlan, planRun, type TrainingState } from '@tfkd/engine';
import { runMain } from './__fixtures__/run-main';
import { defaultRegistry } from './modules';

// kd run with @tfkd/self-distill: born-again generations through the CLI's call site, and a
// multi-exit BYOT student written, calibrated and evaluated as a run folder.
jest.setTimeout(120_000);

let tmp: string;

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-self-'));
});
afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

const bornAgain = (generations: number) => `
seed: 3
backend: cpu
data: { name: synthetic, train: 64, test: 32, numClasses: 4, shape: [6, 6, 1] }
student: { model: mlp, options: { hidden: [8] } }
train: { epochs: 2, batchSize: 16, optimizer: { name: adam, lr: 0.01, weightDecay: 0 } }
plugins:
  - use: self/born-again
    with: { generations: ${generations}, temperature: 4 }
eval: [accuracy, ece]
`;

const metricsOf = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'metrics.json'), 'utf8'));

describe('kd run: self/born-again', () => {
  it('writes gen.1, gen.2 and the ensemble, a student folder per generation; more generations later reuse the cached ones', async () => {
    const f = path.join(tmp, 'ban.yaml');
    fs.writeFileSync(f, bornAgain(2));
    const cache = path.join(tmp, 'cache');
    const out = path.join(tmp, 'run');
    expect((await runMain(['run', f, '--out', out, '--cache-dir', cache, '--quiet'])).code).toBe(0);
    const m = metricsOf(out);
    expect(Object.keys(m.eval).sort()).toEqual(['ensemble', 'gen.1', 'gen.2']);
    expect(m.eval['gen.2']).toEqual(expect.objectContaining({ accuracy: expect.any(Number), ece: expect.any(Number), brier: expect.any(Number) }));
    expect(fs.readdirSync(path.join(out, 'students')).sort()).toEqual(['gen.1', 'gen.2']);
    expect(fs.existsSync(path.join(out, 'reliability-gen.2.svg'))).toBe(true);
    expect(Object.values(m.teachers).map((t) => (t as { cached: boolean }).cached)).toEqual([false, false]);
    const phases = fs.readFileSync(path.join(out, 'history.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).phase);
    expect(phases).toEqual(['gen.1', 'gen.1', 'gen.2', 'gen.2']);

    fs.writeFileSync(f, bornAgain(3));
    const out2 = path.join(tmp, 'run2');
    expect((await runMain(['run', f, '--out', out2, '--cache-dir', cache, '--quiet'])).code).toBe(0);
    const m2 = metricsOf(out2);
    expect(Object.values(m2.teachers).map((t) => (t as { cached: boolean }).cached)).toEqual([true, true, false]);
    expect(m2.eval['gen.1'].accuracy).toBe(m.eval['gen.1'].accuracy);
    expect(m2.eval['gen.2'].accuracy).toBe(m.eval['gen.2'].accuracy);
  });

  it('--resume is refused with KD_SPEC_INVALID at the plugin (finished generations are cached instead)', async () => {
    const registry = defaultRegistry();
    const plan = await planRun(parseSpec(bornAgain(2)), { registry, cacheDir: null });
    expect(plan.generations).toEqual({ count: 2, index: 0, id: 'self/born-again' });
    expect(plan.runs.map((r) => [r.name, r.needs])).toEqual([['gen.1', []], ['gen.2', ['gen.1']]]);
    const e = await executePlan(plan, { registry, resume: {} as TrainingState }).then(
      () => null,
      (x: unknown) => x,
    );
    expect(isKdError(e) ? [e.code, e.path] : e).toEqual(['KD_SPEC_INVALID', 'plugins[0]']);
  });

  it('a born-again spec with its own teacher fails at `teacher` before any teacher is trained', async () => {
    const f = path.join(tmp, 'ban-teacher.yaml');
    fs.writeFileSync(f, `${bornAgain(2)}teacher: { model: mlp, options: { hidden: [8] }, train: { epochs: 1 } }\n`);
    const cache = path.join(tmp, 'cache');
    const { code, err } = await runMain(['run', f, '--out', path.join(tmp, 'run'), '--cache-dir', cache, '--quiet']);
    expect(code).toBe(2);
    expect(err).toMatch(/^error KD_SPEC_INVALID at teacher: 'self\/born-again' trains its own teachers/);
    expect(fs.existsSync(path.join(cache, 'teachers'))).toBe(false);
    expect(fs.existsSync(path.join(tmp, 'run'))).toBe(false);
  });
});

describe('kd run: self/byot on byot-resnet', () => {
  it('reports every exit with its FLOPs; the student folder keeps the three outputs; calibration reads the logits', async () => {
    const f = path.join(tmp, 'byot.yaml');
    fs.writeFileSync(
      f,
      `
seed: 1
backend: cpu
data: { name: synthetic, train: 48, test: 24, numClasses: 3, shape: [8, 8, 1] }
student: { model: byot-resnet, options: { widths: [4, 6, 8] } }
train: { epochs: 1, batchSize: 16, optimizer: { name: adam, lr: 0.01, weightDecay: 0 } }
plugins:
  - use: self/byot
eval: [accuracy, ece]
`,
    );
    const out = path.join(tmp, 'run');
    expect((await runMain(['run', f, '--out', out, '--cache-dir', path.join(tmp, 'cache'), '--quiet'])).code).toBe(0);
    const m = metricsOf(out);
    for (const e of ['student:head1', 'student:head2', 'student:deep', 'student:ensemble']) {
      expect(m.eval[e]).toEqual(expect.objectContaining({ accuracy: expect.any(Number), ece: expect.any(Number), flopsPerImage: expect.any(Number) }));
    }
    expect(m.eval['student:deep'].accuracy).toBe(m.eval.student.accuracy);
    expect(m.eval['student:head1'].flopsPerImage).toBeLessThan(m.eval['student:deep'].flopsPerImage);
    const saved = JSON.parse(fs.readFileSync(path.join(out, 'student', 'model.json'), 'utf8'));
    expect(saved.modelTopology.config.output_layers.map((o: unknown[]) => o[0])).toEqual(['logits', 'head1', 'head2']);
    // the run-folder calibration (calibration.ts) ran on the first output (a multi-output predict is an array)
    expect(m.eval.student.mce).toEqual(expect.any(Number));
    expect(fs.existsSync(path.join(out, 'reliability-student.svg'))).toBe(true);
  });
});
