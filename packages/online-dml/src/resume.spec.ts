import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { prepareRun, Registry, type TrainingState } from '@tfkd/engine';
import { readCheckpoint, writeCheckpoint } from '@tfkd/engine/node';
import { RunSpec } from '@tfkd/kd-core';
import { testModule } from '@tfkd/kd-core/testing';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { onlineDmlModule } from './module';

// Several students, each with its own Adam state: a DML run stopped mid-epoch and resumed from its
// checkpoint (through the disk) trains the same cohort as one run.

const spec = RunSpec.parse({
  seed: 3,
  backend: 'cpu',
  data: { name: 'blobs', train: 40, test: 12 },
  students: [{ model: 'test-dense' }, { model: 'test-dense', options: { hidden: 12 } }, { model: 'test-dense', train: { optimizer: { name: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 0 } } }],
  // 40 samples, batch 8: 5 steps per epoch.
  train: { epochs: 3, batchSize: 8, optimizer: { name: 'adam', lr: 0.02, weightDecay: 0 } },
  plugins: [{ use: 'online/dml-ensemble' }],
  eval: ['accuracy', 'peer-ensemble'],
});

async function run(opts: { stopAfter?: number; resume?: TrainingState } = {}) {
  const checkpoints: TrainingState[] = [];
  let steps = 0;
  const engine = await prepareRun(spec, {
    registry: new Registry([testModule(), onlineDmlModule]),
    cacheDir: null,
    resume: opts.resume,
    onCheckpoint: (c) => void checkpoints.push(c),
    shouldStop: opts.stopAfter === undefined ? undefined : () => steps >= (opts.stopAfter as number),
  });
  engine.bus.events$.subscribe((e) => void (e.hook === 'batchEnd' && steps++));
  try {
    const result = await engine.run();
    const weights = [0, 1, 2].map((i) => (result.models.get(`student.${i}`) as { getWeights(): tf.Tensor[] }).getWeights().map((w) => Array.from(w.dataSync())));
    return { result, weights, checkpoints };
  } finally {
    engine.dispose();
  }
}

let tmp: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-dml-resume-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

it('online/dml-ensemble over 3 students (2 × Adam, 1 × SGD momentum): stopped at step 8 and resumed = one run', async () => {
  const whole = await run();
  const first = await run({ stopAfter: 8 });
  expect(first.result.stoppedAt).toEqual({ epoch: 2, batchIndex: 3, step: 8 });
  const stop = first.checkpoints[first.checkpoints.length - 1];
  expect(stop.roles.map((r) => [r.name, r.optimizer?.kind, r.optimizer?.iterations])).toEqual([
    ['student.0', 'Adam', 8],
    ['student.1', 'Adam', 8],
    ['student.2', 'Momentum', 8],
  ]);
  writeCheckpoint(path.join(tmp, 'checkpoint'), stop);
  const rest = await run({ resume: readCheckpoint(path.join(tmp, 'checkpoint')) });
  expect(rest.result.history.map((h) => [h.train, h.eval])).toEqual(whole.result.history.map((h) => [h.train, h.eval]));
  expect(rest.result.eval).toEqual(whole.result.eval);
  expect(rest.weights).toEqual(whole.weights);
  expect(whole.result.eval.ensemble.accuracy).toBeGreaterThan(0.5);
});
