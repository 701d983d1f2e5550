import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parse, stringify } from 'yaml';
import { isKdError, type KdError } from '@tfkd/kd-core';
import { evalCommand, type EvalOptions } from './eval';
import { runMain } from './__fixtures__/run-main';
import { runCommand } from './run';

// `kd eval` of a saved detector / segmenter: a tiny detection run and a small segmentation run are
// trained into run folders, and `kd eval RUN/student` gives the mAP / mIoU their metrics.json
// reports — equal, on the same backend (wasm): the same data (the run's `data:` block), the same
// metric plugins with the run's options (the detection run sets metric/map's scoreThreshold), the
// engine's evaluation. Then `--spec` and `--task` for a model folder outside its run, and every
// refusal with its code and path.
jest.setTimeout(600_000);

const DENSE = path.resolve(__dirname, '..', '..', '..', 'examples', 'dense');
const short = ['train.epochs=1', 'train.maxBatches=2', 'backend=wasm'];

type Run = { dir: string; student: string; spec: string; eval: Record<string, number> };
let tmp: string;
let det: Run;
let seg: Run;

async function train(name: string, spec: string, set: string[]): Promise<Run> {
  const dir = path.join(tmp, name);
  const outcome = await runCommand(path.join(DENSE, spec), { out: dir, set: [...short, ...set], cacheDir: path.join(tmp, 'cache'), quiet: true, signals: false });
  expect(outcome.status).toBe('completed');
  const metrics = JSON.parse(fs.readFileSync(path.join(dir, 'metrics.json'), 'utf8')) as { eval: { student: Record<string, number> }; backend: { name: string } };
  expect(metrics.backend.name).toBe('wasm');
  return { dir, student: path.join(dir, 'student'), spec: path.join(dir, 'spec.resolved.yaml'), eval: metrics.eval.student };
}

/** `kd eval ARGS…` in this process: exit code, stdout, stderr. */
async function kdEval(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return runMain(['eval', ...args, '--backend', 'wasm']);
}

/** The KdError `kd eval` refuses with, as [code, path]. */
async function refusal(dirs: string[], o: Partial<EvalOptions> = {}): Promise<unknown> {
  const e = await evalCommand(dirs, { backend: 'wasm', ...o }).then(
    () => null,
    (x: unknown) => x,
  );
  return isKdError(e) ? [(e as KdError).code, (e as KdError).path] : e;
}

/** A copy of a run's student in a folder of its own (no spec.resolved.yaml beside it). */
function lone(run: Run, name: string): string {
  const dir = path.join(tmp, 'models', name);
  fs.cpSync(run.student, dir, { recursive: true });
  return dir;
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-eval-dense-'));
  // detection: 64 / 32 scenes; metric/map named in plugins: with a lower score threshold than its default 0.05
  det = await train('det', 'det-student.yaml', ['data.subset=true', 'data.train=64', 'data.test=32', 'plugins[1]={use: metric/map, with: {scoreThreshold: 0.005}}', 'eval=[]']);
  // segmentation on fashion-scenes at its defaults (1000 test scenes), which `--data fashion-scenes` also gives
  seg = await train('seg', 'seg-student.yaml', ['data={name: fashion-scenes, subset: true}']);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('kd eval RUN/student: the numbers of the run', () => {
  it('a detector: map, map50, map75, mar equal to metrics.json (the run folder spec: its data, metric/map options)', async () => {
    expect(Object.keys(det.eval)).toEqual(['map', 'map50', 'map75', 'mar']);
    expect(det.eval.map).toBeGreaterThan(0);
    const out = path.join(tmp, 'det-eval');
    const r = await kdEval([det.student, '--out', out]);
    expect([r.code, r.err]).toEqual([0, '']);
    expect(r.out.split('\n').slice(0, 3)).toEqual([`${det.student} on fashion-scenes:test (subset, 32 images), backend wasm, task detection (${det.spec})`, '| metric | value |', '|---|---|']);
    for (const [m, v] of Object.entries(det.eval)) expect(r.out).toContain(`| ${m} | ${v.toFixed(4)} |`);
    const j = JSON.parse(fs.readFileSync(path.join(out, 'eval.json'), 'utf8'));
    expect(j.metrics).toEqual(det.eval);
    expect([j.task, path.resolve(out, j.spec), path.resolve(out, j.model), j.backend, j.dataset]).toEqual(['detection', det.spec, det.student, 'wasm', { name: 'fashion-scenes:test', source: 'subset', n: 32 }]);
    // no reliability diagram, no calibration bins: those are of class probabilities
    expect(fs.readdirSync(out)).toEqual(['eval.json']);
    expect(j.bins).toBeUndefined();
  });

  it('a segmenter: miou and pixelAccuracy equal to metrics.json', async () => {
    expect(Object.keys(seg.eval)).toEqual(['miou', 'pixelAccuracy']);
    expect(seg.eval.miou).toBeGreaterThan(0);
    const out = path.join(tmp, 'seg-eval');
    const r = await kdEval([seg.student, '--out', out]);
    expect([r.code, r.err]).toEqual([0, '']);
    expect(r.out).toContain(`| miou | ${seg.eval.miou.toFixed(4)} |`);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'eval.json'), 'utf8')).metrics).toEqual(seg.eval);
  });
});

describe('a model folder outside its run', () => {
  it('--spec RUN/spec.resolved.yaml: the run numbers; a spec with metric/map at its defaults: other numbers', async () => {
    const model = lone(det, 'det-spec');
    const withSpec = await kdEval([model, '--spec', det.spec, '--out', path.join(tmp, 'det-spec-eval')]);
    expect(withSpec.code).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(tmp, 'det-spec-eval', 'eval.json'), 'utf8')).metrics).toEqual(det.eval);
    // the same record without the metric/map entry: the task adds metric/map with scoreThreshold 0.05
    const spec = parse(fs.readFileSync(det.spec, 'utf8')) as { plugins: { use: string }[] };
    spec.plugins = spec.plugins.filter((p) => p.use !== 'metric/map');
    fs.writeFileSync(path.join(tmp, 'default-map.yaml'), stringify(spec));
    const defaults = await kdEval([model, '--spec', path.join(tmp, 'default-map.yaml'), '--out', path.join(tmp, 'det-default-eval')]);
    expect(defaults.code).toBe(0);
    const other = JSON.parse(fs.readFileSync(path.join(tmp, 'det-default-eval', 'eval.json'), 'utf8')).metrics as Record<string, number>;
    expect(Object.keys(other)).toEqual(['map', 'map50', 'map75', 'mar']);
    // fewer candidates pass 0.05 than 0.005: recall cannot rise
    expect(other.mar).toBeLessThan(det.eval.mar);
  });

  it('--task segmentation --data fashion-scenes: the dataset and metric at their defaults, as that run had them', async () => {
    const model = lone(seg, 'seg-task');
    const r = await kdEval([model, '--task', 'segmentation', '--data', 'fashion-scenes', '--subset', '--out', path.join(tmp, 'seg-task-eval')]);
    expect([r.code, r.err]).toEqual([0, '']);
    expect(r.out.split('\n')[0]).toBe(`${model} on fashion-scenes:test (subset, 1000 images), backend wasm, task segmentation (--task)`);
    expect(JSON.parse(fs.readFileSync(path.join(tmp, 'seg-task-eval', 'eval.json'), 'utf8')).metrics).toEqual(seg.eval);
  });
});

describe('refusals', () => {
  it('a dense model with no spec beside it, no --spec, no --task: KD_TASK_MISMATCH at the model (at --data for a dense dataset), exit 2', async () => {
    const model = lone(det, 'det-alone');
    const r = await kdEval([model]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`error KD_TASK_MISMATCH at ${model}: its outputs (cls_p3 [16,16,10], box_p3 [16,16,36], cls_p4 [8,8,10], box_p4 [8,8,36]) are a detection model's`);
    expect(r.err).toContain('--task detection');
    // a dataset made for the dense tasks says so before any data is loaded
    expect(await refusal([model], { data: 'fashion-scenes' })).toEqual(['KD_TASK_MISMATCH', '--data']);
  });

  it("heads that are not the task's, or a model for other data: KD_SHAPE_MISMATCH at the model", async () => {
    expect(await refusal([seg.student], { spec: det.spec })).toEqual(['KD_SHAPE_MISMATCH', seg.student]);
    expect(await refusal([lone(det, 'det-as-seg')], { task: 'segmentation', data: 'fashion-scenes' })).toEqual(['KD_SHAPE_MISMATCH', path.join(tmp, 'models', 'det-as-seg')]);
    // a detector of 64x64 scenes on 32x32 ones
    const spec = parse(fs.readFileSync(det.spec, 'utf8')) as { data: Record<string, unknown> };
    spec.data.size = 32;
    fs.writeFileSync(path.join(tmp, 'size-32.yaml'), stringify(spec));
    expect(await refusal([det.student], { spec: path.join(tmp, 'size-32.yaml') })).toEqual(['KD_SHAPE_MISMATCH', det.student]);
  });

  it('a dataset without boxes or masks: KD_TASK_MISMATCH at --data', async () => {
    expect(await refusal([det.student], { data: 'fashion-mnist' })).toEqual(['KD_TASK_MISMATCH', '--data']);
    expect(await refusal([lone(seg, 'seg-default-data')], { task: 'segmentation' })).toEqual(['KD_TASK_MISMATCH', '--data']);
  });

  it('several dense models: no ensemble, KD_TASK_MISMATCH at the second', async () => {
    expect(await refusal([det.student, seg.student])).toEqual(['KD_TASK_MISMATCH', seg.student]);
  });

  it('--task against the run spec: KD_TASK_MISMATCH at --task', async () => {
    expect(await refusal([det.student], { task: 'segmentation' })).toEqual(['KD_TASK_MISMATCH', '--task']);
    expect(await refusal([det.student], { task: 'classification' })).toEqual(['KD_TASK_MISMATCH', '--task']);
  });
});
