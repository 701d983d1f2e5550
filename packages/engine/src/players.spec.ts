import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import '@tensorflow/tfjs-backend-cpu';
import { z } from 'zod';
import { batchTensors, defineLoss, epochBatches, isKdError, type KdError, RunSpec, type RunSpecInput, validate } from '@tfkd/kd-core';
import { blobSplits, denseModel, testModelTools, testModule } from '@tfkd/kd-core/testing';
import type { TrainingState } from './checkpoint';
import { Engine, type RunResult } from './engine';
import { readCheckpoint, writeCheckpoint } from './node/checkpoint-files';
import { planRun } from './plan';
import { Registry } from './registry';

// Players (spec `players:`) through the engine: a student and a linear critic on its logits (WGAN-GP
// holistic KD in miniature). One step against the same computation by hand (the critic's gradient in
// closed form), the gradients kept apart, several critic steps per student step, resume mid-epoch bit
// for bit, memory, and the plan-time errors.

const EPS = 1e-12;

/** WGAN-GP on logits with a linear critic D(z) = z·w (test fixture): the student raises D(z_s), the critic separates z_t from z_s. */
const criticKd = defineLoss({
  id: 'test/critic-kd',
  describe: 'holistic KD on logits with a linear critic player (test fixture)',
  options: z
    .object({
      critic: z.string().default('critic'),
      gp: z.number().min(0).default(1),
      /** Multiplies the critic's objective only. */
      scale: z.number().default(1),
    })
    .strict(),
  requires: (o) => ({ roles: ['student', 'teacher'], players: [o.critic] }),
  player: {
    role: (o) => o.critic,
    options: z.object({ bias: z.boolean().default(false) }).strict(),
    build: (_o, deps, p) =>
      tfl.sequential({
        name: p.name,
        layers: [
          tfl.layers.dense({
            units: 1,
            inputShape: [deps.numClasses],
            useBias: (p.options as { bias: boolean }).bias,
            kernelInitializer: tfl.initializers.glorotUniform({ seed: p.seed }),
            name: 'score',
          }),
        ],
      }),
    compute(ctx, o) {
      const d = ctx.player(o.critic);
      const s = ctx.outputs('student').logits;
      const t = ctx.outputs('teacher').logits;
      const n = s.shape[0] as number;
      const alpha = tf.tensor2d(Array.from({ length: n }, () => ctx.rng.next()), [n, 1]);
      const xhat = tf.add(tf.mul(alpha, t), tf.mul(tf.sub(1, alpha), s));
      const g = tf.grad((x: tf.Tensor) => tf.sum(d(x)))(xhat);
      const norm = tf.sqrt(tf.add(tf.sum(tf.square(g), 1), EPS));
      const gp = tf.mean(tf.square(tf.sub(norm, 1)));
      return tf.mul(tf.add(tf.sub(tf.mean(d(s)), tf.mean(d(t))), tf.mul(gp, o.gp)), o.scale) as tf.Scalar;
    },
  },
  compute: (ctx, o) => tf.neg(tf.mean(ctx.player(o.critic)(ctx.outputs('student').logits))) as tf.Scalar,
});

const SPEC_DIR = '/virtual-kd-players-spec';
const registry = () => new Registry([testModule(criticKd)]);

function spec(over: Partial<RunSpecInput> = {}, critic: Record<string, unknown> = {}): RunSpec {
  return RunSpec.parse({
    seed: 3,
    backend: 'cpu',
    data: { name: 'blobs', train: 16, test: 8 },
    teacher: { load: 'teacher' },
    student: { model: 'test-dense' },
    train: { epochs: 1, batchSize: 8, optimizer: { name: 'sgd', lr: 0.05, momentum: 0, weightDecay: 0 } },
    plugins: [{ use: 'test/ce' }, { use: 'test/critic-kd', weight: 0.5 }],
    players: { critic: { train: { optimizer: { name: 'sgd', lr: 0.1, momentum: 0, weightDecay: 0 } }, ...critic } },
    ...over,
  });
}

const values = (m: tfl.LayersModel) => m.getWeights().map((t) => Array.from(t.dataSync()));

/** One step through the engine: the student's and the critic's weights before and after, and the step's terms. */
async function oneStep(s: RunSpec) {
  const engine = new Engine(s, { registry: registry(), specDir: SPEC_DIR, cacheDir: null });
  try {
    const stepper = await engine.stepper();
    const student = (engine.roleRuntimes().get('student') as { model: tfl.LayersModel }).model;
    const teacher = (engine.roleRuntimes().get('teacher') as { model: tfl.LayersModel }).model;
    const critic = (engine.playerRuntimes().get('critic') as { model: tfl.LayersModel }).model;
    const before = { student: values(student), critic: values(critic) };
    const r = stepper.step();
    return { before, after: { student: values(student), critic: values(critic) }, terms: r.terms, loss: r.loss, studentModel: student, teacher, engine };
  } catch (e) {
    engine.dispose();
    throw e;
  }
}

/** The step's batch (the stepper's first: epoch 1's order of the run's seed) and the teacher's logits on it, as arrays. */
function firstBatch(s: RunSpec, teacher: tfl.LayersModel) {
  const data = blobSplits(7, 16, 8).train;
  const idx = epochBatches(16, { batchSize: 8, seed: s.seed, epoch: 1 })[0];
  return tf.tidy(() => {
    const { x, y } = batchTensors(data, idx);
    return { x: tf.keep(x), y: tf.keep(y), t: Array.from((teacher.predict(x) as tf.Tensor).dataSync()) };
  });
}

/** The critic's objective and its gradient in closed form (linear critic: ∇ₓD = w for every x̂, so the penalty is (‖w‖ − 1)²). */
function criticByHand(w: number[], zs: number[], zt: number[], k: number, gp: number, scale: number) {
  const n = zs.length / k;
  const mean = (z: number[]) => w.map((_, j) => z.filter((_, i) => i % k === j).reduce((a, b) => a + b, 0) / n);
  const [ms, mt] = [mean(zs), mean(zt)];
  const dot = (a: number[]) => a.reduce((acc, v, j) => acc + v * w[j], 0);
  const rho = Math.sqrt(w.reduce((a, v) => a + v * v, 0) + EPS);
  const value = scale * (dot(ms) - dot(mt) + gp * (rho - 1) ** 2);
  const grad = w.map((wj, j) => scale * (ms[j] - mt[j] + gp * 2 * (rho - 1) * (wj / rho)));
  return { value, grad };
}

const expectClose = (a: number[][], b: number[][], digits = 6) =>
  a.forEach((row, i) => row.forEach((v, j) => expect(v).toBeCloseTo(b[i][j], digits)));

beforeAll(async () => {
  await tf.setBackend('cpu');
  await testModelTools.save(denseModel({ inputShape: [4, 4, 1], numClasses: 3, seed: 11, hidden: 16 }), path.resolve(SPEC_DIR, 'teacher'));
});

describe('a player step', () => {
  it("updates the student and the critic as computed by hand: the student's step, then the critic's on the same forward's logits", async () => {
    const s = spec({}, { options: { bias: false } });
    const run = await oneStep(s);
    try {
      const { x, y, t } = firstBatch(s, run.teacher);
      // The student by hand: a copy with the step's starting weights, CE + 0.5·(−mean D(z_s)), SGD 0.05.
      const copy = denseModel({ inputShape: [4, 4, 1], numClasses: 3, hidden: 8 });
      copy.setWeights(run.before.student.map((v, i) => tf.tensor(v, copy.getWeights()[i].shape)));
      const w0 = run.before.critic[0];
      const wc = tf.tensor2d(w0, [3, 1]);
      const zs = Array.from(tf.tidy(() => (copy.predict(x) as tf.Tensor).dataSync()));
      const { grads } = tf.variableGrads(() => {
        const z = copy.apply(x, { training: true }) as tf.Tensor;
        const ce = tf.neg(tf.mean(tf.sum(tf.mul(tf.logSoftmax(z), tf.oneHot(y as tf.Tensor1D, 3)), 1)));
        return tf.add(ce, tf.mul(tf.neg(tf.mean(tf.matMul(z, wc))), 0.5)) as tf.Scalar;
      }, copy.trainableWeights.map((v) => v.read() as tf.Variable));
      const studentAfter = copy.trainableWeights.map((v) => Array.from(tf.sub(v.read(), tf.mul(grads[(v.read() as tf.Variable).name], 0.05)).dataSync()));
      expectClose(run.after.student, studentAfter);

      // The critic by hand: its closed-form gradient at the logits of the student BEFORE its update.
      const critic = criticByHand(w0, zs, t, 3, 1, 1);
      expectClose(run.after.critic, [w0.map((v, j) => v - 0.1 * critic.grad[j])]);
      expect(run.terms['player:critic']).toBeCloseTo(critic.value, 5);
      expect(run.terms['test/critic-kd']).toBeCloseTo(-zs.reduce((a, v, i) => a + v * w0[i % 3], 0) / 8, 5);
      // the critic's objective is not part of the students' loss
      expect(run.loss).toBeCloseTo(run.terms['test/ce'] + 0.5 * run.terms['test/critic-kd'], 5);
      tf.dispose([x, y, wc, ...Object.values(grads)]);
      copy.dispose();
    } finally {
      run.engine.dispose();
    }
  });

  it("keeps the gradients apart: the critic's objective never moves the student, the student's term never moves the critic (bit for bit)", async () => {
    const base = await oneStep(spec());
    // ×1000 on the critic's objective: the student's update is the same; the critic's is not.
    const loudCritic = await oneStep(spec({ plugins: [{ use: 'test/ce' }, { use: 'test/critic-kd', weight: 0.5, with: { scale: 1000 } }] }));
    // ×100 on the students' adversarial term: the critic's update is the same; the student's is not.
    const loudStudent = await oneStep(spec({ plugins: [{ use: 'test/ce' }, { use: 'test/critic-kd', weight: 50 }] }));
    try {
      expect(loudCritic.before).toEqual(base.before);
      expect(loudCritic.after.student).toEqual(base.after.student);
      expect(loudCritic.after.critic).not.toEqual(base.after.critic);
      expect(loudStudent.after.critic).toEqual(base.after.critic);
      expect(loudStudent.after.student).not.toEqual(base.after.student);
      // the critic moved in every run
      expect(base.after.critic).not.toEqual(base.before.critic);
    } finally {
      [base, loudCritic, loudStudent].forEach((r) => r.engine.dispose());
    }
  });

  it('stepsPerStudentStep: 2 is two critic steps (momentum 0.9) on the same logits, a fresh objective each', async () => {
    const s = spec({}, { stepsPerStudentStep: 2, train: { optimizer: { name: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 0.01 } } });
    const run = await oneStep(s);
    try {
      const { x, y, t } = firstBatch(s, run.teacher);
      const copy = denseModel({ inputShape: [4, 4, 1], numClasses: 3, hidden: 8 });
      copy.setWeights(run.before.student.map((v, i) => tf.tensor(v, copy.getWeights()[i].shape)));
      const zs = Array.from(tf.tidy(() => (copy.predict(x) as tf.Tensor).dataSync()));
      // tfjs Momentum: v ← μ·v + (g + λ·w); w ← w − lr·v
      let w = run.before.critic[0];
      let v = w.map(() => 0);
      const objective: number[] = [];
      for (let k = 0; k < 2; k++) {
        const c = criticByHand(w, zs, t, 3, 1, 1);
        objective.push(c.value);
        v = v.map((vj, j) => 0.9 * vj + c.grad[j] + 0.01 * w[j]);
        w = w.map((wj, j) => wj - 0.1 * v[j]);
      }
      expectClose(run.after.critic, [w]);
      expect(run.terms['player:critic']).toBeCloseTo((objective[0] + objective[1]) / 2, 5);
      expect(run.engine.ledger.snapshot().roles.critic.backwardImages).toBe(8 + 2 * 8);
      tf.dispose([x, y]);
      copy.dispose();
    } finally {
      run.engine.dispose();
    }
  });

  it('leaks no tensor: numTensors after step 5 equals numTensors after step 30', async () => {
    const engine = new Engine(spec({ data: { name: 'blobs', train: 64, test: 8 } }, { stepsPerStudentStep: 2 }), { registry: registry(), specDir: SPEC_DIR, cacheDir: null });
    try {
      const stepper = await engine.stepper();
      const counts: number[] = [];
      for (let i = 0; i < 30; i++) {
        const r = stepper.step();
        expect(Number.isFinite(r.terms['player:critic'])).toBe(true);
        counts.push(tf.memory().numTensors);
      }
      expect(counts[29]).toBe(counts[4]);
    } finally {
      engine.dispose();
    }
  });
});

describe('checkpoint and resume with a player', () => {
  let tmp: string;
  beforeEach(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-players-'))));
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  // 44 samples in batches of 8: 6 steps an epoch, 3 epochs; the critic on Adam, 2 steps per student step.
  const s = spec(
    {
      data: { name: 'blobs', train: 44, test: 24 },
      train: { epochs: 3, batchSize: 8, optimizer: { name: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 1e-3 }, schedule: { name: 'cosine' } },
    },
    { stepsPerStudentStep: 2, train: { optimizer: { name: 'adam', lr: 0.01, weightDecay: 1e-4 }, schedule: { name: 'step', milestones: [2] } } },
  );

  async function run(opts: { stopAfter?: number; resume?: TrainingState } = {}) {
    let calls = 0;
    const checkpoints: TrainingState[] = [];
    const engine = new Engine(s, {
      registry: registry(),
      specDir: SPEC_DIR,
      cacheDir: null,
      resume: opts.resume,
      onCheckpoint: (c) => void checkpoints.push(c),
      shouldStop: opts.stopAfter === undefined ? undefined : () => ++calls > (opts.stopAfter as number),
    });
    try {
      const result = await engine.run();
      const weights = (role: string) => values(result.models.get(role) as tfl.LayersModel);
      return { result, student: weights('student'), critic: weights('critic'), checkpoints };
    } finally {
      engine.dispose();
    }
  }
  const comparable = (r: RunResult) => ({ eval: r.eval, history: r.history.map(({ seconds: _s, ...h }) => h), ledger: r.ledger.roles });

  it('stopping mid-epoch and resuming gives the run in one go, bit for bit (student, critic, its Adam state, history, ledger)', async () => {
    const whole = await run();
    expect(whole.result.players).toEqual(['critic']);
    expect(whole.result.history.every((h) => Number.isFinite(h.train['player:critic']))).toBe(true);
    const first = await run({ stopAfter: 8 });
    expect(first.result.stoppedAt).toEqual({ epoch: 2, batchIndex: 2, step: 8 });
    const stop = first.checkpoints[first.checkpoints.length - 1];
    expect(stop.players.map((p) => [p.name, p.optimizer?.kind, p.optimizer?.iterations])).toEqual([['critic', 'Adam', 16]]);
    const dir = path.join(tmp, 'checkpoint');
    writeCheckpoint(dir, stop);
    const rest = await run({ resume: readCheckpoint(dir) });
    expect(rest.result.resumedFrom).toEqual({ epoch: 2, batchIndex: 2, step: 8 });
    expect(comparable(rest.result)).toEqual(comparable(whole.result));
    expect(rest.student).toEqual(whole.student);
    expect(rest.critic).toEqual(whole.critic);
    expect(rest.critic).not.toEqual(first.critic);
  });

  it('a checkpoint of version 1 (before players) reads with players: []', async () => {
    const plain = RunSpec.parse({ ...s, players: undefined, plugins: [{ use: 'test/ce' }] });
    const engine = new Engine(plain, { registry: registry(), specDir: SPEC_DIR, cacheDir: null, onCheckpoint: (c) => void writeCheckpoint(path.join(tmp, 'checkpoint'), c) });
    try {
      await engine.run();
    } finally {
      engine.dispose();
    }
    const file = path.join(tmp, 'checkpoint', 'checkpoint.json');
    const json = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect(json.version).toBe(2);
    expect(json.players).toEqual([]);
    delete json.players;
    fs.writeFileSync(file, JSON.stringify({ ...json, version: 1 }));
    expect(readCheckpoint(path.join(tmp, 'checkpoint')).players).toEqual([]);
  });

  it('refuses a checkpoint whose players differ (KD_RESUME_MISMATCH)', async () => {
    const first = await run({ stopAfter: 2 });
    const state = first.checkpoints[first.checkpoints.length - 1];
    const engine = new Engine(s, { registry: registry(), specDir: SPEC_DIR, cacheDir: null, resume: { ...state, players: [] } });
    try {
      const e = (await engine.run().then(() => null, (x: unknown) => x)) as KdError;
      expect([e.code, e.path]).toEqual(['KD_RESUME_MISMATCH', 'players']);
    } finally {
      engine.dispose();
    }
  });
});

describe('players: errors at plan time', () => {
  const planError = async (raw: RunSpecInput): Promise<KdError> => {
    const plan = async () => planRun(validate(RunSpec, raw), { registry: registry(), specDir: SPEC_DIR, cacheDir: null });
    const e = await plan().then(
      () => null,
      (x: unknown) => x,
    );
    if (!isKdError(e)) throw new Error(`expected a KdError, got ${String(e)}`);
    return e as KdError;
  };
  const raw = (over: Partial<RunSpecInput>): RunSpecInput => ({ ...(spec() as RunSpecInput), ...over });

  it.each([
    ['a player nobody trains', raw({ plugins: [{ use: 'test/ce' }] }), 'KD_SPEC_INVALID', 'players.critic', /trained by no plugin/],
    ['a plugin needing a player the spec lacks', raw({ players: undefined }), 'KD_PLUGIN_DEPENDENCY', 'plugins[1].with.critic', /needs the player 'critic'/],
    [
      'a plugin naming another player than the one declared',
      raw({ plugins: [{ use: 'test/ce' }, { use: 'test/critic-kd', with: { critic: 'judge' } }] }),
      'KD_PLUGIN_DEPENDENCY',
      'plugins[1].with.critic',
      /only 'critic'/,
    ],
    [
      'two plugins training one player',
      raw({ plugins: [{ use: 'test/critic-kd' }, { use: 'test/critic-kd', name: 'second' }] }),
      'KD_SPEC_INVALID',
      'plugins[1].with.critic',
      /trained by 'test\/critic-kd'/,
    ],
    ['a player named as a role', raw({ players: { student: {} }, plugins: [{ use: 'test/critic-kd', with: { critic: 'student' } }] }), 'KD_SPEC_INVALID', 'players.student', /role's name/],
    ["options the player's builder does not take", raw({ players: { critic: { options: { bias: 1 } } } }), 'KD_PLUGIN_OPTIONS', 'players.critic.options.bias', /./],
    ['DOT for a player', raw({ players: { critic: { train: { optimizer: { name: 'dot' } } } } }), 'KD_SPEC_INVALID', 'players.critic.train.optimizer.name', /one objective/],
    ['no player steps', raw({ players: { critic: { stepsPerStudentStep: 0 } } }), 'KD_SPEC_INVALID', 'players.critic.stepsPerStudentStep', /./],
  ])('%s', async (_what, r, code, at, message) => {
    const e = await planError(r);
    expect([e.code, e.path]).toEqual([code, at]);
    expect(e.message).toMatch(message);
    expect(e.fix?.length).toBeGreaterThan(0);
  });
});
