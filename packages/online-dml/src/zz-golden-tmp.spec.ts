// TEMPORARY (removed before hand-back): records exact numbers of several runs to compare before/after a refactor.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { Registry, runGenerations, runSpec } from '@tfkd/engine';
import { RunSpec, definePlugin, type BatchSummary, type PluginDefinition, type RunSpecInput } from '@tfkd/kd-core';
import { testModule } from '@tfkd/kd-core/testing';
import { logitLossesModule } from '@tfkd/losses-logit';
import { featureLossesModule } from '@tfkd/losses-feature';
import { metricsModule } from '@tfkd/metrics-ece';
import { unixSamplersModule } from '@tfkd/samplers-unix';
import { selfDistillModule } from '@tfkd/self-distill';
import * as crypto from 'crypto';
import * as fs from 'fs';
import { z } from 'zod';
import { testConvModule } from '../../losses-feature/src/__fixtures__/models';
import { engineModules } from '../../self-distill/src/__fixtures__/engine';
import { onlineDmlModule } from './module';

jest.setTimeout(600_000);
beforeAll(async () => {
  await tf.setBackend('cpu');
});

const out: Record<string, unknown> = {};

function recorder(batches: BatchSummary[]): PluginDefinition {
  return definePlugin({
    id: 'obs/golden',
    kind: 'observer',
    describe: 'records batchEnd',
    options: z.object({}).strict(),
    create: (_o, deps) => ({ name: deps.name, register: (bus) => bus.on('batchEnd', (b) => void batches.push(b)) }),
  });
}

function hashModels(models: Map<string, { getWeights(): tf.Tensor[]; dispose(): void }>): Record<string, string> {
  const h: Record<string, string> = {};
  for (const [k, m] of models) {
    const c = crypto.createHash('sha256');
    for (const w of m.getWeights()) c.update(Buffer.from((w.dataSync() as Float32Array).buffer));
    h[k] = c.digest('hex');
    m.dispose();
  }
  return h;
}

async function record(name: string, spec: RunSpecInput, modules: ReturnType<typeof testModule>[]): Promise<void> {
  const batches: BatchSummary[] = [];
  const registry = new Registry([testModule(recorder(batches)), ...modules]);
  const result = await runSpec(RunSpec.parse({ ...spec, plugins: [...(spec.plugins ?? []), { use: 'obs/golden' }] }), { registry, cacheDir: null });
  out[name] = { batches: batches.map((b) => ({ loss: b.loss, terms: b.terms })), eval: result.eval, weights: hashModels(result.models) };
}

const dense = {
  seed: 5,
  backend: 'cpu' as const,
  data: { name: 'blobs', train: 24, test: 8 },
  teacher: { model: 'test-dense', seed: 11, train: { epochs: 1 } },
  student: { model: 'test-dense' },
  train: { epochs: 2, batchSize: 4, optimizer: { name: 'sgd' as const, lr: 0.05, momentum: 0.9, weightDecay: 0 } },
  eval: ['accuracy', 'ece'],
};
const pair = [['student.fc1', 'teacher.fc1']];

it('records', async () => {
  await record('logit', {
    ...dense,
    plugins: [
      { use: 'loss/cross-entropy', weight: 0.1 },
      { use: 'loss/hinton-kd', weight: 0.9 },
      { use: 'loss/logit-mse', weight: 0.5 },
      { use: 'loss/dkd', with: { warmup: 2 } },
      { use: 'loss/dist', weight: 2 },
      { use: 'loss/soft-target-ce', weight: 0.1 },
      { use: 'loss/label-smoothing', weight: 0.1 },
    ],
  }, [logitLossesModule, metricsModule]);
  await record('feature-dense', {
    ...dense,
    plugins: [
      { use: 'loss/cross-entropy', weight: 0.1 },
      { use: 'loss/sp', with: { pairs: pair }, weight: 30 },
      { use: 'loss/pkt', with: { pairs: pair }, weight: 300 },
      { use: 'loss/rkd', with: { pairs: pair }, weight: 0.1 },
      { use: 'loss/fitnets', with: { pairs: pair }, weight: 1 },
      { use: 'loss/activation-boundary', with: { pairs: pair }, weight: 0.01 },
      { use: 'loss/crd', with: { pairs: pair, dim: 4 }, weight: 0.1 },
      { use: 'loss/crd', name: 'crd-ib', with: { pairs: pair, dim: 4, mode: 'in-batch' }, weight: 0.1 },
    ],
  }, [logitLossesModule, featureLossesModule, metricsModule]);
  await record('feature-conv', {
    ...dense,
    teacher: { model: 'test-conv', seed: 11, train: { epochs: 1 } },
    student: { model: 'test-conv' },
    plugins: [
      { use: 'loss/cross-entropy', weight: 0.1 },
      { use: 'loss/attention', with: { pairs: [['student.c1', 'teacher.c1']] }, weight: 10 },
      { use: 'loss/nst', with: { pairs: [['student.c2', 'teacher.c2']] }, weight: 10 },
      { use: 'loss/fsp', with: { student: [['student.c1', 'student.p1']], teacher: [['teacher.c1', 'teacher.p1']] }, weight: 1 },
      { use: 'loss/factor-transfer', with: { pairs: [['student.c2', 'teacher.c2']], paraphraserEpochs: 2 }, weight: 10 },
      { use: 'loss/fitnets', with: { pairs: [['student.c1', 'teacher.p1']] }, weight: 1 },
    ],
  }, [logitLossesModule, featureLossesModule, testConvModule, metricsModule]);
  await record('unix', {
    ...dense,
    plugins: [{ use: 'sampler/unix', with: { keep: 3 } }, { use: 'loss/cross-entropy', weight: 0.5 }, { use: 'loss/hinton-kd', weight: 0.5 }],
  }, [logitLossesModule, unixSamplersModule, metricsModule]);
  const peers = { ...dense, teacher: undefined, student: undefined, students: [{ model: 'test-dense' }, { model: 'test-dense' }, { model: 'test-dense' }] };
  await record('dml', { ...peers, plugins: [{ use: 'online/dml' }], eval: ['accuracy', 'peer-ensemble'] }, [onlineDmlModule]);
  await record('dml-e', { ...peers, plugins: [{ use: 'online/dml-ensemble', with: { average: 'logits', students: ['student.2', 'student.0'] } }], eval: ['accuracy'] }, [onlineDmlModule]);
  await record('one', { ...dense, teacher: undefined, student: { model: 'one-mlp' }, plugins: [{ use: 'online/one', with: { rampup: 2 } }], eval: ['accuracy', 'peer-ensemble'] }, [onlineDmlModule]);
  await record('tfkd', {
    ...dense,
    plugins: [
      { use: 'self/tf-kd-virtual' },
      { use: 'self/tf-kd-virtual', name: 'v2', with: { variant: 'distillistic' } },
      { use: 'self/tf-kd-calibrated' },
      { use: 'self/tf-kd-self' },
    ],
  }, [selfDistillModule, logitLossesModule, metricsModule]);
  {
    const batches: BatchSummary[] = [];
    const spec = RunSpec.parse({
      seed: 2,
      backend: 'cpu',
      data: { name: 'blobs', train: 32, test: 16, side: 8 },
      student: { model: 'byot-resnet', options: { widths: [4, 6, 8] } },
      train: { epochs: 2, batchSize: 8, optimizer: { name: 'adam', lr: 0.01, weightDecay: 0 } },
      plugins: [{ use: 'self/byot', with: { lambda: 0.01 } }, { use: 'obs/golden' }],
      eval: ['accuracy', 'ece'],
    });
    const result = await runSpec(spec, { registry: new Registry([...engineModules(), new (require('inversify').ContainerModule)((o: any) => o.bind(require('@tfkd/kd-core').PLUGIN_DEFINITION).toConstantValue(recorder(batches)))]), cacheDir: null });
    out.byot = { batches: batches.map((b) => ({ loss: b.loss, terms: b.terms })), eval: result.eval, weights: hashModels(result.models) };
  }
  {
    const spec = RunSpec.parse({
      seed: 4,
      backend: 'cpu',
      data: { name: 'blobs', train: 24, test: 12 },
      student: { model: 'test-dense', options: { hidden: 6 } },
      train: { epochs: 2, batchSize: 8, optimizer: { name: 'adam', lr: 0.02, weightDecay: 0 } },
      plugins: [{ use: 'self/born-again', with: { generations: 2, temperature: 4 } }],
      eval: ['accuracy', 'ece'],
    });
    const r = await runGenerations(spec, { registry: new Registry(engineModules()), cacheDir: null });
    out.bornAgain = { eval: r.eval, history: (r as unknown as { history?: unknown }).history ?? null };
  }
  fs.writeFileSync(process.env.GOLDEN_OUT ?? '/tmp/golden.json', JSON.stringify(out, null, 1));
});
