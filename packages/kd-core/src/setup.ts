import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { SelectedBackend } from './backend';
import type { LifecycleBus } from './bus';
import { KdError } from './errors';
import type { Engine } from './engine';
import type { Plugin } from './plugin';
import type { Registry } from './registry';
import { parseTap, type ResolvedPlugin } from './resolve';
import { buildModel, roleSpecs, tappedModel, type RoleRuntime } from './roles';
import { subgraphFlops } from './subgraph';
import { RunSpec, TrainSpec, type RoleSpec } from './spec';
import { trainingAccess } from './training-access';
import type { DataSplits } from './tokens';

export interface SetupContext {
  registry: Registry;
  specDir: string;
  cacheDir: string | null;
  data: DataSplits & { note?: string };
  plugins: ResolvedPlugin[];
  backend: SelectedBackend;
  log: (line: string) => void;
  observe?: (bus: LifecycleBus, phase: string) => void;
  /** A stop request (SIGINT in the CLI) also stops teacher training. */
  shouldStop?: () => boolean;
}

/**
 * Build (or load, or train-and-cache) every role's model, check every plugin requirement against
 * them, build the tapped models and create the plugin instances. Everything here runs before the
 * first step, so a bad spec fails fast.
 */
export async function prepareRoles(engine: Engine, ctx: SetupContext): Promise<PreparedRoles> {
  // A spec error found after some models were built (a tap, a plugin's requirements) must not leak
  // them: the engine never sees a half-built role map, so free what was made here.
  const made: { dispose(): void }[] = [];
  try {
    return await buildRoles(engine, ctx, made);
  } catch (e) {
    for (const m of made.reverse()) m.dispose();
    throw e;
  }
}

type PreparedRoles = { roles: Map<string, RoleRuntime>; teachers: Record<string, { cached: boolean; key: string | null; dir: string | null }>; instances: Plugin[] };

async function buildRoles(engine: Engine, ctx: SetupContext, made: { dispose(): void }[]): Promise<PreparedRoles> {
  const spec = engine.spec;
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

  const roles = new Map<string, RoleRuntime>();
  const teachers: Record<string, { cached: boolean; key: string | null; dir: string | null }> = {};
  const tools = ctx.registry.modelTools();
  for (const [i, r] of declared.entries()) {
    let model: LayersModel;
    const seed = r.spec.seed ?? spec.seed * 1000 + i;
    if (r.kind === 'teacher' && r.spec.train && !r.spec.load) {
      const t = await trainedTeacher(spec, r, seed, inputShape, numClasses, ctx);
      model = t.model;
      teachers[r.name] = { cached: t.cached, key: t.key, dir: t.dir };
    } else {
      if (r.kind === 'teacher' && !r.spec.load) {
        throw new KdError('KD_SPEC_INVALID', `teacher '${r.name}' is neither loaded nor trained`, {
          path: r.specPath,
          fix: 'give `load: path/to/model` or `train: { epochs: … }` (trained once, then cached)',
        });
      }
      model = await buildModel(ctx.registry, r, { inputShape: viewedShape(inputShape, r.spec.view), numClasses, seed, specDir: ctx.specDir });
      if (r.kind === 'teacher') teachers[r.name] = { cached: false, key: null, dir: r.spec.load ?? null };
    }
    made.push(model);
    checkViewFits(r, model, inputShape);
    if (r.kind === 'teacher') model.trainable = false;
    const tapNames = tapsByRole.get(r.name) as string[];
    const tapped = tappedModel(model, tapNames, r.name, ctx.plugins.find((p) => (p.requirements.taps ?? []).some((t) => t.startsWith(`${r.name}.`)))?.specPath ?? r.specPath);
    const runtime: RoleRuntime = {
      info: { name: r.name, kind: r.kind, trainable: r.kind === 'student' },
      specPath: r.specPath,
      spec: r.spec,
      model,
      tapped,
      tapNames,
      inputShape: (model.inputs[0].shape as number[]).slice(1),
      flopsPerImage: tools.countFlops(model),
    };
    engine.ledger.addRole(r.name, runtime.flopsPerImage);
    roles.set(r.name, runtime);
  }

  // Off-step access to the training data and the roles' forward (training-access.ts).
  const training = trainingAccess({
    roles,
    train: ctx.data.train,
    ledger: engine.ledger,
    seed: spec.seed,
    batchSize: spec.train.batchSize,
    maxBatches: spec.train.maxBatches,
    log: ctx.log,
  });
  const instances = ctx.plugins.map((p) => {
    const instance = p.def.create(p.options, {
      training,
      name: p.name,
      weight: p.entry.weight,
      numClasses,
      inputShape,
      roles: [...roles.values()].map((r) => r.info),
      rng: p.rng,
      specPath: p.specPath,
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
      tapFlops: (taps: string | readonly string[]) => subgraphFlops(typeof taps === 'string' ? [taps] : taps, roles, `${p.specPath}.with`, tools.countFlops),
    });
    made.push({ dispose: () => instance.dispose?.() });
    return instance;
  });
  return { roles, teachers, instances };
}

/** A KdError of the teacher-training child run, with its `student…`/`train…` paths mapped to the teacher's. */
function teacherError(e: unknown, teacherPath: string): unknown {
  if (!(e instanceof KdError) || e.path === undefined) return e;
  const m = /^(student|train)(\b.*)?$/.exec(e.path);
  if (!m) return e;
  const path = m[1] === 'student' ? `${teacherPath}${m[2] ?? ''}` : `${teacherPath}.train${m[2] ?? ''}`;
  return new KdError(e.code, `teacher '${teacherPath}': ${e.message}`, { path, fix: e.fix, cause: e });
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

/** Train a teacher from labels once per (model, options, seed, train, data) and cache it. */
async function trainedTeacher(
  spec: RunSpec,
  r: { name: string; spec: RunSpec['teacher'] & object; specPath: string },
  seed: number,
  inputShape: number[],
  numClasses: number,
  ctx: SetupContext,
): Promise<{ model: LayersModel; cached: boolean; key: string; dir: string | null }> {
  const train = TrainSpec.parse({ ...spec.train, ...(r.spec.train ?? {}) });
  // A held-out split (spec `calibrate:`) changes what the teacher trains on, so it is part of the key.
  const keyObj = {
    v: 1, model: r.spec.model, options: r.spec.options, seed, train, data: spec.data, inputShape, numClasses,
    ...(spec.calibrate ? { calibrate: spec.calibrate } : {}),
  };
  const key = createHash('sha256').update(JSON.stringify(keyObj)).digest('hex').slice(0, 16);
  const tools = ctx.registry.modelTools();
  const dir = ctx.cacheDir ? path.resolve(ctx.cacheDir, 'teachers', key) : null;
  if (dir && fs.existsSync(path.join(dir, 'model.json'))) {
    ctx.log(`teacher '${r.name}': reusing the cached model ${dir}`);
    return { model: await tools.load(dir), cached: true, key, dir };
  }
  ctx.log(`teacher '${r.name}': training ${r.spec.model} from labels for ${train.epochs} epochs (cached afterwards)`);
  const childSpec = RunSpec.parse({
    seed,
    backend: spec.backend,
    data: spec.data,
    student: { model: r.spec.model, options: r.spec.options, seed },
    train,
    plugins: [{ use: 'loss/cross-entropy' }],
    packages: spec.packages,
    eval: ['accuracy'],
    nonFinite: spec.nonFinite,
  });
  const { Engine: EngineClass } = await import('./engine');
  const child = new EngineClass(childSpec, {
    registry: ctx.registry,
    specDir: ctx.specDir,
    cacheDir: null,
    data: ctx.data,
    backend: ctx.backend,
    log: ctx.log,
    observe: ctx.observe,
    shouldStop: ctx.shouldStop,
    phase: `teacher`,
  });
  let result: Awaited<ReturnType<typeof child.run>>;
  try {
    result = await child.run();
  } catch (e) {
    // free the half-trained teacher, and say where in *this* spec the problem is: the child run
    // calls the teacher `student` and reads its `train` from the teacher's
    child.dispose();
    throw teacherError(e, r.specPath);
  }
  if (result.status === 'interrupted') {
    child.dispose();
    throw new KdError('KD_INTERRUPTED', `stopped while training teacher '${r.name}' (epoch ${result.stoppedAt?.epoch} of ${train.epochs}); nothing was cached`, {
      path: r.specPath,
      fix: 'run again: a teacher is trained from the start and cached only once complete',
    });
  }
  child.dispose(['student']);
  const model = result.models.get('student') as LayersModel;
  if (dir) {
    const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`;
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    await tools.save(model, tmp);
    fs.writeFileSync(path.join(tmp, 'teacher.json'), JSON.stringify({ key: keyObj, eval: result.eval.student, seconds: result.seconds }, null, 2));
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(tmp, dir);
  }
  return { model, cached: false, key, dir };
}
