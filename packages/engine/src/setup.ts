import type { LayersModel } from '@tensorflow/tfjs-layers';
import { batchWrites, type CostLedger, type DataSplits, didYouMean, KdError, parseTap, type Plugin, type PluginDeps, Rng, type RoleSpec, type RunSpec, runTask } from '@tfkd/kd-core';
import type { Registry } from './registry';
import { buildPlayers, type PlayerRuntime } from './players';
import type { ResolvedPlugin } from './resolve';
import { buildModel, roleSpecs, tappedModel, type RoleRuntime } from './roles';
import type { Storage } from '@tfkd/kd-core';
import { subgraphFlops } from './subgraph';
import { trainingAccess } from './training-access';

/** A teacher model handed to a run by the plan's executor (trained from labels, or from the cache). */
export interface ProvidedTeacher {
  model: LayersModel;
  cached: boolean;
  key: string | null;
  dir: string | null;
}

export interface SetupContext {
  spec: RunSpec;
  ledger: CostLedger;
  registry: Registry;
  specDir: string;
  storage: Storage;
  data: DataSplits & { note?: string };
  plugins: ResolvedPlugin[];
  log: (line: string) => void;
  /** Teachers trained from labels, as the plan's executor made (or loaded) them, by role. */
  teachers?: ReadonlyMap<string, ProvidedTeacher>;
  /** Models handed over in code, by role (never disposed here). */
  models?: ReadonlyMap<string, LayersModel>;
  /**
   * Planning: a teacher that would be trained is built untrained from its zoo id (its taps and shapes
   * are the trained one's), and plugins are created on copies of their generators, so checking a spec
   * draws nothing from the streams the real run uses.
   */
  dryRun?: boolean;
}

/**
 * Build (or load, or train-and-cache) every role's model, check every plugin requirement against
 * them, build the tapped models and create the plugin instances. Everything here runs before the
 * first step, so a bad spec fails fast.
 */
export async function prepareRoles(ctx: SetupContext): Promise<PreparedRoles> {
  // A spec error found after some models were built (a tap, a plugin's requirements) must not leak
  // them: the engine never sees a half-built role map, so free what was made here.
  const made: { dispose(): void }[] = [];
  try {
    return await buildRoles(ctx, made);
  } catch (e) {
    for (const m of made.reverse()) m.dispose();
    throw e;
  }
}

type PreparedRoles = { roles: Map<string, RoleRuntime>; players: Map<string, PlayerRuntime>; teachers: Record<string, { cached: boolean; key: string | null; dir: string | null }>; instances: Plugin[] };

async function buildRoles(ctx: SetupContext, made: { dispose(): void }[]): Promise<PreparedRoles> {
  const spec = ctx.spec;
  const numClasses = ctx.data.train.numClasses;
  const inputShape = [...ctx.data.train.shape];
  const declared = roleSpecs(spec);
  const roleNames = declared.map((r) => r.name);

  // Requirements first: cheap, and they should fail before any teacher training.
  const tapsByRole = new Map<string, string[]>(roleNames.map((r) => [r, []]));
  for (const p of ctx.plugins) {
    for (const want of p.requirements.roles ?? []) {
      if (!declared.some((r) => r.name === want)) {
        throw new KdError('KD_PLUGIN_DEPENDENCY', `'${p.name}' needs the role '${want}', and the spec has none (roles: ${roleNames.join(', ')})`, {
          path: p.specPath,
          fix: want === 'teacher' ? 'add `teacher: { load: … }` or `teacher: { model: …, train: {…} }`' : `add the role '${want}', or point the plugin's role options at one of: ${roleNames.join(', ')}`,
        });
      }
    }
    for (const tap of p.requirements.taps ?? []) {
      const { role, layer } = parseTap(tap, roleNames, `${p.specPath}.with`);
      const list = tapsByRole.get(role) as string[];
      if (!list.includes(layer)) list.push(layer);
    }
  }

  // The image views roles read (`input:`) must be written by some plugin; soft targets after a view.
  checkImageViews(declared, ctx.plugins);

  const roles = new Map<string, RoleRuntime>();
  const teachers: Record<string, { cached: boolean; key: string | null; dir: string | null }> = {};
  const tools = ctx.registry.modelTools();
  for (const [i, r] of declared.entries()) {
    let model: LayersModel;
    const seed = r.spec.seed ?? spec.seed * 1000 + i;
    const external = ctx.models?.get(r.name);
    const provided = r.kind === 'teacher' ? ctx.teachers?.get(r.name) : undefined;
    if (r.kind === 'teacher' && r.spec.train && !r.spec.load && !provided && !external && !ctx.dryRun) {
      throw new KdError('KD_INTERNAL', `teacher '${r.name}' is trained from labels: run the spec through planRun/executePlan (or runSpec)`, {
        path: r.specPath,
        fix: 'use runSpec(spec, options) or executePlan(await planRun(spec, options)) instead of constructing an Engine for this spec',
      });
    }
    if (external) {
      model = external;
      if (r.kind === 'teacher') teachers[r.name] = { cached: false, key: null, dir: null };
    } else if (provided) {
      model = provided.model;
      teachers[r.name] = { cached: provided.cached, key: provided.key, dir: provided.dir };
    } else {
      if (r.kind === 'teacher' && !r.spec.load && !r.spec.train) {
        throw new KdError('KD_SPEC_INVALID', `teacher '${r.name}' is neither loaded nor trained`, {
          path: r.specPath,
          fix: 'give `load: path/to/model` or `train: { epochs: … }` (trained once, then cached)',
        });
      }
      // A dry run builds a teacher that will be trained untrained, as its training starts: on the data's
      // shape (it trains on the data, not on its view) and with its seed.
      const toTrain = r.kind === 'teacher' && r.spec.train !== undefined && !r.spec.load;
      const shape = toTrain ? [...inputShape] : viewedShape(inputShape, r.spec.view);
      model = await buildModel(ctx.registry, r, { inputShape: shape, numClasses, seed, specDir: ctx.specDir, storage: ctx.storage, task: runTask(spec) });
      if (r.kind === 'teacher') teachers[r.name] = { cached: false, key: null, dir: r.spec.load ?? null };
    }
    if (!external) made.push(model);
    checkViewFits(r, model, inputShape);
    if (r.kind === 'teacher') model.trainable = false;
    const tapNames = tapsByRole.get(r.name) as string[];
    // A dense task's heads are the model's outputs: the first is `logits`, the others are tapped by name.
    const heads = runTask(spec) === 'classification' ? undefined : [...model.outputNames];
    for (const h of heads?.slice(1) ?? []) if (!tapNames.includes(h)) tapNames.push(h);
    const tapped = tappedModel(model, tapNames, r.name, ctx.plugins.find((p) => (p.requirements.taps ?? []).some((t) => t.startsWith(`${r.name}.`)))?.specPath ?? r.specPath);
    const runtime: RoleRuntime = {
      info: { name: r.name, kind: r.kind, trainable: r.kind === 'student' },
      specPath: r.specPath,
      spec: r.spec,
      model,
      tapped,
      tapNames,
      ...(heads ? { heads } : {}),
      inputShape: (model.inputs[0].shape as number[]).slice(1),
      flopsPerImage: tools.countFlops(model),
    };
    ctx.ledger.addRole(r.name, runtime.flopsPerImage);
    roles.set(r.name, runtime);
  }

  // Off-step access to the training data and the roles' forward (training-access.ts).
  const training = trainingAccess({
    roles,
    train: ctx.data.train,
    ledger: ctx.ledger,
    seed: spec.seed,
    batchSize: spec.train.batchSize,
    maxBatches: spec.train.maxBatches,
    log: ctx.log,
  });
  const depsOf = (p: ResolvedPlugin): PluginDeps => ({
    training,
    name: p.name,
    weight: p.entry.weight,
    numClasses,
    inputShape,
    roles: [...roles.values()].map((r) => r.info),
    rng: ctx.dryRun ? copyRng(p.rng) : p.rng,
    log: ctx.log,
    storage: ctx.storage,
    specPath: p.specPath,
    task: runTask(spec),
    tapShape(tap: string) {
      const { role, layer } = parseTap(tap, roleNames, `${p.specPath}.with`);
      const rt = roles.get(role) as RoleRuntime;
      const idx = rt.tapNames.indexOf(layer);
      if (idx < 0) {
        throw new KdError('KD_TAP_UNKNOWN', `'${p.name}' asked for tap '${tap}' it did not declare in requires()`, {
          path: p.specPath,
          fix: 'list every tap the plugin reads in its requires().taps',
        });
      }
      return (rt.tapped.outputs[idx + 1].shape as number[]).slice(1);
    },
    layerShapes(role: string) {
      const rt = roles.get(role);
      if (!rt) return [];
      // A zoo model's documented taps when it has them (a ResNet's every conv and add would drown
      // the hint); any other model's hidden layers.
      const documented = rt.spec.model ? (ctx.registry.models().find((m) => m.id === rt.spec.model)?.taps ?? null) : null;
      const outputs = new Set(rt.model.outputLayers.map((l) => l.name));
      return rt.model.layers
        .filter((l) => l.getClassName() !== 'InputLayer' && !outputs.has(l.name) && !Array.isArray(l.outputShape[0]))
        .filter((l) => !documented || documented.length === 0 || documented.includes(l.name))
        .map((l) => ({ layer: l.name, shape: (l.outputShape as (number | null)[]).slice(1) as number[] }));
    },
    model(role: string) {
      const rt = roles.get(role);
      if (!rt) {
        throw new KdError('KD_PLUGIN_DEPENDENCY', `'${p.name}' asked for the model of role '${role}', and the run has no such role (roles: ${roleNames.join(', ')})`, {
          path: p.specPath,
          fix: "name one of the run's roles",
        });
      }
      return rt.model;
    },
    tapFlops: (taps: string | readonly string[]) => subgraphFlops(typeof taps === 'string' ? [taps] : taps, roles, `${p.specPath}.with`, tools.countFlops),
  });
  // Players (spec `players:`): built by the plugins that train them, once the roles exist.
  const players = buildPlayers(spec, ctx.plugins, depsOf, (m) => tools.countFlops(m), made);
  for (const pl of players.values()) ctx.ledger.addRole(pl.info.name, pl.flopsPerImage);
  const instances = ctx.plugins.map((p) => {
    const instance = p.def.create(p.options, depsOf(p));
    made.push({ dispose: () => instance.dispose?.() });
    return instance;
  });
  return { roles, players, teachers, instances };
}

/**
 * Named image views, checked at planning: every role's `input: <view>` names a view some plugin
 * declares it writes (`BatchWrites.views`, e.g. `augment/flip` with `view: <name>`), with a
 * did-you-mean and the list of views the plugins write; and in the main `plugins:` list, no plugin
 * that sets soft targets (mixup, CutMix) comes after one that writes a view (the targets would
 * describe the main images only; the step refuses it too).
 */
export function checkImageViews(roles: readonly { name: string; spec: RoleSpec; specPath: string }[], plugins: readonly ResolvedPlugin[]): void {
  const writers = new Map<string, string[]>();
  let firstView: ResolvedPlugin | null = null;
  for (const p of plugins) {
    const w = batchWrites(p.def, p.options);
    const main = p.specPath.startsWith('plugins[');
    if (w.targets && main && firstView) {
      throw new KdError('KD_PLUGIN_DEPENDENCY', `'${p.name}' sets soft label targets after '${firstView.name}' (${firstView.specPath}) writes an image view: the targets would describe the main images only`, {
        path: p.specPath,
        fix: `list '${p.name}' before the augmentations that write views (\`view:\`), so every view starts from the mixed images`,
      });
    }
    for (const v of w.views ?? []) {
      writers.set(v, [...(writers.get(v) ?? []), p.name]);
      if (main && !firstView) firstView = p;
    }
  }
  const known = [...writers.keys()];
  for (const p of plugins) {
    const missing = (p.requirements.views ?? []).filter((v) => !writers.has(v));
    if (missing.length === 0) continue;
    const made = known.length ? `the plugins write the views ${known.map((v) => `'${v}' (${(writers.get(v) as string[]).join(', ')})`).join(', ')}` : 'no plugin writes an image view';
    throw new KdError('KD_PLUGIN_DEPENDENCY', `'${p.name}' reads the image view${missing.length === 1 ? '' : 's'} ${missing.map((v) => `'${v}'`).join(' and ')}, and no plugin writes ${missing.length === 1 ? 'it' : 'them'} (${made})`, {
      path: p.specPath,
      fix: `${didYouMean(missing[0], known)}give augmentations \`view: ${missing[0]}\` before '${p.name}' (e.g. \`- use: augment/flip\` \`with: { view: ${missing[0]} }\`), or point the plugin's view options at views the spec makes`,
    });
  }
  for (const r of roles) {
    const want = r.spec.input;
    if (want === undefined || writers.has(want)) continue;
    const made = known.length ? `the plugins write the views ${known.map((v) => `'${v}' (${(writers.get(v) as string[]).join(', ')})`).join(', ')}` : 'no plugin writes an image view';
    throw new KdError('KD_SPEC_INVALID', `role '${r.name}' reads the image view '${want}', and no plugin writes it (${made})`, {
      path: `${r.specPath}.input`,
      fix: `${didYouMean(want, known)}${known.length ? `name one of: ${known.join(', ')}; or ` : ''}give an augmentation \`view: ${want}\` (e.g. \`- use: augment/flip\` \`with: { view: ${want} }\`), or drop \`input:\` to see the batch's main images`,
    });
  }
}

/**
 * The image shape a role's model is built for: the data's, or the view's when the role sees a
 * resized copy that is not up-sampled back (`view: { resize: [14, 14] }` builds a 14×14 model).
 */
export function viewedShape(inputShape: readonly number[], view: RoleSpec['view']): number[] {
  if (!view?.resize || view.upsample || inputShape.length !== 3) return [...inputShape];
  return [view.resize[0], view.resize[1], inputShape[2]];
}

/** A loaded (or teacher-trained) model must take what its view produces: say so at start-up, not at step 1. */
function checkViewFits(r: { name: string; spec: RoleSpec; specPath: string }, model: LayersModel, inputShape: readonly number[]): void {
  const want = viewedShape(inputShape, r.spec.view);
  const has = (model.inputs[0].shape as (number | null)[]).slice(1);
  const size = (xs: readonly (number | null)[]) => xs.reduce<number>((a, b) => a * (b ?? 1), 1);
  if (size(want) === size(has)) return;
  const source = r.spec.load ? `the model loaded from ${r.spec.load}` : `the ${r.spec.model} model`;
  throw new KdError('KD_SHAPE_MISMATCH', `role '${r.name}': ${source} takes inputs [${has}] but its view of the data is [${want}]`, {
    path: r.spec.view ? `${r.specPath}.view` : r.specPath,
    fix: r.spec.view?.resize
      ? `give the view \`upsample: true\` (back to [${inputShape.slice(0, 2)}]), or use a model built for [${want}]`
      : `use a model built for this dataset's images [${inputShape}], or give the role a \`view: { resize: [h, w] }\``,
  });
}

/** A generator in the same state, for planning: the plugin's own stream is not advanced. */
function copyRng(rng: Rng): Rng {
  const r = new Rng(0);
  r.setState(rng.getState());
  return r;
}
