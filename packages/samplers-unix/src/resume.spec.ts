import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { prepareRun, Registry, type TrainingState } from '@tfkd/engine';
import { readCheckpoint, writeCheckpoint } from '@tfkd/engine/node';
import { RunSpec, type PluginDefinition } from '@tfkd/kd-core';
import { testModule } from '@tfkd/kd-core/testing';
import { logitLossesModule } from '@tfkd/losses-logit';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { randomSampler } from './random';
import { unixSampler, type SamplerPlugin } from './unix';

// UNIX and the random baseline draw λ and partner permutations from their generator on every step:
// a run stopped mid-epoch and resumed from its checkpoint must draw the same numbers as one run.

function capturing(def: PluginDefinition, sink: SamplerPlugin[]): PluginDefinition {
  return { ...def, create: (o, d) => sink[sink.push(def.create(o, d) as SamplerPlugin) - 1] };
}

const spec = (sampler: Record<string, unknown>) =>
  RunSpec.parse({
    seed: 9,
    backend: 'cpu',
    data: { name: 'blobs', train: 40, test: 12 },
    teacher: { model: 'test-dense', seed: 11, train: { epochs: 1 } },
    student: { model: 'test-dense' },
    // 40 samples, batch 8: 5 steps per epoch.
    train: { epochs: 3, batchSize: 8, optimizer: { name: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 0 } },
    plugins: [sampler, { use: 'loss/hinton-kd', with: { temperature: 4 } }, { use: 'loss/cross-entropy', weight: 0.5 }],
  });

async function run(s: RunSpec, opts: { stopAfter?: number; resume?: TrainingState } = {}) {
  const samplers: SamplerPlugin[] = [];
  const checkpoints: TrainingState[] = [];
  let steps = 0;
  const engine = await prepareRun(s, {
    registry: new Registry([testModule(capturing(unixSampler, samplers), capturing(randomSampler, samplers)), logitLossesModule]),
    cacheDir: null,
    resume: opts.resume,
    onCheckpoint: (c) => void checkpoints.push(c),
    // Distillation steps only (the teacher's training, in an engine of its own, asks too).
    shouldStop: opts.stopAfter === undefined ? undefined : () => steps >= (opts.stopAfter as number),
  });
  engine.bus.events$.subscribe((e) => void (e.hook === 'batchEnd' && steps++));
  try {
    const result = await engine.run();
    const weights = (result.models.get('student') as { getWeights(): tf.Tensor[] }).getWeights().map((w) => Array.from(w.dataSync()));
    const sel = samplers[samplers.length - 1].lastSelection();
    return { result, weights, checkpoints, last: sel && { lambda: sel.lambda, kept: Array.from(sel.kept), partners: Array.from(sel.partners) } };
  } finally {
    engine.dispose();
  }
}

let tmp: string;
beforeAll(async () => {
  await tf.setBackend('cpu');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-unix-resume-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe.each([
  ['sampler/unix', { use: 'sampler/unix', with: { keep: 6 } }],
  ['sampler/random (mixup)', { use: 'sampler/random', with: { keep: 5 } }],
])('%s: stop mid-epoch, resume', (name, sampler) => {
  it('draws the same λ and partners and trains the same student as one run', async () => {
    const s = spec(sampler);
    const whole = await run(s);
    // 7 steps: epoch 1 (5) and 2 of epoch 2.
    const first = await run(s, { stopAfter: 7 });
    expect(first.result.stoppedAt).toEqual({ epoch: 2, batchIndex: 2, step: 7 });
    const dir = path.join(tmp, name.replace(/\W/g, '_'));
    writeCheckpoint(dir, first.checkpoints[first.checkpoints.length - 1]);
    const saved = readCheckpoint(dir);
    // The sampler's own state: its last selection, as JSON.
    expect(saved.plugins[0].state).toMatchObject({ last: { n: 8, lambda: first.last?.lambda, kept: first.last?.kept } });
    const rest = await run(s, { resume: saved });
    expect(rest.result.history.map((h) => h.train)).toEqual(whole.result.history.map((h) => h.train));
    expect(rest.result.eval).toEqual(whole.result.eval);
    expect(rest.weights).toEqual(whole.weights);
    expect(rest.last).toEqual(whole.last);
    expect(whole.last?.lambda).toBeGreaterThan(0);
  });
});
