import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadFashionMnist } from '@tfkd/datasets';
import { MODEL_ZOO, saveModel } from '@tfkd/models';
import { computeCalibration } from '@tfkd/metrics-ece';
import { runMain } from './__fixtures__/run-main';
import { tidyValue } from '@tfkd/kd-core/testing';

jest.setTimeout(120_000);

describe('kd eval', () => {
  let tmp: string;
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-eval-'));
  });
  afterEach(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('prints and writes accuracy and calibration of a saved model, equal to a direct computation', async () => {
    await tf.setBackend('cpu');
    const model = MODEL_ZOO.find((d) => d.id === 'mlp-student')!.build({ inputShape: [28, 28, 1], numClasses: 10, seed: 4 });
    const dir = path.join(tmp, 'model');
    await saveModel(model, dir);
    const { test } = loadFashionMnist({ subset: true });
    // Accuracy by hand: argmax of the model's logits against the labels.
    const predicted = tidyValue(() => Array.from(tf.argMax(model.predict(tf.tensor4d(test.images, [test.labels.length, 28, 28, 1])) as tf.Tensor, 1).dataSync()));
    const accuracy = predicted.reduce((s, p, i) => s + (p === test.labels[i] ? 1 : 0), 0) / test.labels.length;
    model.dispose();

    const o = path.join(tmp, 'eval');
    const { code, out } = await runMain(['eval', dir, '--data', 'fashion-mnist', '--subset', '--backend', 'cpu', '--out', o]);
    expect(code).toBe(0);
    expect(out).toContain('| metric | value |');
    expect(out).toContain(`| accuracy | ${accuracy.toFixed(4)} |`);
    const j = JSON.parse(fs.readFileSync(path.join(o, 'eval.json'), 'utf8'));
    expect(j.metrics.accuracy).toBe(accuracy);
    expect(j.model).toBe(path.join('..', 'model')); // relative to eval.json's folder
    expect(j.dataset).toEqual({ name: 'fashion-mnist-subset:test', source: 'subset', n: 2000 });
    expect(j.bins).toHaveLength(15);
    expect(j.bins.reduce((s: number, b: { count: number }) => s + b.count, 0)).toBe(2000);
    expect(fs.readFileSync(path.join(o, 'reliability.svg'), 'utf8')).toMatch(/^<svg/);
  });

  it('a run folder stands for its student/: the same table as the model folder itself', async () => {
    await tf.setBackend('cpu');
    const model = MODEL_ZOO.find((d) => d.id === 'mlp-student')!.build({ inputShape: [28, 28, 1], numClasses: 10, seed: 4 });
    const run = path.join(tmp, 'run');
    await saveModel(model, path.join(run, 'student'));
    model.dispose();
    const direct = await runMain(['eval', path.join(run, 'student'), '--data', 'fashion-mnist', '--subset', '--backend', 'cpu']);
    expect(direct.code).toBe(0);
    const { code, out } = await runMain(['eval', run, '--data', 'fashion-mnist', '--subset', '--backend', 'cpu']);
    expect(code).toBe(0);
    expect(out).toBe(direct.out);
    expect(out).toContain(`${path.join(run, 'student')} on fashion-mnist-subset:test`);
  });

  it('several models: each one and their ensemble (mean logits), equal to a direct computation', async () => {
    await tf.setBackend('cpu');
    const { test } = loadFashionMnist({ subset: true });
    const x = () => tf.tensor4d(test.images, [test.labels.length, 28, 28, 1]);
    const dirs: string[] = [];
    const logits: Float32Array[] = [];
    for (const seed of [4, 5]) {
      const model = MODEL_ZOO.find((d) => d.id === 'mlp-student')!.build({ inputShape: [28, 28, 1], numClasses: 10, seed });
      const dir = path.join(tmp, `m${seed}`);
      await saveModel(model, dir);
      logits.push(tidyValue(() => (model.predict(x()) as tf.Tensor).dataSync() as Float32Array));
      model.dispose();
      dirs.push(dir);
    }
    const mean = logits[0].map((v, i) => (v + logits[1][i]) / 2);
    const direct = computeCalibration(Array.from(mean), test.labels, { input: 'logits', numClasses: 10 });
    const o = path.join(tmp, 'ens');
    const { code, out } = await runMain(['eval', ...dirs, '--subset', '--backend', 'cpu', '--out', o]);
    expect(code).toBe(0);
    expect(out).toContain('| metric | m4 | m5 | ensemble |');
    const j = JSON.parse(fs.readFileSync(path.join(o, 'eval.json'), 'utf8'));
    expect(Object.keys(j.metrics)).toEqual(['m4', 'm5', 'ensemble']);
    expect(j.models).toEqual([path.join('..', 'm4'), path.join('..', 'm5')]);
    expect(j.metrics.ensemble.accuracy).toBe(direct.accuracy);
    expect(j.metrics.ensemble.ece).toBeCloseTo(direct.ece, 6);
    expect(j.metrics.ensemble.nll).toBeCloseTo(direct.nll, 6);
    // the ensemble of two different models is not either one
    expect(j.metrics.ensemble.nll).not.toBeCloseTo(j.metrics.m4.nll, 3);
    expect(fs.readdirSync(o).sort()).toEqual(['eval.json', 'reliability-ensemble.svg', 'reliability-m4.svg', 'reliability-m5.svg']);
  });

  it('a model folder that does not exist: KD_MODEL_LOAD, exit 2', async () => {
    const { code, err } = await runMain(['eval', path.join(tmp, 'nope'), '--subset', '--backend', 'cpu']);
    expect(code).toBe(2);
    expect(err).toContain('error KD_MODEL_LOAD');
  });
});
