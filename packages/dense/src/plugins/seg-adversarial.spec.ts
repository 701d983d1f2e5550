import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { Engine, Registry } from '@tfkd/engine';
import { batchTensors, epochBatches, Rng, type RunSpec, type RunSpecInput } from '@tfkd/kd-core';
import { testModule } from '@tfkd/kd-core/testing';
import { TINY, tinyRunSpec, tinyScenes, tinyScenesModule } from '../__fixtures__/tiny-scenes';
import { buildSegDiscriminator, criticOf } from '../discriminator';
import { segAdversarialCritic, segAdversarialStudent } from '../losses/seg-adversarial';
import { segCwd } from '../losses/seg-cwd';
import { kdModule } from '../module';
import { buildSegmenter } from '../segmenter';

// The two segmentation plugins of issue 24 in a run, against this package's pure functions on the
// same maps (two routes): loss/seg-adversarial's student term, its critic's update (WGAN-GP through a
// double backward, the critic player's own SGD) and loss/seg-cwd's term. The player mechanism itself:
// packages/engine/src/players.spec.ts.
jest.setTimeout(120_000);

const shape: [number, number, number] = [TINY, TINY, 1];
const registry = () => new Registry([testModule(), tinyScenesModule, kdModule]);

/** The tiny segmentation run with a teacher and plain SGD (no momentum: the hand-computed update is one gradient step). */
const segSpec = (over: Partial<RunSpecInput>): RunSpec =>
  tinyRunSpec('segmentation', {
    teacher: { model: 'segmenter-teacher', options: { width: 2 } },
    train: { epochs: 1, batchSize: 4, optimizer: { name: 'sgd', lr: 0.01, momentum: 0, weightDecay: 0 } },
    ...over,
  });

const values = (m: LayersModel) => m.getWeights().map((t) => Array.from(t.dataSync()));
const expectClose = (a: number[][], b: number[][], digits: number) => a.forEach((row, i) => row.forEach((v, j) => expect(v).toBeCloseTo(b[i][j], digits)));

/** One stepper step: the run's student and critic weights before and after, the step's terms, and the batch. */
async function oneStep(spec: RunSpec, teacher: LayersModel) {
  const engine = new Engine(spec, { registry: registry(), models: new Map([['teacher', teacher]]) });
  const stepper = await engine.stepper();
  const student = (engine.roleRuntimes().get('student') as { model: LayersModel }).model;
  const critic = engine.playerRuntimes().get('critic')?.model;
  const before = { student: values(student), critic: critic ? values(critic) : [] };
  const r = stepper.step();
  const after = { student: values(student), critic: critic ? values(critic) : [] };
  engine.dispose();
  // The stepper's first batch: epoch 1's order of the run's seed.
  const idx = epochBatches(12, { batchSize: 4, seed: spec.seed, epoch: 1 })[0];
  return { before, after, terms: r.terms, idx };
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('loss/seg-adversarial in a run', () => {
  it("the student's term is −mean D(Q_s) and the critic's update is SGD on λ_d·WGAN-GP of the step's maps (before the student's update)", async () => {
    const teacher = buildSegmenter({ inputShape: shape, numClasses: 3, seed: 9, width: 2 }, 'segmenter-teacher', 2);
    const spec = segSpec({
      plugins: [{ use: 'loss/seg-cross-entropy' }, { use: 'loss/seg-adversarial', weight: 0.1 }],
      players: { critic: { options: { width: 2 }, train: { optimizer: { name: 'sgd', lr: 0.05, momentum: 0, weightDecay: 0 } } } },
    });
    const run = await oneStep(spec, teacher);
    // By hand: the student and the critic as the step found them, on the same batch.
    const student = buildSegmenter({ inputShape: shape, numClasses: 3, seed: 1, width: 2 }, 'copy', 2);
    student.setWeights(run.before.student.map((v, i) => tf.tensor(v, student.getWeights()[i].shape)));
    const critic = buildSegDiscriminator({ inputShape: [TINY, TINY, 3], width: 2, seed: 5 });
    critic.setWeights(run.before.critic.map((v, i) => tf.tensor(v, critic.getWeights()[i].shape)));
    const { x } = batchTensors(tinyScenes(12, 1, 'segmentation'), run.idx);
    const qs = student.predict(x) as tf.Tensor;
    const qt = teacher.predict(x) as tf.Tensor;
    // The plugin's generator (α of the penalty): the run's plugin stream forked for entry 1 (engine resolve.ts).
    const streams = new Rng(spec.seed ^ 0x2545f491);
    streams.fork(0);
    const rng = streams.fork(1);
    const vars = critic.trainableWeights.map((w) => w.read() as tf.Variable);
    const { value, grads } = tf.variableGrads(() => segAdversarialCritic(criticOf(critic), qs, qt, { rng, gpWeight: 10, weight: 0.1 }), vars);
    const criticAfter = vars.map((v) => Array.from(tf.sub(v, tf.mul(grads[v.name], 0.05)).dataSync()));
    const studentTerm = segAdversarialStudent(criticOf(critic), qs).dataSync()[0];

    expect(run.terms['loss/seg-adversarial']).toBeCloseTo(studentTerm, 5);
    expect(run.terms['player:critic']).toBeCloseTo(value.dataSync()[0], 5);
    expectClose(run.after.critic, criticAfter, 6);
    expect(run.after.critic).not.toEqual(run.before.critic);
    tf.dispose([x, qs, qt, value, ...Object.values(grads)]);
    [student, critic, teacher].forEach((m) => m.dispose());
  });
});

describe('loss/seg-cwd in a run', () => {
  it('its term is segCwd of the step\'s student and teacher logits at τ', async () => {
    const teacher = buildSegmenter({ inputShape: shape, numClasses: 3, seed: 9, width: 2 }, 'segmenter-teacher', 2);
    const spec = segSpec({ plugins: [{ use: 'loss/seg-cross-entropy' }, { use: 'loss/seg-cwd', weight: 3, with: { temperature: 4 } }] });
    const run = await oneStep(spec, teacher);
    const student = buildSegmenter({ inputShape: shape, numClasses: 3, seed: 1, width: 2 }, 'copy', 2);
    student.setWeights(run.before.student.map((v, i) => tf.tensor(v, student.getWeights()[i].shape)));
    const { x } = batchTensors(tinyScenes(12, 1, 'segmentation'), run.idx);
    const expected = tf.tidy(() => segCwd(student.predict(x) as tf.Tensor, teacher.predict(x) as tf.Tensor, { temperature: 4 }).dataSync()[0]);
    expect(run.terms['loss/seg-cwd']).toBeCloseTo(expected, 5);
    expect(expected).toBeGreaterThan(0);
    x.dispose();
    [student, teacher].forEach((m) => m.dispose());
  });
});
