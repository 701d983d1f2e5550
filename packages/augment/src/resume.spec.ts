import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { prepareRun, Registry, type TrainingState } from '@tfkd/engine';
import { readCheckpoint, writeCheckpoint } from '@tfkd/engine/node';
import { RunSpec } from '@tfkd/kd-core';
import { logitLossesModule } from '@tfkd/losses-logit';
import { testModule } from '@tfkd/kd-core/testing';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { augmentModule } from './module';

// Every augmentation draws only from its plugin's generator, which checkpoints save and restore:
// a run stopped mid-epoch and resumed from its checkpoint on disk must train the same student,
// bit for bit, as one uninterrupted run.

const spec = (augs: Record<string, unknown>[]) =>
  RunSpec.parse({
    seed: 9,
    backend: 'cpu',
    data: { name: 'blobs', train: 40, test: 12 },
    teacher: { model: 'test-dense', seed: 11, train: { epochs: 1 } },
    student: { model: 'test-dense' },
    // 40 samples, batch 8: 5 steps per epoch.
    train: { epochs: 3, batchSize: 8, optimizer: { name: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 0 } },
    plugins: [...augs, { use: 'loss/hinton-kd', with: { temperature: 4 } }, { use: 'loss/cross-entropy', weight: 0.5 }],
  });

async function run(s: RunSpec, opts: { stopAfter?: number; resume?: TrainingState } = {}) {
  const checkpoints: TrainingState[] = [];
  let steps = 0;
  const engine = await prepareRun(s, {
    registry: new Registry([testModule(), augmentModule, logitLossesModule]),
    cacheDir: null,
    resume: opts.resume,
    onCheckpoint: (c) => void checkpoints.push(c),
    shouldStop: opts.stopAfter === undefined ? undefined : () => steps >= (opts.stopAfter as number),
  });
  engine.bus.events$.subscribe((e) => void (e.hook === 'batchEnd' && steps++));
  try {
    const result = await engine.run();
    const weights = (result.models.get('student') as { getWeights(): tf.Tensor[] }).getWeights().map((w) => Array.from(w.dataSync()));
    return { result, weights, checkpoints };
  } finally {
    engine.dispose();
  }
}

let tmp: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-augment-resume-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe.each([
  ['random-crop', [{ use: 'augment/random-crop', with: { padding: 1, mode: 'reflect' } }]],
  ['flip', [{ use: 'augment/flip' }]],
  ['random-erasing', [{ use: 'augment/random-erasing' }]],
  ['mixup', [{ use: 'augment/mixup' }]],
  ['cutmix', [{ use: 'augment/cutmix' }]],
  ['randaugment', [{ use: 'augment/randaugment' }]],
  ['crop + flip + randaugment + cutmix', [{ use: 'augment/random-crop', with: { padding: 1 } }, { use: 'augment/flip' }, { use: 'augment/randaugment' }, { use: 'augment/cutmix' }]],
])('%s: stop mid-epoch, resume from the checkpoint on disk', (name, augs) => {
  it('trains the same student, bit for bit, with the same losses as one run', async () => {
    const s = spec(augs);
    const whole = await run(s);
    // 7 steps: epoch 1 (5) and 2 of epoch 2.
    const first = await run(s, { stopAfter: 7 });
    expect(first.result.stoppedAt).toEqual({ epoch: 2, batchIndex: 2, step: 7 });
    const dir = path.join(tmp, name.replace(/\W/g, '_'));
    writeCheckpoint(dir, first.checkpoints[first.checkpoints.length - 1]);
    const rest = await run(s, { resume: readCheckpoint(dir) });
    expect(rest.result.history.map((h) => h.train)).toEqual(whole.result.history.map((h) => h.train));
    expect(rest.result.eval).toEqual(whole.result.eval);
    expect(rest.weights).toEqual(whole.weights);
    // and the interruption mattered: a run that restarted the generators would differ
    expect(first.weights).not.toEqual(whole.weights);
  });
});
