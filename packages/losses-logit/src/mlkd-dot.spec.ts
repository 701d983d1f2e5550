import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { Registry } from '@tfkd/engine';
import { RunSpec, type LossObjective } from '@tfkd/kd-core';
import { testModule } from '@tfkd/kd-core/testing';
import { any, dotProbe, expectGrads, firstDotStep } from '@tfkd/engine/testing';
import { VIEW_WRITERS, viewWritersModule } from './__fixtures__/views';
import { mlkdLoss } from './mlkd';
import { logitLossesModule } from './module';

// Under DOT, MLKD's CE with the labels (both views) is the task loss and its kd, cc and bc terms are
// distillation: one step of a real run, the task gradient equal to the gradient of the CE term alone.

beforeAll(async () => {
  await tf.setBackend('cpu');
});

async function step(keep: (term: string) => boolean, labels: Record<string, LossObjective | undefined> = {}) {
  const probe = dotProbe(mlkdLoss, keep, labels);
  const spec = RunSpec.parse({
    seed: 5,
    backend: 'cpu',
    data: { name: 'blobs', train: 8, test: 4 },
    // trained from the labels with loss/cross-entropy (logitLossesModule)
    teacher: { model: 'test-dense', seed: 11, train: { epochs: 1, optimizer: { name: 'sgd', lr: 0.1 } } },
    student: { model: 'test-dense' },
    train: { epochs: 1, batchSize: 8, maxBatches: 1, optimizer: { name: 'dot', lr: 0.1, momentum: 0.9, weightDecay: 5e-4 } },
    plugins: [...VIEW_WRITERS, { use: probe.id }],
  });
  return firstDotStep(spec, new Registry([testModule(probe), viewWritersModule, logitLossesModule]));
}

describe('loss/mlkd under DOT', () => {
  it('is mixed: ce is task, kd, cc and bc distillation; the task gradient is that of ce alone, the distillation one that of the other three', async () => {
    expect(mlkdLoss.objective).toBe('mixed');
    const labels: Record<string, LossObjective | undefined> = {};
    const whole = await step(() => true, labels);
    expect(labels).toEqual({ ce: 'task', kd: 'distill', cc: 'distill', bc: 'distill' });
    const ce = await step((t) => t === 'ce');
    const rest = await step((t) => t !== 'ce');
    expect(any(ce.distill) || any(rest.task)).toBe(false);
    expect(whole.task.flat().every((g) => g !== null) && whole.distill.flat().every((g) => g !== null)).toBe(true);
    expectGrads(whole.task, ce.task);
    expectGrads(whole.distill, rest.distill);
  });
});
