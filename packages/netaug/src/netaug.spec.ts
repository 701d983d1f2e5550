import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { Registry, planRun } from '@tfkd/engine';
import { describePluginContract } from '@tfkd/engine/testing';
import { isKdError, MODEL_DEFINITION, RunSpec, type KdError, type ModelDefinition, type RunSpecInput } from '@tfkd/kd-core';
import { fakePluginDeps, testModule } from '@tfkd/kd-core/testing';
import { MODEL_ZOO } from '@tfkd/models';
import { ContainerModule } from 'inversify';
import { kdModule } from './module';
import { netaugLoss, netaugSchema } from './netaug';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// The contract kit: registration, option errors at their path, a run with no tensor growth between
// step 5 and step 30, stacking with a sampler that halves the batch (student: test-dense).
describePluginContract({ module: kdModule, id: 'train/netaug', needsTeacher: false, options: { widths: [1, 2], alpha: 0.5 }, invalidOptions: { widths: [0.5, 1] } });
describePluginContract({ module: kdModule, id: 'train/netaug', needsTeacher: false, invalidOptions: { alpha: -1 } });

/** A model without a hidden layer: nothing for NetAug to widen. */
const logistic: ModelDefinition = {
  id: 'logistic',
  describe: 'flatten → logits (test)',
  taps: [],
  build: (o) => {
    const x = tfl.input({ shape: o.inputShape });
    const flat = tfl.layers.flatten().apply(x) as tfl.SymbolicTensor;
    return tfl.model({ inputs: x, outputs: tfl.layers.dense({ units: o.numClasses, name: 'logits' }).apply(flat) as tfl.SymbolicTensor });
  },
};
/** A softmax output layer: not logits. */
const softmaxMlp: ModelDefinition = {
  id: 'softmax-mlp',
  describe: 'flatten → dense relu → dense softmax (test)',
  taps: [],
  build: (o) => {
    const x = tfl.input({ shape: o.inputShape });
    let h = tfl.layers.flatten().apply(x) as tfl.SymbolicTensor;
    h = tfl.layers.dense({ units: 4, activation: 'relu' }).apply(h) as tfl.SymbolicTensor;
    return tfl.model({ inputs: x, outputs: tfl.layers.dense({ units: o.numClasses, activation: 'softmax', name: 'probs' }).apply(h) as tfl.SymbolicTensor });
  },
};

const models = new ContainerModule((o) => {
  for (const d of [...MODEL_ZOO, logistic, softmaxMlp]) o.bind(MODEL_DEFINITION).toConstantValue(d);
});

async function planError(over: Partial<RunSpecInput>): Promise<KdError> {
  const spec = RunSpec.parse({
    seed: 1,
    backend: 'cpu',
    data: { name: 'blobs', train: 16, test: 8 },
    student: { model: 'test-dense' },
    train: { epochs: 1, batchSize: 4 },
    plugins: [{ use: 'test/ce' }, { use: 'train/netaug' }],
    ...over,
  });
  const e = await planRun(spec, { registry: new Registry([testModule(), models, kdModule]) }).then(
    () => null,
    (x: unknown) => x,
  );
  if (!isKdError(e)) throw new Error(`expected a KdError, got ${String(e)}`);
  return e;
}

describe('a student NetAug cannot widen is a coded planning error', () => {
  it.each([
    ['resnet-student (BatchNorm, residual adds)', { model: 'resnet-student' }, /layer '.+' is a (BatchNormalization|Add)|not fed by the layer before it alone/],
    ['byot-resnet (several outputs)', { model: 'byot-resnet', options: { widths: [4, 6, 8] } }, /outputs \(one of each is needed\)|is a BatchNormalization/],
    ['a softmax output', { model: 'softmax-mlp' }, /activation 'softmax' \(ReLU or linear only\)/],
    ['no hidden layer', { model: 'logistic' }, /no hidden layer to widen/],
  ])('%s → KD_PLUGIN_DEPENDENCY at the student, with a fix naming the zoo models that work', async (_what, student, message) => {
    const e = await planError({ student });
    expect([e.code, e.path]).toEqual(['KD_PLUGIN_DEPENDENCY', 'student']);
    expect(e.message).toMatch(message);
    if (!/no hidden layer/.test(e.message)) expect(e.fix).toMatch(/mlp, mlp-student, mlp-teacher, cnn-small or cnn-large/);
  });

  it('a teacher named as the student → KD_PLUGIN_OPTIONS at with.student; an unknown role → KD_PLUGIN_DEPENDENCY', async () => {
    const roles = [
      { name: 'student', kind: 'student' as const, trainable: true },
      { name: 'teacher', kind: 'teacher' as const, trainable: false },
    ];
    const create = (student: string, deps = fakePluginDeps('train/netaug', roles)) => {
      try {
        netaugLoss.create(netaugSchema.parse({ student }), deps);
      } catch (e) {
        return e as KdError;
      }
      throw new Error('expected an error');
    };
    const e1 = create('teacher');
    expect([e1.code, e1.path]).toEqual(['KD_PLUGIN_OPTIONS', 'plugins[0].with.student']);
    expect(e1.fix).toBe('name a student role: student');
    // hand-made deps without model(role): the plugin says what it needs
    const e3 = create('student');
    expect([e3.code, e3.message]).toEqual(['KD_PLUGIN_DEPENDENCY', expect.stringContaining('PluginDeps.model')]);
    const e2 = await planError({ plugins: [{ use: 'test/ce' }, { use: 'train/netaug', with: { student: 'student.1' } }] });
    // (the engine checks requires().roles before creating the plugin)
    expect([e2.code, e2.path]).toEqual(['KD_PLUGIN_DEPENDENCY', 'plugins[1]']);
    expect(e2.message).toContain("'student.1'");
  });

  it('the students of a `students:` run are named by their spec path', async () => {
    const e = await planError({
      student: undefined,
      students: [{ model: 'test-dense' }, { model: 'logistic' }],
      plugins: [{ use: 'test/ce', with: {} }, { use: 'train/netaug', with: { student: 'student.1' } }],
    });
    expect([e.code, e.path]).toEqual(['KD_PLUGIN_DEPENDENCY', 'students[1]']);
  });
});
