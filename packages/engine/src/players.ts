import type * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { KdError, makeOptimizer, type Plugin, type PlayerSpec, type PluginDeps, type RoleInfo, type RoleOutputs, type RunSpec, stopGradient, TrainSpec, validate } from '@tfkd/kd-core';
import { z } from 'zod';
import type { ResolvedPlugin } from './resolve';
import { roleSpecs, trainableVariables } from './roles';
import type { Phase } from './phase';

/**
 * Players (spec `players:`): further trainable models with their own optimizer and their own
 * objective — an adversarial critic. The plugin that trains one (`PluginDefinition.player`, named by
 * its options) builds its model once the roles exist; after every student update the step
 * differentiates that plugin's `playerLoss` in the player's weights only and steps the player's own
 * optimizer, `stepsPerStudentStep` times (`step.ts`). Its weights never join the students'
 * trainables, so no student loss moves them; the students' outputs enter its objective detached.
 */
export interface PlayerRuntime {
  info: RoleInfo;
  /** `players.critic`. */
  specPath: string;
  spec: PlayerSpec;
  model: LayersModel;
  /** The instance name of the plugin that trains it. */
  owner: string;
  flopsPerImage: number;
  /** The phase's recipe: the player's optimizer and schedule over the phase's epochs. */
  train?: TrainSpec;
  optimizer?: tf.Optimizer;
}

/** What one step trains of a player: its variables, its optimizer, how often, on whose objective. */
export interface PlayerStep {
  player: PlayerRuntime;
  variables: tf.Variable[];
  weightDecay: number;
  steps: number;
  objective: NonNullable<Plugin['playerLoss']>;
}

/** The option key of a plugin whose value names `player` (`critic`), for error paths. */
function optionKey(p: ResolvedPlugin, player: string): string | null {
  const o = p.options as Record<string, unknown> | null;
  if (typeof o !== 'object' || o === null) return null;
  return Object.keys(o).find((k) => o[k] === player) ?? null;
}

const pathOf = (p: ResolvedPlugin, player: string) => {
  const key = optionKey(p, player);
  return key ? `${p.specPath}.with.${key}` : p.specPath;
};

/** The plugin that trains each player, by player name (checked: one each). */
export function playerTrainers(plugins: readonly ResolvedPlugin[]): Map<string, ResolvedPlugin> {
  const trainers = new Map<string, ResolvedPlugin>();
  for (const p of plugins) {
    if (!p.def.player) continue;
    const name = p.def.player.role(p.options as never);
    const other = trainers.get(name);
    if (other) {
      throw new KdError('KD_SPEC_INVALID', `the player '${name}' is trained by '${other.name}' (${other.specPath}) and by '${p.name}': a player has one objective`, {
        path: pathOf(p, name),
        fix: `give '${p.name}' a player of its own (declare a second one under \`players:\` and name it here)`,
      });
    }
    trainers.set(name, p);
  }
  return trainers;
}

/**
 * Plan-time checks of `players:` against the plugins (no data, no model yet): every player a plugin
 * reads or trains is declared (KD_PLUGIN_DEPENDENCY at the plugin's option naming it); every declared
 * player is trained by exactly one plugin (KD_SPEC_INVALID at `players.<name>`); no player takes a
 * role's name; each player's options fit its builder's schema (KD_PLUGIN_OPTIONS).
 */
export function checkPlayers(spec: RunSpec, plugins: readonly ResolvedPlugin[]): void {
  const declared = spec.players ?? {};
  const trainers = playerTrainers(plugins);
  for (const p of plugins) {
    const wanted = [...(p.requirements.players ?? []), ...(p.def.player ? [p.def.player.role(p.options as never)] : [])];
    for (const name of wanted) {
      if (declared[name]) continue;
      const names = Object.keys(declared);
      throw new KdError('KD_PLUGIN_DEPENDENCY', `'${p.name}' needs the player '${name}', and the spec declares ${names.length ? `only ${names.map((n) => `'${n}'`).join(', ')}` : 'no `players:`'}`, {
        path: pathOf(p, name),
        fix: `declare it: \`players: { ${name}: { train: { optimizer: { name: sgd, lr: 0.0004 } } } }\` (its own optimizer, schedule and \`stepsPerStudentStep\`)${names.length ? `, or name one of: ${names.join(', ')}` : ''}`,
      });
    }
  }
  const roles = roleSpecs(spec).map((r) => r.name);
  for (const [name, player] of Object.entries(declared)) {
    const at = `players.${name}`;
    if (roles.includes(name) || name === 'teacher' || name === 'student' || name.startsWith('student.')) {
      throw new KdError('KD_SPEC_INVALID', `a player cannot be named '${name}': it is a role's name`, { path: at, fix: 'name the player after what it is, e.g. critic' });
    }
    const trainer = trainers.get(name);
    if (!trainer) {
      const readers = plugins.filter((p) => (p.requirements.players ?? []).includes(name)).map((p) => `'${p.name}'`);
      throw new KdError('KD_SPEC_INVALID', `the player '${name}' is trained by no plugin${readers.length ? ` (${readers.join(', ')} only read${readers.length === 1 ? 's' : ''} it)` : ''}: it would never change`, {
        path: at,
        fix: `add the plugin whose objective trains it, naming it by its option (e.g. \`- use: loss/seg-adversarial\` with \`critic: ${name}\`), or remove \`${at}\``,
      });
    }
    playerOptions(trainer, player, at);
  }
}

/** A player's model options, validated by its trainer's schema (none accepted without one). */
function playerOptions(trainer: ResolvedPlugin, player: PlayerSpec, at: string): unknown {
  const schema = trainer.def.player?.options ?? z.object({}).strict();
  return validate(schema, player.options, { code: 'KD_PLUGIN_OPTIONS', prefix: `${at}.options`, fix: `see the options of '${trainer.def.id}''s player with \`kd list\`` });
}

/**
 * Build every declared player through the plugin that trains it (after the roles: its builder reads
 * their shapes through `deps`). Seeds: `players.<name>.seed`, else the run's seed · 1000 + 500 + its
 * position in `players:`.
 */
export function buildPlayers(
  spec: RunSpec,
  plugins: readonly ResolvedPlugin[],
  depsOf: (p: ResolvedPlugin) => PluginDeps,
  countFlops: (m: LayersModel) => number,
  made: { dispose(): void }[],
): Map<string, PlayerRuntime> {
  const players = new Map<string, PlayerRuntime>();
  const trainers = playerTrainers(plugins);
  Object.entries(spec.players ?? {}).forEach(([name, ps], i) => {
    const at = `players.${name}`;
    const trainer = trainers.get(name) as ResolvedPlugin;
    const def = trainer.def.player as NonNullable<ResolvedPlugin['def']['player']>;
    const options = playerOptions(trainer, ps, at);
    const model = def.build(trainer.options as never, depsOf(trainer), { name, options, seed: ps.seed ?? spec.seed * 1000 + 500 + i });
    made.push(model);
    players.set(name, {
      info: { name, kind: 'player', trainable: true },
      specPath: at,
      spec: ps,
      model,
      owner: trainer.name,
      flopsPerImage: countFlops(model),
    });
  });
  return players;
}

/**
 * A phase's player steps: every player gets a fresh optimizer (its own recipe over the phase's
 * epochs, as the students get theirs); the players whose trainer is active in the phase train.
 */
export function playerSteps(players: ReadonlyMap<string, PlayerRuntime>, plugins: readonly ResolvedPlugin[], instances: readonly Plugin[], phase: Phase): PlayerStep[] {
  const steps: PlayerStep[] = [];
  for (const player of players.values()) {
    player.train = TrainSpec.parse({ ...phase.train, optimizer: player.spec.train.optimizer, schedule: player.spec.train.schedule });
    player.optimizer?.dispose();
    player.optimizer = makeOptimizer(player.train);
    if (!phase.active.has(player.owner)) continue;
    const instance = instances[plugins.findIndex((p) => p.name === player.owner)];
    if (!instance?.playerLoss) {
      throw new KdError('KD_INTERNAL', `'${player.owner}' declares the player '${player.info.name}' but its instance has no playerLoss`, {
        path: player.specPath,
        fix: 'a plugin with `player` in its definition must give its instances `playerLoss` (defineLoss does)',
      });
    }
    steps.push({
      player,
      variables: trainableVariables(player.model),
      weightDecay: player.train.optimizer.weightDecay,
      steps: player.spec.stepsPerStudentStep,
      objective: instance.playerLoss.bind(instance),
    });
  }
  return steps;
}

/** A role's outputs behind a stop-gradient (the players' view): logits, taps, and heads sharing them. */
export function detachOutputs(out: RoleOutputs): RoleOutputs {
  const done = new Map<tf.Tensor, tf.Tensor>();
  const d = (t: tf.Tensor): tf.Tensor => {
    let v = done.get(t);
    if (!v) done.set(t, (v = stopGradient(t)));
    return v;
  };
  return {
    logits: d(out.logits),
    taps: Object.fromEntries(Object.entries(out.taps).map(([k, t]) => [k, d(t)])),
    ...(out.heads ? { heads: Object.fromEntries(Object.entries(out.heads).map(([k, t]) => [k, d(t)])) } : {}),
  };
}
