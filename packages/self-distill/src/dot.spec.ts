import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { planRun, Registry } from '@tfkd/engine';
import { PLUGIN_DEFINITION, RunSpec, type LossObjective, type PluginDefinition, type RunSpecInput } from '@tfkd/kd-core';
import { hintonKdLoss } from '@tfkd/losses-logit';
import { ContainerModule } from 'inversify';
import { bornAgainLoss } from './born-again';
import { byotPlugin } from './byot';
import { any, dotProbe, expectGrads, firstDotStep, type DotStep } from '@tfkd/engine/testing';
import { engineModules } from './__fixtures__/engine';
import { tfKdCalibratedLoss, tfKdSelfLoss, tfKdVirtualLoss } from './tf-kd';

// Under DOT the CE with the labels is the task loss and what a teacher (or the deepest exit) teaches
// is distillation; Tf-KD's virtual teacher, made from the labels alone, is task too. One step of a
// real run each: the task gradient equals the gradient of the task terms alone.

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const DOT = { name: 'dot' as const, lr: 0.1, momentum: 0.9, weightDecay: 5e-4 };
const base: RunSpecInput = {
  seed: 3,
  backend: 'cpu',
  data: { name: 'blobs', train: 8, test: 4 },
  student: { model: 'test-dense' },
  train: { epochs: 1, batchSize: 8, maxBatches: 1, optimizer: DOT },
};
const teacher = { model: 'test-dense', seed: 11, train: { epochs: 1, optimizer: { name: 'sgd' as const, lr: 0.1 } } };

interface Entry {
  def: PluginDefinition;
  with?: Record<string, unknown>;
  keep: (term: string) => boolean;
  labels?: Record<string, LossObjective | undefined>;
}

/** The first DOT step of a run whose plugins are probes keeping the terms each `keep` accepts. */
function step(over: Partial<RunSpecInput>, entries: Entry[]): Promise<DotStep> {
  // a single engine run (born-again's `generation` set in its options, not a generations plan)
  const probes = entries.map((e) => ({ ...dotProbe(e.def, e.keep, e.labels), generations: undefined }));
  const spec = RunSpec.parse({ ...base, ...over, plugins: probes.map((p, i) => ({ use: p.id, with: entries[i].with ?? {} })) });
  const module = new ContainerModule((o) => probes.forEach((p) => o.bind<PluginDefinition>(PLUGIN_DEFINITION).toConstantValue(p)));
  return firstDotStep(spec, new Registry([...engineModules(), module]));
}

const all = () => true;
const none = () => false;
const isCe = (term: string) => /(^|:)ce$/.test(term);

/** Runs with every term, the CE terms only and the others only; the labels of the first. */
async function split(def: PluginDefinition, over: Partial<RunSpecInput>, options: Record<string, unknown> = {}) {
  const labels: Record<string, LossObjective | undefined> = {};
  const whole = await step(over, [{ def, with: options, keep: all, labels }]);
  const ce = await step(over, [{ def, with: options, keep: isCe }]);
  const rest = await step(over, [{ def, with: options, keep: (t) => !isCe(t) }]);
  expect(any(ce.distill) || any(rest.task)).toBe(false);
  return { labels, whole, ce, rest };
}

describe('DOT: the CE terms of the mixed self-distillation losses are task, the rest distillation', () => {
  it('self/byot: every exit’s ce is task, each head’s kl and feature distillation; gradients of those alone', async () => {
    expect(byotPlugin.objective).toBe('mixed');
    const over = { data: { name: 'blobs', train: 8, test: 4, side: 8 }, student: { model: 'byot-resnet', options: { widths: [4, 6, 8] } } };
    const { labels, whole, ce, rest } = await split(byotPlugin, over, { lambda: 0.01 });
    expect(labels).toEqual({
      'deep:ce': 'task',
      'head1:ce': 'task',
      'head1:kl': 'distill',
      'head1:feature': 'distill',
      'head2:ce': 'task',
      'head2:kl': 'distill',
      'head2:feature': 'distill',
    });
    expect(any(whole.distill)).toBe(true);
    expectGrads(whole.task, ce.task);
    expectGrads(whole.distill, rest.distill);
  }, 30_000);

  it.each([
    ['self/tf-kd-self', tfKdSelfLoss, {}],
    ['self/born-again, generation 2', bornAgainLoss, { generation: 2, generations: 2 }],
  ])('%s: ce is task, kd distillation; gradients of those alone', async (_what, def, options) => {
    expect(def.objective).toBe('mixed');
    const { labels, whole, ce, rest } = await split(def, { teacher }, options);
    expect(labels).toEqual({ ce: 'task', kd: 'distill' });
    expect(whole.task.flat().every((g) => g !== null) && whole.distill.flat().every((g) => g !== null)).toBe(true);
    expectGrads(whole.task, ce.task);
    expectGrads(whole.distill, rest.distill);
  });

  it('self/born-again, generation 1: its one term, ce, is task (no distillation gradient)', async () => {
    const labels: Record<string, LossObjective | undefined> = {};
    const g1 = await step({}, [{ def: bornAgainLoss, with: { generation: 1, generations: 2 }, keep: all, labels }]);
    expect(labels).toEqual({ ce: 'task' });
    expect(any(g1.task)).toBe(true);
    expect(any(g1.distill)).toBe(false);
  });
});

describe.each([
  ['self/tf-kd-virtual', tfKdVirtualLoss],
  ['self/tf-kd-calibrated', tfKdCalibratedLoss],
])('DOT: %s is a task loss (its virtual teacher is made from the labels)', (id, def) => {
  it('declares task and labels ce and kd task; with loss/hinton-kd the task gradient is that of its two terms, the distillation one hinton-kd’s', async () => {
    expect(def.objective).toBe('task');
    const labels: Record<string, LossObjective | undefined> = {};
    const over = { teacher };
    const whole = await step(over, [
      { def, keep: all, labels },
      { def: hintonKdLoss, keep: all },
    ]);
    expect(labels).toEqual({ ce: 'task', kd: 'task' });
    const own = await step(over, [
      { def, keep: all },
      { def: hintonKdLoss, keep: none },
    ]);
    const kd = await step(over, [
      { def, keep: none },
      { def: hintonKdLoss, keep: all },
    ]);
    expect(any(own.distill) || any(kd.task)).toBe(false);
    expectGrads(whole.task, own.task);
    expectGrads(whole.distill, kd.distill);
  });

  it('alone, under DOT: KD_OPTIMIZER_TERMS at plan time (no distillation loss)', async () => {
    const spec = RunSpec.parse({ ...base, plugins: [{ use: id }] });
    await expect(planRun(spec, { registry: new Registry(engineModules()), cacheDir: null })).rejects.toMatchObject({
      code: 'KD_OPTIMIZER_TERMS',
      message: expect.stringMatching(new RegExp(`no distillation loss \\(its losses: ${id} \\(task\\)\\)`)),
    });
  });
});
