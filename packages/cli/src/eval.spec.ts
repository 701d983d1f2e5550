import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadFashionMnist } from '@tfkd/datasets';
import { MODEL_ZOO, saveModel } from '@tfkd/models';
import { main } from './main';
import { tidyValue } from '@tfkd/kd-core/testing';

jest.setTimeout(120_000);

describe('kd eval', () => {
  let tmp: string;
  let out = '';
  let err = '';
  const write = { out: process.stdout.write.bind(process.stdout), err: process.stderr.write.bind(process.stderr) };
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-eval-'));
    out = '';
    err = '';
    process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
    process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  });
  afterEach(() => {
    process.stdout.write = write.out;
    process.stderr.write = write.err;
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
    expect(await main(['eval', dir, '--data', 'fashion-mnist', '--subset', '--backend', 'cpu', '--out', o])).toBe(0);
    expect(out).toContain('| metric | value |');
    expect(out).toContain(`| accuracy | ${accuracy.toFixed(4)} |`);
    const j = JSON.parse(fs.readFileSync(path.join(o, 'eval.json'), 'utf8'));
    expect(j.metrics.accuracy).toBe(accuracy);
    expect(j.dataset).toEqual({ name: 'fashion-mnist-subset:test', source: 'subset', n: 2000 });
    expect(j.bins).toHaveLength(15);
    expect(j.bins.reduce((s: number, b: { count: number }) => s + b.count, 0)).toBe(2000);
    expect(fs.readFileSync(path.join(o, 'reliability.svg'), 'utf8')).toMatch(/^<svg/);
  });

  it('a model folder that does not exist: KD_MODEL_LOAD, exit 2', async () => {
    expect(await main(['eval', path.join(tmp, 'nope'), '--subset', '--backend', 'cpu'])).toBe(2);
    expect(err).toContain('error KD_MODEL_LOAD');
  });
});
