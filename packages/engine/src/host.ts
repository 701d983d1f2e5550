import * as tf from '@tensorflow/tfjs-core';
import { KdError, makeOptimizer, Rng, TrainSpec, type DataSplits } from '@tfkd/kd-core';
import { outputCaches, type OutputCache } from './cache';
import { pluginObjectives } from './objectives';
import { playerSteps } from './players';
import type { RunParts } from './state';
import { layersUpTo, variablesOf, type Phase } from './stages';
import type { LifecycleBus } from '@tfkd/kd-core';
import { trainableVariables, type RoleRuntime } from './roles';
import type { TrainHost } from './step';

/** Per stage with `trainUpTo`: per student, the layers that train. */
export type UpTo = Map<string, Map<string, Set<string>>>;

/** `trainUpTo` of every stage: the layer must exist in every student; the layers up to it train. */
export function trainUpToLayers(phases: readonly Phase[], roles: Map<string, RoleRuntime>): UpTo {
  const upTo: UpTo = new Map();
  for (const phase of phases) {
    if (!phase.trainUpTo) continue;
    const perRole = new Map<string, Set<string>>();
    for (const r of [...roles.values()].filter((x) => x.info.kind === 'student')) {
      const layers = layersUpTo(r.model, phase.trainUpTo);
      if (!layers) {
        throw new KdError('KD_SPEC_INVALID', `stage '${phase.name}': role '${r.info.name}' (${r.model.name}) has no layer '${phase.trainUpTo}'`, {
          path: `${phase.specPath}.trainUpTo`,
          fix: `name a layer of the student, usually the guided layer of its hint (one of: ${r.model.layers.map((l) => l.name).join(', ')})`,
        });
      }
      perRole.set(r.info.name, layers);
    }
    upTo.set(phase.name, perRole);
  }
  return upTo;
}

/**
 * A `trainUpTo` stage: the non-trainable weights of the frozen layers (batch-norm moving statistics,
 * which a training-mode forward updates) as they were when the phase started; `reset()` puts them
 * back after every step, so nothing after the named layer changes during the stage.
 */
export function frozenState(upTo: Map<string, Set<string>> | undefined, roles: Map<string, RoleRuntime>): { reset(): void; dispose(): void } | null {
  if (!upTo) return null;
  const held: { v: tf.Variable; value: tf.Tensor }[] = [];
  for (const [role, layers] of upTo) {
    const model = (roles.get(role) as RoleRuntime).model;
    for (const l of model.layers) {
      if (layers.has(l.name)) continue;
      for (const w of l.nonTrainableWeights) {
        const v = w.read() as tf.Variable;
        held.push({ v, value: tf.clone(v) });
      }
    }
  }
  if (held.length === 0) return null;
  return {
    reset: () => held.forEach(({ v, value }) => v.assign(value)),
    dispose: () => held.forEach(({ value }) => value.dispose()),
  };
}

/**
 * A phase's fresh optimizers per student (the run's `train`, the role's overrides, then a stage's)
 * and the step's view of the run: the phase's active plugins, their weights and variables.
 */
export function trainHost(parts: RunParts & { bus: LifecycleBus; data: DataSplits }, phase: Phase, caches: Map<string, OutputCache>, upTo: UpTo): TrainHost {
  const spec = parts.spec;
  const roleList = [...parts.roles.values()];
  const students = roleList.filter((r) => r.info.kind === 'student');
  const teachers = roleList.filter((r) => r.info.kind === 'teacher');
  for (const s of students) {
    s.train = TrainSpec.parse({ ...spec.train, ...(s.spec.train ?? {}), ...phase.overrides });
    s.optimizer?.dispose();
    s.optimizer = makeOptimizer(s.train);
  }
  const active = parts.plugins.filter((p) => phase.active.has(p.name));
  const pluginVars = parts.instances.filter((_, i) => phase.active.has(parts.plugins[i].name)).flatMap((p) => p.variables?.() ?? []);
  const layers = upTo.get(phase.name);
  const objectives = pluginObjectives(spec, parts.plugins);
  const players = playerSteps(parts.players, parts.plugins, parts.instances, phase);
  const trainables = students.map((s, i) => ({
    role: s,
    variables: [...(layers ? variablesOf(s.model, layers.get(s.info.name) as Set<string>) : trainableVariables(s.model)), ...(i === 0 ? pluginVars : [])],
    weightDecay: (s.train as TrainSpec).optimizer.weightDecay,
  }));
  // A player's weights are its own optimizer's alone: no student loss may move them.
  const owned = new Set(players.flatMap((p) => p.variables.map((v) => v.id)));
  const shared = trainables.flatMap((t) => t.variables).find((v) => owned.has(v.id));
  if (shared) {
    throw new KdError('KD_INTERNAL', `the player weight '${shared.name}' is among the students' trainable variables (a plugin's variables() returned it)`, {
      path: 'players',
      fix: "a plugin must not list a player's weights in variables(): the player's own step trains them",
    });
  }
  return {
    bus: parts.bus,
    train: parts.data.train,
    roles: parts.roles,
    playerModels: parts.players,
    roleInfos: roleList.map((r) => r.info),
    ledger: parts.ledger,
    numClasses: parts.data.train.numClasses,
    weightOf: (owner) => phase.active.get(owner) ?? parts.plugins.find((p) => p.name === owner)?.entry.weight ?? 1,
    rngOf: (owner) => parts.plugins.find((p) => p.name === owner)?.rng ?? new Rng(spec.seed),
    objectiveOf: (owner) => objectives.get(owner) ?? 'task',
    trainables,
    players,
    prefetch: teachers.filter((t) => active.some((p) => p.requiresRole(t.info))).map((t) => t.info.name),
    nonFinite: spec.nonFinite,
    caches,
  };
}

/** Per-teacher output caches, when no plugin transforms batches, within the `teacherCacheMB` budget (`outputCaches`). */
export function teacherCaches(parts: RunParts & { data: DataSplits }): Map<string, OutputCache> {
  const caches = new Map<string, OutputCache>();
  if (parts.spec.teacherCache === 'off') return caches;
  const transforms = parts.plugins.some((p) => {
    const t = p.def.transformsBatch;
    return typeof t === 'function' ? t(p.options as never) : Boolean(t);
  });
  if (transforms) return caches;
  const teachers = [...parts.roles.values()].filter((r) => r.info.kind === 'teacher');
  const outputs = teachers.map((t) => ({
    role: t.info.name,
    outputs: t.tapped.outputs.map((o, i) => ({
      name: i === 0 ? (t.heads?.[0] ?? 'logits') : t.tapNames[i - 1],
      shape: o.shape.slice(1),
    })),
  }));
  const log = (line: string) => parts.log(line);
  return outputCaches(outputs, parts.data.train.labels.length, parts.spec.teacherCacheMB, log);
}
