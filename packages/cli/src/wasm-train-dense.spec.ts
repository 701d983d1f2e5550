import * as tf from '@tensorflow/tfjs-core';
import { type Engine, planRun, startPlan } from '@tfkd/engine';
import { RunSpec, supportedTasks, type RunSpecInput, type Task } from '@tfkd/kd-core';
import { defaultRegistry } from './modules';
import { relErr } from './__fixtures__/rel-err';

// Issue: every dense loss (`task: detection | segmentation`, @tfkd/dense) trains on wasm like on cpu,
// as wasm-train.spec.ts checks for the classification losses. One step on each backend from the same
// seed and batch must give the same step terms (the loss, each named term, the critic's objective)
// and the same updated weights of everything the step trains: the student, the plugin's adapters
// (feature imitation, CWD on features) and the players (the adversarial critic) — within 1e-4, as
// there; and, since a small term barely moves the weights, the same update (after − before).
// Tiny: two 32×32 fashion-scenes of two items each (small and large: both detector levels get
// objects), batch 2, width-2 students, width-4 teachers trained one step from labels.
jest.setTimeout(300_000);

type Dense = Exclude<Task, 'classification'>;
/** Per owner (`student`, `player:critic`, `<plugin>.variables`): its weights, flat. */
type Weights = Record<string, Float32Array>;

// The cpu route of the detectors' nearest up-sampling gradient is @tfkd/engine's corrected kernel
// (cpu-kernels.ts, registered when the engine starts the cpu backend): the stock tfjs-backend-cpu 4.22
// kernel sums the wrong part of dy from the second image of a batch on.

const flat = (ws: readonly tf.Tensor[]): Float32Array =>
  tf.tidy(() => tf.concat(ws.map((w) => tf.reshape(w, [-1]))).dataSync() as Float32Array);

/** What a step trains, per owner: every student, every player, every plugin's variables (adapters). */
function trained(engine: Engine): Weights {
  const out: Weights = {};
  for (const [name, r] of engine.roleRuntimes())
    if (r.info.kind === 'student') out[name] = flat(r.model.getWeights());
  for (const [name, p] of engine.playerRuntimes()) out[`player:${name}`] = flat(p.model.getWeights());
  for (const p of engine.pluginInstances()) {
    const vars = p.plugin.variables?.() ?? [];
    if (vars.length > 0) out[`${p.name}.variables`] = flat(vars);
  }
  return out;
}

async function oneStep(
  backend: 'cpu' | 'wasm',
  task: Dense,
  over: Partial<RunSpecInput>,
  lr: number,
): Promise<{ terms: Record<string, number>; before: Weights; after: Weights }> {
  const spec = RunSpec.parse({
    seed: 5,
    backend,
    task,
    data: {
      name: 'fashion-scenes',
      subset: true,
      train: 2,
      test: 2,
      size: 32,
      items: [2, 2],
      scale: [0.5, 1.1],
      seed: 3,
    },
    student: {
      model: task === 'detection' ? 'detector-student' : 'segmenter-student',
      options: { width: 2 },
    },
    train: { epochs: 1, batchSize: 2, optimizer: { name: 'sgd', lr, momentum: 0, weightDecay: 0 } },
    eval: [task === 'detection' ? 'map' : 'miou'],
    ...over,
  });
  const registry = defaultRegistry();
  const engine = await startPlan(await planRun(spec, { registry, cacheDir: null }), { registry });
  try {
    const before = trained(engine);
    const r = await engine.run();
    return { terms: r.history[0].train, before, after: trained(engine) };
  } finally {
    engine.dispose();
  }
}

const maxAbs = (a: Float32Array): number => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
const minus = (a: Float32Array, b: Float32Array): Float32Array => a.map((v, i) => v - b[i]);

describe('every dense loss trains on wasm like on cpu', () => {
  const teacher = (task: Dense) => ({
    model: task === 'detection' ? 'detector-teacher' : 'segmenter-teacher',
    options: { width: 4 },
    seed: 2,
    train: { epochs: 1 },
  });
  // Per-loss spec pieces; a loss missing here runs alone with a teacher at lr 0.05. The lr is raised
  // where the terms are small, so that each owner's update is ≥ 1e-3 of its weights: then the 1e-4
  // on the weights says something of the update, which is also compared on its own (`updateTol`).
  const cases: Record<
    string,
    {
      teacher?: false;
      with?: Record<string, unknown>;
      players?: RunSpecInput['players'];
      lr?: number;
      updateTol?: number;
    }
  > = {
    'loss/detection': { teacher: false, lr: 0.2 },
    'loss/seg-cross-entropy': { teacher: false },
    // both neck levels (8×8 and 4×4), 1×1 adapters from the student's 8 to the teacher's 16 channels
    'loss/det-feature-imitation': {
      with: {
        pairs: [
          ['student.p3', 'teacher.p3'],
          ['student.p4', 'teacher.p4'],
        ],
      },
    },
    'loss/det-localization': { lr: 10 },
    'loss/det-logit-kd': { lr: 10 },
    'loss/seg-pixel-kd': { lr: 0.5 },
    'loss/seg-pairwise': { with: { pairs: [['student.enc3', 'teacher.enc3']] } },
    // On features of different widths (enc2: 4 vs 8 channels): a 1×1 adapter trained with the student.
    // Its bias's exact gradient is 0 (a softmax over the locations: Σ (q − p) = 0), so that update is
    // rounding; and wasm's native Sum over the innermost axis (the softmax's and the KL's sums)
    // accumulates in float32 where cpu's adds in float64. Measured: the adapters' update differs by
    // 1.2e-3 of its largest entry, the student's by 1.4e-4; the loss, a KL of near-equal
    // distributions × τ², by 3.3e-4 of itself (1.4e-6 absolute). Weights and loss: within 1e-4.
    'loss/seg-cwd': { with: { pairs: [['student.enc2', 'teacher.enc2']] }, lr: 2, updateTol: 1e-2 },
    // the critic player, on its own SGD with momentum and weight decay (the reference's optimiser)
    'loss/seg-adversarial': {
      players: {
        critic: {
          options: { width: 2 },
          train: { optimizer: { name: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 1e-4 } },
        },
      },
    },
  };
  const ids = defaultRegistry()
    .plugins()
    .filter((d) => d.kind === 'loss' && supportedTasks(d).some((t) => t !== 'classification'))
    .map((d) => ({ id: d.id, task: supportedTasks(d).find((t) => t !== 'classification') as Dense }));

  it('covers the detection and segmentation losses of @tfkd/dense', () => {
    expect(ids.map((x) => x.id).sort()).toEqual(
      [
        'loss/detection',
        'loss/det-feature-imitation',
        'loss/det-bounded-regression',
        'loss/det-localization',
        'loss/det-logit-kd',
        'loss/seg-cross-entropy',
        'loss/seg-pixel-kd',
        'loss/seg-pairwise',
        'loss/seg-cwd',
        'loss/seg-adversarial',
      ].sort(),
    );
  });

  it.each(ids)('$id', async ({ id, task }) => {
    const c = cases[id] ?? {};
    const over: Partial<RunSpecInput> = {
      ...(c.teacher === false ? {} : { teacher: teacher(task) }),
      ...(c.players ? { players: c.players } : {}),
      plugins: [{ use: id, with: c.with ?? {} }],
    };
    const cpu = await oneStep('cpu', task, over, c.lr ?? 0.05);
    const wasm = await oneStep('wasm', task, over, c.lr ?? 0.05);
    expect(Object.keys(wasm.terms).sort()).toEqual(Object.keys(cpu.terms).sort());
    expect(Object.keys(wasm.after).sort()).toEqual(Object.keys(cpu.after).sort());
    if (id === 'loss/seg-adversarial') expect(Object.keys(cpu.after)).toContain('player:critic');
    if (c.with?.pairs && id !== 'loss/seg-pairwise')
      expect(Object.keys(cpu.after)).toContain(`${id}.variables`);
    // Each comparison is [what, measured, bound]; the ones over their bound fail the test, by name.
    const failed: [string, number, number][] = [];
    const check = (what: string, measured: number, bound: number) => {
      if (!(measured < bound)) failed.push([what, measured, bound]);
    };
    for (const [k, v] of Object.entries(cpu.terms)) {
      check(
        `term ${k}: |wasm − cpu| / max(1, |cpu|)`,
        Math.abs(wasm.terms[k] - v) / Math.max(1, Math.abs(v)),
        1e-4,
      );
    }
    for (const [k, w] of Object.entries(cpu.after)) {
      const update = minus(w, cpu.before[k]);
      check(
        `${k}: initial weights, wasm vs cpu (equal)`,
        relErr(wasm.before[k], cpu.before[k], 1e-30),
        Number.MIN_VALUE,
      );
      check(`${k}: updated weights, wasm vs cpu`, relErr(wasm.after[k], w, 1e-30), 1e-4);
      check(
        `${k}: the update, wasm vs cpu`,
        relErr(minus(wasm.after[k], wasm.before[k]), update, 1e-30),
        c.updateTol ?? 1e-4,
      );
      check(
        `${k}: max |weight| / max |update| (the update is ≥ 1e-3 of the weights)`,
        maxAbs(cpu.before[k]) / maxAbs(update),
        1e3,
      );
    }
    expect(failed).toEqual([]);
    expect([...Object.values(cpu.terms), ...Object.values(wasm.terms)].every(Number.isFinite)).toBe(true);
  });
});
