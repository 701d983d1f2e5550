import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { prepareRun, Registry } from '@tfkd/engine';
import { RunSpec, type Plugin, type RunSpecInput } from '@tfkd/kd-core';
import { testModule } from '@tfkd/kd-core/testing';
import { logitLossesModule } from '@tfkd/losses-logit';
import { testConvModule } from './__fixtures__/models';
import { featureLossesModule } from './module';

jest.setTimeout(120_000);

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// FitNets as Romero et al.: stage 1 (`hint`) trains the student up to the guided layer c1 and the
// regressor on the hint loss alone; then the main phase distils with CE + the same hint instance.
const spec = (over: Partial<RunSpecInput> = {}): RunSpec =>
  RunSpec.parse({
    seed: 5,
    backend: 'cpu',
    data: { name: 'blobs', train: 24, test: 4 },
    // A teacher's recipe is its own (the run's `train` is the student's): spelled out as the student's.
    teacher: { model: 'test-conv', seed: 11, train: { epochs: 1, batchSize: 8, optimizer: { name: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 0 } } },
    student: { model: 'test-conv' },
    train: { epochs: 1, batchSize: 8, optimizer: { name: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 0 } },
    evalEvery: 100,
    // relu: false — with this fixture's initialisation the ReLU after the regressor starts dead (no gradient at all).
    plugins: [{ use: 'loss/cross-entropy' }, { use: 'loss/fitnets', with: { pairs: [['student.c1', 'teacher.c1']], relu: false }, weight: 100 }],
    stages: [{ name: 'hint', epochs: 2, trainUpTo: 'c1', train: { optimizer: { name: 'adam', lr: 0.01, weightDecay: 0 } }, plugins: [{ name: 'loss/fitnets', weight: 1 }] }],
    ...over,
  });

const values = (vs: readonly tf.Variable[]) => vs.map((v) => Array.from(v.dataSync()));

describe('a FitNets hint stage (stages: with trainUpTo)', () => {
  it('trains only the student up to the guided layer and the regressor; the main phase continues with the same regressor instance', async () => {
    const engine = await prepareRun(spec(), { registry: new Registry([testModule(), testConvModule, logitLossesModule, featureLossesModule]), cacheDir: null });
    await engine.prepare();
    const fitnets = engine.pluginInstances().filter((p) => p.id === 'loss/fitnets');
    expect(fitnets).toHaveLength(1);
    const regressor = (fitnets[0].plugin as Plugin).variables?.() ?? [];
    expect(regressor.map((v) => v.shape)).toEqual([[1, 1, 2, 2], [2]]);
    const student = (engine as unknown as { roles: Map<string, { model: tfl.LayersModel }> }).roles.get('student')?.model as tfl.LayersModel;
    const teacher = (engine as unknown as { roles: Map<string, { model: tfl.LayersModel }> }).roles.get('teacher')?.model as tfl.LayersModel;
    const layer = (name: string) => student.getLayer(name).getWeights().map((w) => Array.from(w.dataSync()));
    const snap = () => ({ c1: layer('c1'), c2: layer('c2'), logits: layer('logits'), regressor: values(regressor) });
    const start = snap();

    // Number-level: the first hint step's term, by hand from the weights before any step.
    const c1Of = (m: tfl.LayersModel) => tfl.model({ inputs: m.inputs, outputs: m.getLayer('c1').output as tfl.SymbolicTensor });
    let byHand: number | null = null;
    engine.bus.forPlugin('test-probe', 'sample').on('batchStart', (ctx) => {
      if (ctx.step !== 0) return;
      const [k, b] = regressor;
      const fs = c1Of(student).predict(ctx.batch.x) as tf.Tensor4D;
      const ft = c1Of(teacher).predict(ctx.batch.x) as tf.Tensor4D;
      const adapted = tf.add(tf.conv2d(fs, k as tf.Tensor4D, 1, 'same'), b);
      byHand = tf.mean(tf.squaredDifference(adapted, ft)).dataSync()[0];
    });
    let endOfHint: ReturnType<typeof snap> | null = null;
    let startOfMain: ReturnType<typeof snap> | null = null;
    const batches: { phase: string; loss: number; terms: Record<string, number> }[] = [];
    engine.bus.events$.subscribe((e) => {
      if (e.hook === 'epochEnd' && e.payload.phase === 'hint' && e.payload.epoch === 2) endOfHint = snap();
      if (e.hook === 'epochStart' && e.payload.phase === 'distill') startOfMain = snap();
      if (e.hook === 'batchEnd') batches.push({ phase: e.payload.phase, loss: e.payload.loss, terms: e.payload.terms });
    });
    try {
      const result = await engine.run();
      const end = snap();
      const hint = endOfHint as unknown as ReturnType<typeof snap>;
      const main = startOfMain as unknown as ReturnType<typeof snap>;

      // Stage 1: c1 and the regressor trained; everything after the guided layer is untouched.
      expect(hint.c1).not.toEqual(start.c1);
      expect(hint.regressor).not.toEqual(start.regressor);
      expect(hint.c2).toEqual(start.c2);
      expect(hint.logits).toEqual(start.logits);
      // The main phase starts from exactly what stage 1 left (same instance, nothing re-initialised) …
      expect(main).toEqual(hint);
      // … and trains all of it, the regressor included.
      expect(end.c2).not.toEqual(hint.c2);
      expect(end.logits).not.toEqual(hint.logits);
      expect(end.regressor).not.toEqual(hint.regressor);

      // The hint stage's loss is the fitnets term alone (weight 1 there, 100 in the main phase).
      const hintBatches = batches.filter((b) => b.phase === 'hint');
      expect(hintBatches).toHaveLength(6);
      for (const b of hintBatches) {
        expect(Object.keys(b.terms)).toEqual(['loss/fitnets']);
        expect(b.loss).toBeCloseTo(b.terms['loss/fitnets'], 6);
      }
      expect(hintBatches[0].terms['loss/fitnets']).toBeCloseTo(byHand as unknown as number, 5);
      for (const b of batches.filter((x) => x.phase === 'distill')) {
        expect(Object.keys(b.terms).sort()).toEqual(['loss/cross-entropy', 'loss/fitnets']);
        expect(b.loss).toBeCloseTo(b.terms['loss/cross-entropy'] + 100 * b.terms['loss/fitnets'], 4);
      }
      expect(result.history.map((h) => `${h.phase}:${h.epoch}`)).toEqual(['hint:1', 'hint:2', 'distill:1']);
      expect(result.history[0].train.loss).toBeCloseTo(result.history[0].train['loss/fitnets'], 6);
    } finally {
      engine.dispose();
    }
  });

  it('RepDistiller-style init stage for AB: the connector and the student trained on the feature loss alone, then distilled', async () => {
    const engine = await prepareRun(
      spec({
        plugins: [{ use: 'loss/cross-entropy' }, { use: 'loss/activation-boundary', with: { pairs: [['student.c2', 'teacher.c2']] } }],
        stages: [{ name: 'init', epochs: 1, plugins: [{ name: 'loss/activation-boundary' }] }],
      }),
      { registry: new Registry([testModule(), testConvModule, logitLossesModule, featureLossesModule]), cacheDir: null },
    );
    try {
      const result = await engine.run();
      expect(result.history.map((h) => `${h.phase}:${h.epoch}`)).toEqual(['init:1', 'distill:1']);
      expect(Object.keys(result.history[0].train).sort()).toEqual(['loss', 'loss/activation-boundary']);
      expect(Object.keys(result.ledger.phases)).toEqual(['init', 'distill']);
      // init: the loss is the AB term alone (weight 1); distill: CE + AB, both at weight 1
      const [init, distill] = result.history.map((h) => h.train);
      expect(init['loss/activation-boundary']).toBeGreaterThan(0);
      expect(init.loss).toBeCloseTo(init['loss/activation-boundary'], 6);
      expect(Object.keys(distill).sort()).toEqual(['loss', 'loss/activation-boundary', 'loss/cross-entropy']);
      expect(distill.loss).toBeCloseTo(distill['loss/cross-entropy'] + distill['loss/activation-boundary'], 5);
    } finally {
      engine.dispose();
    }
  });
});
