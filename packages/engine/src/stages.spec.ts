import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as path from 'path';
import '@tensorflow/tfjs-backend-cpu';
import { ContainerModule } from 'inversify';
import { Engine } from './engine';
import { MODEL_DEFINITION, type ModelDefinition, type ObservedEvent, RunSpec, type RunSpecInput } from '@tfkd/kd-core';
import { Registry } from './registry';
import { denseModel, testModelTools, testModule, tracer } from '@tfkd/kd-core/testing';

const SPEC_DIR = '/virtual-kd-stages-spec';
const trace: string[] = [];
// flatten → fc1 (dense) → bn1 (batch norm: moving statistics move in a training-mode forward) → logits
const bnModel: ModelDefinition = {
  id: 'test-bn',
  describe: 'dense + batch norm (test fixture)',
  taps: ['fc1', 'bn1'],
  build(o) {
    const x0 = tfl.input({ shape: o.inputShape });
    let x = tfl.layers.flatten({ name: 'flatten' }).apply(x0) as tfl.SymbolicTensor;
    x = tfl.layers.dense({ units: 6, activation: 'relu', name: 'fc1', kernelInitializer: tfl.initializers.glorotUniform({ seed: 3 }) }).apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.batchNormalization({ name: 'bn1' }).apply(x) as tfl.SymbolicTensor;
    const out = tfl.layers.dense({ units: o.numClasses, name: 'logits', kernelInitializer: tfl.initializers.glorotUniform({ seed: 4 }) }).apply(x) as tfl.SymbolicTensor;
    return tfl.model({ inputs: x0, outputs: out, name: 'test-bn' });
  },
};
const registry = () => new Registry([testModule(tracer(trace)), new ContainerModule((o) => void o.bind<ModelDefinition>(MODEL_DEFINITION).toConstantValue(bnModel))]);

beforeAll(async () => {
  await tf.setBackend('cpu');
  await testModelTools.save(denseModel({ inputShape: [4, 4, 1], numClasses: 3, seed: 11, hidden: 16 }), path.resolve(SPEC_DIR, 'teacher'));
});
beforeEach(() => {
  trace.length = 0;
});

const base = (over: Partial<RunSpecInput> = {}): RunSpecInput => ({
  seed: 3,
  backend: 'cpu',
  data: { name: 'blobs', train: 24, test: 8 },
  teacher: { load: 'teacher' },
  student: { model: 'test-dense' },
  // 24 samples in batches of 8: 3 batches per epoch.
  train: { epochs: 2, batchSize: 8, optimizer: { name: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 0 } },
  plugins: [
    { use: 'test/ce' },
    { use: 'test/logit-match', weight: 0.5 },
    { use: 'test/tracer', name: 'main-tracer' },
  ],
  ...over,
});

async function runSpec(input: RunSpecInput) {
  const engine = new Engine(RunSpec.parse(input), { registry: registry(), specDir: SPEC_DIR, cacheDir: null });
  const events: ObservedEvent[] = [];
  engine.bus.events$.subscribe((e) => void events.push(e));
  try {
    const result = await engine.run();
    return { result, events, instances: engine.pluginInstances().map((p) => p.name) };
  } finally {
    engine.dispose();
  }
}

async function prepareError(input: RunSpecInput): Promise<unknown> {
  const engine = new Engine(RunSpec.parse(input), { registry: registry(), specDir: SPEC_DIR, cacheDir: null });
  try {
    await engine.prepare();
    return null;
  } catch (e) {
    return e;
  } finally {
    engine.dispose();
  }
}

describe('declared stages', () => {
  it('a 2-stage run: phases in order, their own epochs, only the listed plugins active per phase', async () => {
    const { result, events, instances } = await runSpec(
      base({
        stages: [
          {
            name: 'warm',
            epochs: 1,
            train: { optimizer: { name: 'adam', lr: 0.01, weightDecay: 0 } },
            plugins: [{ name: 'test/logit-match', weight: 3 }, { use: 'test/tracer', name: 'stage-tracer' }],
          },
          { name: 'hint', epochs: 2, train: { maxBatches: 2 }, plugins: [{ use: 'test/ce', name: 'stage-ce' }, { name: 'main-tracer' }] },
        ],
      }),
    );
    // One instance per name: the main list's, then the stage-only ones.
    expect(instances).toEqual(['test/ce', 'test/logit-match', 'main-tracer', 'stage-tracer', 'stage-ce']);
    const start = events.find((e) => e.hook === 'runStart');
    expect(start?.hook === 'runStart' && start.payload.phases).toEqual([
      { name: 'warm', epochs: 1, batchesPerEpoch: 3 },
      { name: 'hint', epochs: 2, batchesPerEpoch: 2 },
      { name: 'distill', epochs: 2, batchesPerEpoch: 3 },
    ]);
    const epochs = events.filter((e) => e.hook === 'epochStart').map((e) => (e.hook === 'epochStart' ? `${e.payload.phase}:${e.payload.epoch}/${e.payload.epochs}` : ''));
    expect(epochs).toEqual(['warm:1/1', 'hint:1/2', 'hint:2/2', 'distill:1/2', 'distill:2/2']);
    // Which losses were active: the terms of every batch, by phase.
    const terms = new Map<string, Set<string>>();
    for (const e of events) if (e.hook === 'batchEnd') for (const k of Object.keys(e.payload.terms)) terms.set(e.payload.phase, (terms.get(e.payload.phase) ?? new Set()).add(k));
    expect(Object.fromEntries([...terms].map(([k, v]) => [k, [...v]]))).toEqual({ warm: ['test/logit-match'], hint: ['stage-ce'], distill: ['test/ce', 'test/logit-match'] });
    // The tracers see the epochs of their phases only, and the run's start and end.
    const seen = (who: string) => trace.filter((t) => t.startsWith(`${who}:`) && !/batch|loss|eval/.test(t)).map((t) => t.slice(who.length + 1));
    expect(seen('stage-tracer')).toEqual(['runStart', 'epochStart:warm:1', 'epochEnd:1', 'runEnd']);
    expect(seen('main-tracer')).toEqual(['runStart', 'epochStart:hint:1', 'epochEnd:1', 'epochStart:hint:2', 'epochEnd:2', 'epochStart:distill:1', 'epochEnd:1', 'epochStart:distill:2', 'epochEnd:2', 'runEnd']);
    expect(trace.filter((t) => t.startsWith('stage-tracer:loss')).length).toBe(3);
    // History lines carry the phase; the ledger times every phase; steps are counted over the run.
    expect(result.history.map((h) => `${h.phase}:${h.epoch}`)).toEqual(['warm:1', 'hint:1', 'hint:2', 'distill:1', 'distill:2']);
    expect(Object.fromEntries(Object.entries(result.ledger.phases).map(([k, v]) => [k, v.steps]))).toEqual({ warm: 3, hint: 4, distill: 6 });
    const last = events.filter((e) => e.hook === 'batchEnd').pop();
    expect(last?.hook === 'batchEnd' && last.payload.step).toBe(13);
  });

  it('the loss of a stage is its own terms with its weights: the weighted term alone', async () => {
    const { result, events } = await runSpec(base({ stages: [{ name: 'warm', epochs: 1, plugins: [{ name: 'test/logit-match', weight: 3 }] }] }));
    for (const e of events) {
      if (e.hook !== 'batchEnd') continue;
      if (e.payload.phase === 'warm') {
        expect(Object.keys(e.payload.terms)).toEqual(['test/logit-match']);
        expect(e.payload.loss).toBeCloseTo(3 * e.payload.terms['test/logit-match'], 5);
      } else {
        expect(e.payload.loss).toBeCloseTo(e.payload.terms['test/ce'] + 0.5 * e.payload.terms['test/logit-match'], 5);
      }
    }
    expect(result.history[0].train.loss).toBeCloseTo(3 * result.history[0].train['test/logit-match'], 5);
  });

  it('a spec without stages is unchanged: no `stages` key, one phase', async () => {
    const spec = RunSpec.parse(base());
    expect('stages' in spec).toBe(false);
    const { events } = await runSpec(base());
    const start = events.find((e) => e.hook === 'runStart');
    expect(start?.hook === 'runStart' && start.payload.phases).toEqual([{ name: 'distill', epochs: 2, batchesPerEpoch: 3 }]);
  });

  it('trainUpTo: only the student layers up to the named one train in the stage', async () => {
    const engine = new Engine(RunSpec.parse(base({ stages: [{ name: 'hint', epochs: 1, trainUpTo: 'fc1', plugins: [{ name: 'test/logit-match' }] }] })), {
      registry: registry(),
      specDir: SPEC_DIR,
      cacheDir: null,
    });
    await engine.prepare();
    const student = () => (engine as unknown as { roles: Map<string, { model: { getLayer(n: string): { getWeights(): tf.Tensor[] } } }> }).roles.get('student');
    const read = (layer: string) => (student()?.model.getLayer(layer).getWeights() ?? []).map((w) => Array.from(w.dataSync()));
    const logitsBefore = read('logits');
    const fc1Before = read('fc1');
    let atStageEnd: { logits: number[][]; fc1: number[][] } | null = null;
    engine.bus.events$.subscribe((e) => {
      if (e.hook === 'epochEnd' && e.payload.phase === 'hint') atStageEnd = { logits: read('logits'), fc1: read('fc1') };
    });
    try {
      await engine.run();
      const end = atStageEnd as unknown as { logits: number[][]; fc1: number[][] };
      expect(end.logits).toEqual(logitsBefore);
      expect(end.fc1).not.toEqual(fc1Before);
      // The main phase trains everything.
      expect(read('logits')).not.toEqual(logitsBefore);
    } finally {
      engine.dispose();
    }
  });

  it('trainUpTo keeps the frozen layers\' batch-norm statistics too (a training-mode forward would move them)', async () => {
    const engine = new Engine(
      RunSpec.parse(base({ student: { model: 'test-bn' }, stages: [{ name: 'hint', epochs: 2, trainUpTo: 'fc1', plugins: [{ name: 'test/logit-match' }] }] })),
      { registry: registry(), specDir: SPEC_DIR, cacheDir: null },
    );
    await engine.prepare();
    const model = (engine as unknown as { roles: Map<string, { model: tfl.LayersModel }> }).roles.get('student')?.model as tfl.LayersModel;
    const read = (layer: string) => model.getLayer(layer).getWeights().map((w) => Array.from(w.dataSync()));
    const before = { fc1: read('fc1'), bn1: read('bn1'), logits: read('logits') };
    expect(before.bn1).toHaveLength(4);
    let atStageEnd: typeof before | null = null;
    engine.bus.events$.subscribe((e) => {
      if (e.hook === 'epochEnd' && e.payload.phase === 'hint' && e.payload.epoch === 2) atStageEnd = { fc1: read('fc1'), bn1: read('bn1'), logits: read('logits') };
    });
    try {
      await engine.run();
      const end = atStageEnd as unknown as typeof before;
      expect(end.fc1).not.toEqual(before.fc1);
      expect(end.bn1).toEqual(before.bn1);
      expect(end.logits).toEqual(before.logits);
      // The main phase trains (and normalises) everything.
      expect(read('bn1')).not.toEqual(before.bn1);
    } finally {
      engine.dispose();
    }
  });

  describe('errors name the spec path and a fix', () => {
    it.each<[string, RunSpecInput['stages'], string, RegExp]>([
      ['an empty list', [], 'stages', /empty/],
      ['a stage without plugins', [{ name: 'hint', epochs: 1, plugins: [] }], 'stages[0].plugins', /no plugins/],
      ['a stage named distill', [{ name: 'distill', epochs: 1, plugins: [{ name: 'test/ce' }] }], 'stages[0].name', /main distillation/],
      ['a stage named teacher', [{ name: 'teacher', epochs: 1, plugins: [{ name: 'test/ce' }] }], 'stages[0].name', /teacher-training/],
      ['two stages of one name', [{ name: 'a', epochs: 1, plugins: [{ name: 'test/ce' }] }, { name: 'a', epochs: 1, plugins: [{ name: 'test/ce' }] }], 'stages[1].name', /two stages/],
      ['an unknown plugin name', [{ name: 'hint', epochs: 1, plugins: [{ name: 'test/ce' }, { name: 'fitnets' }] }], 'stages[0].plugins[1].name', /no plugin of the main list/],
      ['an entry with neither name nor use', [{ name: 'hint', epochs: 1, plugins: [{ weight: 2 }] }], 'stages[0].plugins[0]', /needs `name:`/],
      ['a shared name with another plugin id', [{ name: 'hint', epochs: 1, plugins: [{ name: 'test/ce', use: 'test/logit-match' }] }], 'stages[0].plugins[0].use', /test\/ce/],
      ['a shared name with other options', [{ name: 'hint', epochs: 1, plugins: [{ name: 'main-tracer', with: { stage: 'observe' } }] }], 'stages[0].plugins[0].with', /options/],
      ['a plugin twice in a stage', [{ name: 'hint', epochs: 1, plugins: [{ name: 'test/ce' }, { use: 'test/ce' }] }], 'stages[0].plugins[1].name', /twice/],
      ['an unknown plugin id', [{ name: 'hint', epochs: 1, plugins: [{ use: 'loss/nope' }] }], 'stages[0].plugins[0].use', /nope/],
      ['trainUpTo naming no layer', [{ name: 'hint', epochs: 1, trainUpTo: 'block9', plugins: [{ name: 'test/ce' }] }], 'stages[0].trainUpTo', /no layer 'block9'/],
    ])('%s', async (_what, stages, at, message) => {
      const e = (await prepareError(base({ stages }))) as { code: string; path: string; message: string; fix: string };
      expect(e).toMatchObject({ path: at, message: expect.stringMatching(message) });
      expect(e.code).toMatch(/^KD_/);
      expect(e.fix).toBeTruthy();
    });

    it('a shared name with the same options is fine', async () => {
      expect(await prepareError(base({ stages: [{ name: 'hint', epochs: 1, plugins: [{ name: 'main-tracer', use: 'test/tracer', with: { stage: 'default' } }] }] }))).toBeNull();
    });
  });
});
