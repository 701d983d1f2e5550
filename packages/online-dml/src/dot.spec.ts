import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { Registry } from '@tfkd/engine';
import { RunSpec, type LossObjective, type PluginDefinition, type RunSpecInput } from '@tfkd/kd-core';
import { testModule } from '@tfkd/kd-core/testing';
import { any, dotProbe, expectGrads, firstDotStep } from '@tfkd/engine/testing';
import { dmlEnsembleLossDefinition, dmlLossDefinition } from './dml';
import { onlineDmlModule } from './module';
import { oneLossDefinition } from './one';

// Under DOT each CE with the labels is the task loss and what the peers (the ensemble) teach is
// distillation: one step of a real run, the task gradient equal to the gradient of the CE terms alone.

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const base: RunSpecInput = {
  seed: 3,
  backend: 'cpu',
  data: { name: 'blobs', train: 8, test: 4 },
  train: { epochs: 1, batchSize: 8, maxBatches: 1, optimizer: { name: 'dot', lr: 0.1, momentum: 0.9, weightDecay: 5e-4 } },
};

/** The first DOT step with the plugin keeping only the terms `keep` accepts. */
async function step(def: PluginDefinition, over: Partial<RunSpecInput>, keep: (term: string) => boolean, labels: Record<string, LossObjective | undefined> = {}) {
  const probe = dotProbe(def, keep, labels);
  const spec = RunSpec.parse({ ...base, ...over, plugins: [{ use: probe.id }] });
  return firstDotStep(spec, new Registry([testModule(probe), onlineDmlModule]));
}

const isCe = (term: string) => /(^|:)ce(-ensemble)?$/.test(term);

describe.each([
  ['online/dml', dmlLossDefinition],
  ['online/dml-ensemble', dmlEnsembleLossDefinition],
])('%s under DOT', (_id, def) => {
  it('is mixed: every <role>:ce is task, every <role>:kl distillation; the task gradient is that of the CEs alone, the distillation one that of the KLs', async () => {
    expect(def.objective).toBe('mixed');
    const over = { students: [{ model: 'test-dense' }, { model: 'test-dense' }] };
    const labels: Record<string, LossObjective | undefined> = {};
    const all = await step(def, over, () => true, labels);
    expect(labels).toEqual({ 'student.0:ce': 'task', 'student.0:kl': 'distill', 'student.1:ce': 'task', 'student.1:kl': 'distill' });
    const ce = await step(def, over, isCe);
    const kl = await step(def, over, (t) => !isCe(t));
    expect(any(ce.distill) || any(kl.task)).toBe(false);
    // both students, every weight: a task gradient and a distillation gradient
    expect(all.task).toHaveLength(2);
    expect(all.task.flat().every((g) => g !== null) && all.distill.flat().every((g) => g !== null)).toBe(true);
    expectGrads(all.task, ce.task);
    expectGrads(all.distill, kl.distill);
  });
});

describe('online/one under DOT', () => {
  it('is mixed: ce and ce-ensemble are task, kl distillation; the task gradient is that of the two CEs alone, the distillation one that of the KL', async () => {
    expect(oneLossDefinition.objective).toBe('mixed');
    const over = { student: { model: 'one-mlp', options: { hidden: 8, branchHidden: 8 } } };
    const labels: Record<string, LossObjective | undefined> = {};
    const all = await step(oneLossDefinition, over, () => true, labels);
    expect(labels).toEqual({ ce: 'task', 'ce-ensemble': 'task', kl: 'distill' });
    const ce = await step(oneLossDefinition, over, isCe);
    const kl = await step(oneLossDefinition, over, (t) => !isCe(t));
    expect(any(ce.distill) || any(kl.task)).toBe(false);
    expect(all.task.flat().every((g) => g !== null)).toBe(true);
    expect(any(all.distill)).toBe(true);
    expectGrads(all.task, ce.task);
    expectGrads(all.distill, kl.distill);
  });
});
