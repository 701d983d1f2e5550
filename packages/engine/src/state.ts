import * as tf from '@tensorflow/tfjs-core';
import { KdError, type CostLedger, type Plugin, type RunSpec } from '@tfkd/kd-core';
import type { SelectedBackend } from './backend';
import type { OutputCache } from './cache';
import { checkSameSpec, specHash, type OptimizerState, type TensorData, type TrainingState } from './checkpoint';
import { sha256Hex } from './hash';
import type { ResolvedPlugin } from './resolve';
import type { RoleRuntime } from './roles';
import type { PlayerRuntime } from './players';
import type { Phase } from './stages';

/** What capturing and restoring a run's state reads and writes: the engine's parts, after `prepare()`. */
export interface RunParts {
  spec: RunSpec;
  phase: string;
  phases: Phase[];
  backend: SelectedBackend;
  roles: Map<string, RoleRuntime>;
  /** Players (spec `players:`); empty without. */
  players: Map<string, PlayerRuntime>;
  plugins: ResolvedPlugin[];
  instances: Plugin[];
  ledger: CostLedger;
  log(line: string): void;
}

export type StatePosition = Pick<TrainingState, 'next' | 'step' | 'skipped' | 'epochProgress' | 'history' | 'eval' | 'seconds' | 'dataset' | 'resumes' | 'stage'>;

const students = (parts: RunParts) => [...parts.roles.values()].filter((r) => r.info.kind === 'student');

/** The training state at a step boundary (what a checkpoint holds). */
export async function captureState(parts: RunParts, caches: Map<string, OutputCache> | undefined, at: StatePosition): Promise<TrainingState> {
  const roles: TrainingState['roles'] = [];
  for (const s of students(parts)) {
    roles.push({
      name: s.info.name,
      weights: s.model.weights.map((w) => tensorData(w.read(), w.name)),
      optimizer: s.optimizer ? await optimizerState(s.optimizer) : null,
    });
  }
  return {
    specHash: specHash(parts.spec),
    spec: parts.spec,
    phase: parts.phase,
    ...(at.stage !== undefined ? { stage: at.stage } : {}),
    backend: parts.backend.name,
    next: { ...at.next },
    step: at.step,
    skipped: at.skipped,
    epochProgress: at.epochProgress,
    history: at.history.map((h) => ({ ...h })),
    eval: structuredClone(at.eval),
    ledger: structuredClone(parts.ledger.getState()),
    seconds: at.seconds,
    dataset: { name: at.dataset.name, train: at.dataset.train, test: at.dataset.test },
    teachers: teacherFingerprints(parts),
    roles,
    players: await playerStates(parts),
    plugins: parts.instances.map((p, i) => ({
      name: p.name,
      variables: (p.variables?.() ?? []).map((v) => tensorData(v, v.name)),
      buffers: (p.buffers?.() ?? []).map((v) => tensorData(v, v.name)),
      ...(p.getState ? { state: p.getState() } : {}),
      rng: parts.plugins[i].rng.getState().map((v) => (Number.isNaN(v) ? null : v)),
    })),
    caches: [...(caches ?? new Map<string, OutputCache>()).entries()].map(([role, c]) => ({ role, ...c.state() })),
    resumes: at.resumes,
    createdAt: new Date().toISOString(),
  };
}

/** Everything that must equal the checkpoint's for a resumed run to continue the same run. */
export function checkResumable(parts: RunParts, state: TrainingState, dataset: { name: string; train: number; test: number }): void {
  checkSameSpec(parts.spec, state);
  if (state.phase !== parts.phase) {
    throw new KdError('KD_RESUME_MISMATCH', `the checkpoint is of phase '${state.phase}', this run is '${parts.phase}'`, { fix: 'resume a distillation checkpoint' });
  }
  if (!parts.phases.some((p) => p.name === (state.stage ?? parts.phase))) {
    throw new KdError('KD_RESUME_MISMATCH', `the checkpoint stopped in stage '${state.stage}', which this run does not declare`, {
      path: 'stages',
      fix: 'resume with the spec the run started with',
    });
  }
  if (state.dataset.train !== dataset.train || state.dataset.test !== dataset.test) {
    throw new KdError('KD_RESUME_MISMATCH', `the data has ${dataset.train} train / ${dataset.test} test samples, the checkpoint's had ${state.dataset.train} / ${state.dataset.test}`, {
      path: 'data',
      fix: 'resume on the data the run started with (the same data folder and options)',
    });
  }
  const prints = teacherFingerprints(parts);
  for (const [role, print] of Object.entries(state.teachers)) {
    if (prints[role] !== print) {
      throw new KdError('KD_RESUME_MISMATCH', `teacher '${role}' has other weights than when the checkpoint was written (fingerprint ${prints[role] ?? 'none'} vs ${print})`, {
        path: role,
        fix: 'resume with the same teacher: the same `load:` folder, or the same teacher cache (--cache-dir) the run started with',
      });
    }
  }
  checkPlayers(parts, state);
  if (state.backend !== parts.backend.name) {
    parts.log(`note: the checkpoint was written on ${state.backend}, this run uses ${parts.backend.name}: the continuation is not bit-identical to an uninterrupted run`);
  }
}

/**
 * Restore students' weights, plugin tensors, state and generators, ledger and teacher caches. The
 * optimizers belong to the phase the checkpoint stopped in: `restoreOptimizers` once it has them.
 */
export function restoreState(parts: RunParts, state: TrainingState, caches: Map<string, OutputCache>): void {
  const mismatch = checkpointMismatch;
  for (const s of students(parts)) {
    const saved = state.roles.find((r) => r.name === s.info.name);
    if (!saved) throw mismatch(`no saved weights for role '${s.info.name}'`);
    assignAll(s.model.weights.map((w) => w.read() as tf.Variable), saved.weights, `role '${s.info.name}'`, mismatch);
  }
  for (const p of parts.players.values()) {
    const saved = state.players.find((x) => x.name === p.info.name);
    if (!saved) throw mismatch(`no saved weights for player '${p.info.name}'`);
    assignAll(p.model.weights.map((w) => w.read() as tf.Variable), saved.weights, `player '${p.info.name}'`, mismatch);
  }
  if (state.plugins.length !== parts.instances.length) throw mismatch(`${state.plugins.length} plugins saved, the run has ${parts.instances.length}`);
  parts.instances.forEach((p, i) => {
    const saved = state.plugins[i];
    if (saved.name !== p.name) throw mismatch(`plugin ${i} is '${p.name}', the checkpoint's '${saved.name}'`);
    assignAll(p.variables?.() ?? [], saved.variables, `plugin '${p.name}' variables`, mismatch);
    assignAll(p.buffers?.() ?? [], saved.buffers, `plugin '${p.name}' buffers`, mismatch);
    if (saved.state !== undefined) p.setState?.(saved.state);
    parts.plugins[i].rng.setState(saved.rng.map((v) => (v === null ? NaN : v)));
  });
  parts.ledger.setState(state.ledger);
  for (const c of state.caches) caches.get(c.role)?.restore(c);
}

export async function restoreOptimizers(parts: RunParts, state: TrainingState): Promise<void> {
  for (const s of students(parts)) {
    const saved = state.roles.find((r) => r.name === s.info.name);
    if (s.optimizer && saved?.optimizer) await restoreOptimizer(s.optimizer, saved.optimizer, `role '${s.info.name}'`, checkpointMismatch);
  }
  for (const p of parts.players.values()) {
    const saved = state.players.find((x) => x.name === p.info.name);
    if (p.optimizer && saved?.optimizer) await restoreOptimizer(p.optimizer, saved.optimizer, `player '${p.info.name}'`, checkpointMismatch);
  }
}

/** Every player's weights (all of `model.weights`) and its optimizer's state (the phase's). */
async function playerStates(parts: RunParts): Promise<TrainingState['players']> {
  const out: TrainingState['players'] = [];
  for (const p of parts.players.values()) {
    out.push({ name: p.info.name, weights: p.model.weights.map((w) => tensorData(w.read(), w.name)), optimizer: p.optimizer ? await optimizerState(p.optimizer) : null });
  }
  return out;
}

/** The checkpoint's players must be this run's, by name and by the shapes of their weights. */
function checkPlayers(parts: RunParts, state: TrainingState): void {
  const here = [...parts.players.keys()];
  const saved = state.players.map((p) => p.name);
  if (here.join() !== saved.join()) {
    throw new KdError('KD_RESUME_MISMATCH', `the run has the players ${here.map((n) => `'${n}'`).join(', ') || '(none)'}, the checkpoint ${saved.map((n) => `'${n}'`).join(', ') || '(none)'}`, {
      path: 'players',
      fix: 'resume with the spec (and package versions) the run started with',
    });
  }
  for (const p of parts.players.values()) {
    const s = state.players.find((x) => x.name === p.info.name) as TrainingState['players'][number];
    const shapes = p.model.weights.map((w) => `[${w.shape}]`).join(' ');
    const savedShapes = s.weights.map((w) => `[${w.shape}]`).join(' ');
    if (shapes !== savedShapes) {
      throw new KdError('KD_RESUME_MISMATCH', `player '${p.info.name}' has weights ${shapes}, the checkpoint's ${savedShapes}`, {
        path: p.specPath,
        fix: "resume with the spec and the package versions the run started with (the player's model is built by its plugin)",
      });
    }
  }
}

const fingerprints = new WeakMap<RunParts['roles'], Record<string, string>>();

/** sha256 (16 hex) of each teacher's weights, computed once per run. */
export function teacherFingerprints(parts: RunParts): Record<string, string> {
  let prints = fingerprints.get(parts.roles);
  if (!prints) {
    prints = {};
    for (const t of [...parts.roles.values()].filter((r) => r.info.kind === 'teacher')) {
      const bytes = t.model.weights.map((w) => {
        const v = w.read().dataSync();
        return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      });
      prints[t.info.name] = sha256Hex(...bytes).slice(0, 16);
    }
    fingerprints.set(parts.roles, prints);
  }
  return prints;
}

function checkpointMismatch(what: string): KdError {
  return new KdError('KD_CHECKPOINT_INVALID', `the checkpoint does not fit this run: ${what}`, {
    path: 'checkpoint',
    fix: 'resume with the package versions that wrote the checkpoint, or start a new run without --resume',
  });
}

/** A copy of a tensor's values for a checkpoint. */
function tensorData(t: tf.Tensor, name: string): TensorData {
  if (t.dtype !== 'float32' && t.dtype !== 'int32') throw new KdError('KD_INTERNAL', `checkpoint: tensor '${name}' has dtype ${t.dtype}`);
  const v = t.dataSync();
  return { name, dtype: t.dtype, shape: [...t.shape], values: t.dtype === 'int32' ? Int32Array.from(v) : Float32Array.from(v) };
}

/** Assign saved values to variables, by position, shapes checked. */
function assignAll(vars: readonly tf.Variable[], saved: readonly TensorData[], what: string, mismatch: (w: string) => Error): void {
  if (vars.length !== saved.length) throw mismatch(`${what}: ${vars.length} tensors here, ${saved.length} saved`);
  vars.forEach((v, i) => {
    const s = saved[i];
    if (v.shape.join(',') !== s.shape.join(',')) throw mismatch(`${what}: tensor ${i} (${v.name}) is [${v.shape}], saved [${s.shape}]`);
    tf.tidy(() => v.assign(tf.tensor(s.values, s.shape, s.dtype)));
  });
}

/** The tfjs optimizer's slots (getWeights) and, for Adam, its running β powers. */
async function optimizerState(opt: tf.Optimizer): Promise<OptimizerState> {
  const [iter, ...slots] = await opt.getWeights();
  const iterations = iter.tensor.dataSync()[0];
  iter.tensor.dispose();
  const adam = opt as unknown as { accBeta1?: tf.Variable; accBeta2?: tf.Variable };
  return {
    kind: opt.getClassName(),
    iterations,
    slots: slots.map((s) => tensorData(s.tensor, s.name)),
    ...(adam.accBeta1 && adam.accBeta2 ? { accBeta: [adam.accBeta1.dataSync()[0], adam.accBeta2.dataSync()[0]] as [number, number] } : {}),
  };
}

async function restoreOptimizer(opt: tf.Optimizer, saved: OptimizerState, what: string, mismatch: (w: string) => Error): Promise<void> {
  if (opt.getClassName() !== saved.kind) throw mismatch(`${what}: the optimizer is ${opt.getClassName()}, the checkpoint's ${saved.kind}`);
  const tensors = [tf.scalar(saved.iterations, 'int32'), ...saved.slots.map((s) => tf.tensor(s.values, s.shape, s.dtype))];
  await opt.setWeights(tensors.map((tensor, i) => ({ name: i === 0 ? 'iter' : saved.slots[i - 1].name, tensor })));
  // setWeights made variables of them (sharing the data); the tensors themselves are no longer needed.
  tensors.forEach((t) => t.dispose());
  const adam = opt as unknown as { accBeta1?: tf.Variable; accBeta2?: tf.Variable };
  if (saved.accBeta && adam.accBeta1 && adam.accBeta2) {
    const [b1, b2] = saved.accBeta;
    tf.tidy(() => {
      adam.accBeta1?.assign(tf.scalar(b1));
      adam.accBeta2?.assign(tf.scalar(b2));
    });
  }
}
