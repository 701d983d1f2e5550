import type * as tfl from '@tensorflow/tfjs-layers';
import type * as tf from '@tensorflow/tfjs-core';
import { KdError, type RunSpec, TrainSpec, validate } from '@tfkd/kd-core';
import type { Registry } from './registry';
import { checkOptimizerTerms } from './objectives';
import { checkPlayers } from './players';
import { resolvePlugin, type ResolvedPlugin } from './resolve';

import type { Phase } from './phase';

export type { Phase };

/** Names a stage cannot take: the main phase's and the teacher-training phase's. */
export const RESERVED_PHASES = ['distill', 'teacher'];

/**
 * Resolve `stages:` against the already resolved main plugins (`plugins:` + `eval:` metrics). Returns
 * every plugin (the main ones unchanged, then the stage-only instances) and the phases in run order.
 * A spec without `stages:` gives exactly the input plugins and one phase.
 */
export function resolvePhases(spec: RunSpec, registry: Registry, main: ResolvedPlugin[], mainPhase: string): { plugins: ResolvedPlugin[]; phases: Phase[] } {
  const plugins = [...main];
  // `eval:` metrics and a dense task's metric (spec path `task`) are active in every phase.
  const metrics = main.filter((p) => p.specPath.startsWith('eval') || p.specPath === 'task');
  const mainPhaseDef: Phase = {
    name: mainPhase,
    stage: -1,
    specPath: '',
    train: spec.train,
    overrides: {},
    active: new Map(main.map((p) => [p.name, p.entry.weight])),
  };
  if (spec.stages === undefined) return checkedPhases(spec, plugins, [mainPhaseDef]);
  if (spec.stages.length === 0) {
    throw new KdError('KD_SPEC_INVALID', '`stages:` is an empty list', {
      path: 'stages',
      fix: 'remove `stages:`, or declare a stage: stages: [{ name: hint, epochs: 2, plugins: [{ name: fitnets }] }]',
    });
  }
  const phases: Phase[] = [];
  const seen = new Set<string>();
  spec.stages.forEach((stage, s) => {
    const at = `stages[${s}]`;
    if (RESERVED_PHASES.includes(stage.name) || stage.name === mainPhase) {
      throw new KdError('KD_SPEC_INVALID', `a stage cannot be named '${stage.name}': it is the name of the ${stage.name === 'teacher' ? 'teacher-training' : 'main distillation'} phase`, {
        path: `${at}.name`,
        fix: 'name the stage after what it does, e.g. hint or init',
      });
    }
    if (seen.has(stage.name)) {
      throw new KdError('KD_SPEC_INVALID', `two stages are named '${stage.name}'`, { path: `${at}.name`, fix: 'give every stage a distinct name (history lines and checkpoints use it)' });
    }
    seen.add(stage.name);
    if (stage.plugins.length === 0) {
      throw new KdError('KD_SPEC_INVALID', `stage '${stage.name}' has no plugins: nothing would train in it`, {
        path: `${at}.plugins`,
        fix: 'list the losses of the stage, e.g. plugins: [{ name: fitnets }] to train the main list\'s loss/fitnets alone, or remove the stage',
      });
    }
    const active = new Map<string, number>();
    stage.plugins.forEach((entry, j) => {
      const ep = `${at}.plugins[${j}]`;
      const def = entry.use ? registry.plugin(entry.use, `${ep}.use`) : null;
      const name = entry.name ?? (def as NonNullable<typeof def>)?.id;
      if (name === undefined) {
        throw new KdError('KD_SPEC_INVALID', 'a stage plugin needs `name:` (a plugin of the main list) or `use:` (a plugin id)', {
          path: ep,
          fix: `name a plugin of the main list (${main.filter((p) => !metrics.includes(p)).map((p) => p.name).join(', ') || 'none'}) or give \`use: <plugin id>\``,
        });
      }
      if (active.has(name)) {
        throw new KdError('KD_SPEC_INVALID', `stage '${stage.name}' lists the plugin '${name}' twice`, { path: `${ep}.name`, fix: 'list each plugin once per stage (give a second instance its own `name:`)' });
      }
      const shared = plugins.find((p) => p.name === name);
      if (shared && metrics.includes(shared)) {
        throw new KdError('KD_SPEC_INVALID', `'${name}' is an evaluation metric (eval:), active in every phase`, { path: ep, fix: 'remove it from the stage' });
      }
      if (shared) {
        if (def && def.id !== shared.def.id) {
          throw new KdError('KD_SPEC_INVALID', `'${name}' is ${shared.def.id} (${shared.specPath}), this entry says ${def.id}`, {
            path: `${ep}.use`,
            fix: `drop \`use:\` to share ${shared.specPath}'s instance, or give this entry another \`name:\` for a separate instance`,
          });
        }
        if (entry.with !== undefined) {
          const options = validate(shared.def.options, entry.with, { code: 'KD_PLUGIN_OPTIONS', prefix: `${ep}.with` });
          if (JSON.stringify(options) !== JSON.stringify(shared.options)) {
            throw new KdError('KD_SPEC_INVALID', `'${name}' is the instance of ${shared.specPath}: one instance has one set of options, and these differ from its`, {
              path: `${ep}.with`,
              fix: `remove \`with:\` here (the instance keeps ${shared.specPath}'s options), or give this entry another \`name:\` for a separate instance`,
            });
          }
        }
        active.set(name, entry.weight ?? shared.entry.weight);
        return;
      }
      if (!def) {
        const known = plugins.filter((p) => !metrics.includes(p)).map((p) => p.name);
        throw new KdError('KD_SPEC_INVALID', `stage '${stage.name}' names the plugin '${name}', and no plugin of the main list or an earlier stage has that name`, {
          path: `${ep}.name`,
          fix: `use one of: ${known.join(', ') || '(none)'}; or add \`use: <plugin id>\` for a new instance`,
        });
      }
      const resolved = resolvePlugin(spec, registry, { use: def.id, with: entry.with ?? {}, weight: entry.weight ?? 1, name }, ep, plugins.length);
      plugins.push(resolved);
      active.set(name, resolved.entry.weight);
    });
    for (const m of metrics) active.set(m.name, m.entry.weight);
    const overrides = { ...(stage.train ?? {}), epochs: stage.epochs };
    phases.push({
      name: stage.name,
      stage: s,
      specPath: at,
      train: TrainSpec.parse({ ...spec.train, ...overrides }),
      overrides,
      active,
      ...(stage.trainUpTo ? { trainUpTo: stage.trainUpTo } : {}),
    });
  });
  phases.push(mainPhaseDef);
  return checkedPhases(spec, plugins, phases);
}

/** The phases, once each has the losses its optimizer needs (DOT: a task and a distillation loss). */
function checkedPhases(spec: RunSpec, plugins: ResolvedPlugin[], phases: Phase[]): { plugins: ResolvedPlugin[]; phases: Phase[] } {
  checkOptimizerTerms(spec, plugins, phases);
  checkPlayers(spec, plugins);
  return { plugins, phases };
}

/**
 * The layers whose weights the output of `layerName` depends on (itself included): what FitNets'
 * stage 1 trains (the student up to the guided layer). Null when the model has no such layer.
 */
export function layersUpTo(model: tfl.LayersModel, layerName: string): Set<string> | null {
  const target = model.layers.find((l) => l.name === layerName);
  if (!target) return null;
  const out = new Set<string>();
  const stack = [target];
  while (stack.length > 0) {
    const layer = stack.pop() as (typeof stack)[number];
    if (out.has(layer.name)) continue;
    out.add(layer.name);
    for (const node of layer.inboundNodes) for (const l of node.inboundLayers) if (!out.has(l.name)) stack.push(l);
  }
  return out;
}

/** The trainable variables of the layers in `layers`. */
export function variablesOf(model: tfl.LayersModel, layers: ReadonlySet<string>): tf.Variable[] {
  return model.layers.filter((l) => layers.has(l.name)).flatMap((l) => l.trainableWeights.map((w) => w.read() as tf.Variable));
}
