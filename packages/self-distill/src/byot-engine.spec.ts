import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { model as functionalModel, type LayersModel, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import { Registry, runSpec, type RunResult } from '@tfkd/engine';
import { RunSpec, computeCalibration } from '@tfkd/kd-core';
import { countFlops } from '@tfkd/models';
import { engineModules } from './__fixtures__/engine';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('Engine + self/byot on a byot-resnet', () => {
  let result: RunResult;
  let model: LayersModel;

  beforeAll(async () => {
    const spec = RunSpec.parse({
      seed: 2,
      backend: 'cpu',
      data: { name: 'blobs', train: 48, test: 30, side: 8 },
      student: { model: 'byot-resnet', options: { widths: [4, 6, 8] } },
      train: { epochs: 2, batchSize: 8, optimizer: { name: 'adam', lr: 0.01, weightDecay: 0 } },
      plugins: [{ use: 'self/byot', with: { lambda: 0.01 } }],
      eval: ['accuracy', 'ece'],
    });
    result = await runSpec(spec, { registry: new Registry(engineModules()), cacheDir: null });
    model = result.models.get('student') as LayersModel;
  }, 60_000);
  afterAll(() => model?.dispose());

  it('logs the deep CE and each head’s ce, kl and feature terms; the loss is their weighted sum', () => {
    const tr = result.history[1].train;
    expect(Object.keys(tr).sort()).toEqual(
      ['loss', 'self/byot:deep:ce', ...['head1', 'head2'].flatMap((h) => [`self/byot:${h}:ce`, `self/byot:${h}:feature`, `self/byot:${h}:kl`])].sort(),
    );
    const sum = 0.9 * tr['self/byot:deep:ce'] + ['head1', 'head2'].reduce((s, h) => s + 0.9 * tr[`self/byot:${h}:ce`] + 0.1 * tr[`self/byot:${h}:kl`] + 0.01 * tr[`self/byot:${h}:feature`], 0);
    expect(tr.loss).toBeCloseTo(sum, 4);
  });

  it('reports every exit and the ensemble, recomputed from the trained model’s outputs; ECE per exit', () => {
    const test = result.data.test;
    const n = test.labels.length;
    const outs = tf.tidy(() => (model.predict(tf.tensor4d(test.images, [n, ...test.shape])) as tf.Tensor[]).map((t) => t.dataSync() as Float32Array));
    expect(outs).toHaveLength(3);
    const [deep, h1, h2] = outs;
    const ens = deep.map((v, i) => (v + h1[i] + h2[i]) / 3);
    const expected: Record<string, Float32Array> = { 'student:deep': deep, 'student:head1': h1, 'student:head2': h2, 'student:ensemble': ens };
    for (const [entry, logits] of Object.entries(expected)) {
      const c = computeCalibration(logits, test.labels, { input: 'logits', numClasses: 3 });
      expect(result.eval[entry].accuracy).toBeCloseTo(c.accuracy, 10);
      expect(result.eval[entry].ece).toBeCloseTo(c.ece, 6);
      expect(result.eval[entry].nll).toBeCloseTo(c.nll, 4);
    }
    // the deepest exit is what the engine evaluates as the student
    expect(result.eval['student:deep'].accuracy).toBe(result.eval.student.accuracy);
    expect(result.eval.student.ece).toBeCloseTo(result.eval['student:deep'].ece, 10);
  });

  it('each exit’s cost is the FLOPs of the layers it depends on; the ensemble needs the whole model', () => {
    const upTo = (names: string[]) => countFlops(functionalModel({ inputs: model.inputs, outputs: names.map((l) => model.getLayer(l).output as SymbolicTensor) })).perImage;
    const f = (e: string) => result.eval[e].flopsPerImage;
    expect(f('student:head1')).toBe(upTo(['head1']));
    expect(f('student:head2')).toBe(upTo(['head2']));
    expect(f('student:deep')).toBe(upTo(['logits']));
    expect(f('student:ensemble')).toBe(countFlops(model).perImage);
    expect(f('student:head1')).toBeLessThan(f('student:head2'));
    expect(f('student:head2')).toBeLessThan(f('student:deep'));
    // the ledger charges training the whole multi-exit model
    expect(result.ledger.roles.student.flopsPerImage).toBe(countFlops(model).perImage);
  });

  it('learns the blobs: the deepest exit beats chance by far', () => {
    expect(result.eval.student.accuracy).toBeGreaterThan(0.6);
  });
});
