import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { selectBackend, type SelectedBackend } from './backend';
import { Engine, loadRunData, type EngineOptions, type RunResult } from './engine';
import { KdError } from './errors';
import type { EpochSummary, RoleInfo } from './hooks';
import type { LedgerSnapshot } from './ledger';
import { firstOutput } from './ops';
import type { Registry } from './registry';
import { resolvePlugins } from './resolve';
import type { RoleRuntime } from './roles';
import type { PluginEntry, RunSpec } from './spec';
import { evaluate } from './step';
import type { DataSplits } from './tokens';

type Kwargs = Parameters<LayersModel['apply']>[1];

/** The plugin entry that asked for generations, and how many. */
export interface GenerationPlan {
  count: number;
  /** Index of the entry in `spec.plugins`. */
  index: number;
  id: string;
}

/** One trained (or reused) generation. */
export interface GenerationInfo {
  generation: number;
  /** Role name in the combined result: `gen.1`, `gen.2`, … */
  role: string;
  /** Hash of the spec chain that produced it (its teacher-cache key). */
  key: string;
  dir: string | null;
  cached: boolean;
  seconds: number;
}

export interface GenerationsResult extends RunResult {
  generations: GenerationInfo[];
}

/**
 * Whether `spec` asks for several generations (a plugin with `generations(options)`, e.g.
 * `self/born-again`): the plan, or null for an ordinary one-engine run. Loads the spec's packages.
 */
export async function generationPlan(spec: RunSpec, registry: Registry, specDir = process.cwd()): Promise<GenerationPlan | null> {
  await registry.loadPackages(spec.packages, specDir);
  const planned = resolvePlugins(spec, registry).filter((p) => p.def.generations && p.specPath.startsWith('plugins['));
  if (planned.length === 0) return null;
  if (planned.length > 1) {
    throw new KdError('KD_SPEC_INVALID', `${planned.map((p) => `'${p.def.id}'`).join(' and ')} both train generations; a run can follow one of them`, {
      path: planned[1].specPath,
      fix: 'keep one multi-generation plugin in `plugins:`',
    });
  }
  const p = planned[0];
  const count = (p.def.generations as (o: unknown) => number)(p.options);
  if (!Number.isInteger(count) || count < 1) {
    throw new KdError('KD_PLUGIN_OPTIONS', `'${p.def.id}' asked for ${count} generations`, { path: `${p.specPath}.with.generations`, fix: 'give a whole number ≥ 1' });
  }
  return { count, index: p.index, id: p.def.id };
}

/** A spec the generations driver can run: one `student`, no `teacher` (generation g − 1 is generation g's). */
export function checkGenerationSpec(spec: RunSpec, plan: GenerationPlan): void {
  if (spec.teacher) {
    throw new KdError('KD_SPEC_INVALID', `'${plan.id}' trains its own teachers (generation g − 1 teaches generation g), and the spec has a teacher`, {
      path: 'teacher',
      fix: 'remove `teacher:`; generation 1 learns from the labels',
    });
  }
  if (!spec.student || spec.students) {
    throw new KdError('KD_SPEC_INVALID', `'${plan.id}' trains one student per generation`, { path: 'students', fix: 'give `student:` (one model), not `students:`' });
  }
}

/**
 * The spec of generation g: the student with its own initialisation seed (base + g − 1, base = the
 * student's `seed` or what a plain run gives it, `seed·1000`), the planned entry's option
 * `generation: g`, and from g = 2 on the previous generation (saved in `teacherDir`) as `teacher`.
 */
export function generationSpec(spec: RunSpec, plan: GenerationPlan, g: number, teacherDir: string | null): RunSpec {
  const student = spec.student as NonNullable<RunSpec['student']>;
  const plugins: PluginEntry[] = spec.plugins.map((p, i) => (i === plan.index ? { ...p, with: { ...p.with, generation: g } } : p));
  const { teacher: _ignored, ...rest } = spec;
  void _ignored;
  return {
    ...rest,
    student: { ...student, seed: (student.seed ?? spec.seed * 1000) + g - 1 },
    plugins,
    ...(g > 1 ? { teacher: { load: teacherDir as string, options: {} } as NonNullable<RunSpec['teacher']> } : {}),
  };
}

/**
 * Cache key of generation g: everything that decides its training — the run's seed, data, student,
 * optimizer recipe, plugins (the planned entry without its `generations` count, so asking for more
 * generations later reuses the first ones), packages, held-out split — and the key of generation
 * g − 1, whose model is its teacher. A chain of hashes: the key names the whole lineage.
 */
export function generationKey(spec: RunSpec, plan: GenerationPlan, g: number, parent: string | null, data: DataSplits): { key: string; keyObj: unknown } {
  const gs = generationSpec(spec, plan, g, null);
  const plugins = gs.plugins.map((p, i) => {
    if (i !== plan.index) return p;
    const { generations: _n, ...w } = p.with;
    void _n;
    return { ...p, with: w };
  });
  const keyObj = {
    v: 1,
    kind: 'generation',
    method: plan.id,
    generation: g,
    parent,
    seed: gs.seed,
    data: gs.data,
    student: gs.student,
    train: gs.train,
    plugins,
    packages: gs.packages,
    nonFinite: gs.nonFinite,
    inputShape: data.train.shape,
    numClasses: data.train.numClasses,
    ...(gs.calibrate ? { calibrate: gs.calibrate } : {}),
  };
  return { key: createHash('sha256').update(JSON.stringify(keyObj)).digest('hex').slice(0, 16), keyObj };
}

/** Cost ledgers of the generations' runs side by side: `gen.g` (its student) and `gen.g:teacher`. */
function mergeLedgers(parts: { role: string; ledger: LedgerSnapshot }[]): LedgerSnapshot {
  const out: LedgerSnapshot = { roles: {}, phases: {}, totalFlops: 0 };
  for (const { role, ledger } of parts) {
    for (const [name, cost] of Object.entries(ledger.roles)) out.roles[name === 'student' ? role : `${role}:${name}`] = cost;
    for (const [name, phase] of Object.entries(ledger.phases)) out.phases[name] = phase;
    out.totalFlops += ledger.totalFlops;
  }
  return out;
}

/** A role for evaluation only: a trained model with the student's view. */
function evalRole(name: string, model: LayersModel, student: NonNullable<RunSpec['student']>): RoleRuntime {
  return {
    info: { name, kind: 'student', trainable: false },
    specPath: 'student',
    spec: student,
    model,
    tapped: model,
    tapNames: [],
    inputShape: (model.inputs[0].shape as number[]).slice(1),
    flopsPerImage: 0,
  };
}

/**
 * The logit ensemble for evaluation: the mean of the members' logits (their first outputs). Only
 * what `evaluate` calls (`apply`, `inputs`, `outputNames`); the members are not re-wired into a new
 * graph (nesting models of the same name is not allowed, and would add nodes to their layers).
 */
function logitEnsemble(models: LayersModel[]): LayersModel {
  if (models.length === 1) return models[0];
  const ensemble = {
    name: 'ensemble',
    inputs: models[0].inputs,
    outputNames: ['ensemble'],
    apply: (x: tf.Tensor, kwargs?: Kwargs) => tf.div(tf.addN(models.map((m) => firstOutput(m.apply(x, kwargs) as tf.Tensor | tf.Tensor[]))), models.length),
  };
  return ensemble as unknown as LayersModel;
}

/**
 * Trains the generations a spec asks for (born-again): generation 1 from the spec as written (its
 * plugin sees `generation: 1`: labels only), generation g ≥ 2 with generation g − 1 loaded as
 * `teacher`. Each generation is one ordinary `Engine` run on data loaded once, saved under
 * `<cacheDir>/teachers/<key>` (the teacher cache; `generationKey` hashes the spec chain), and reused
 * from there when a later run asks for the same lineage. Afterwards every generation and the logit
 * ensemble of all of them are evaluated on the test split through the spec's metrics.
 *
 * The result has the shape of a run's: roles `gen.1` … `gen.G` (students; `models` holds each),
 * `eval` with one entry per generation and `ensemble`, the generations' histories (phase `gen.g`,
 * eval entries renamed to `gen.g`) and their ledgers side by side.
 */
export async function runGenerations(spec: RunSpec, opts: EngineOptions, planned?: GenerationPlan): Promise<GenerationsResult> {
  const t0 = Date.now();
  const { registry } = opts;
  const specDir = opts.specDir ?? process.cwd();
  const plan = planned ?? (await generationPlan(spec, registry, specDir));
  if (!plan) throw new KdError('KD_INTERNAL', 'runGenerations: no plugin of the spec asks for generations');
  checkGenerationSpec(spec, plan);
  const student = spec.student as NonNullable<RunSpec['student']>;
  const log = (l: string) => opts.log?.(l);
  const backend: SelectedBackend = opts.backend ?? (await selectBackend(spec.backend, registry.backends()));
  const data = opts.data ?? (await loadRunData(spec, registry, specDir));
  const tools = registry.modelTools();
  const scratch = opts.cacheDir ? null : fs.mkdtempSync(path.join(os.tmpdir(), 'kd-generations-'));
  const gens: (GenerationInfo & { model: LayersModel; result: RunResult | null })[] = [];
  try {
    let parent: { key: string; dir: string } | null = null;
    for (let g = 1; g <= plan.count; g++) {
      const role = `gen.${g}`;
      const { key, keyObj } = generationKey(spec, plan, g, parent?.key ?? null, data);
      const dir: string = opts.cacheDir ? path.resolve(opts.cacheDir, 'teachers', key) : path.join(scratch as string, key);
      const tg = Date.now();
      if (opts.cacheDir && fs.existsSync(path.join(dir, 'model.json'))) {
        log(`${role}: reusing the cached model ${dir}`);
        gens.push({ generation: g, role, key, dir, cached: true, seconds: 0, model: await tools.load(dir), result: null });
      } else {
        log(`${role}: training ${student.model ?? student.load} (${g === 1 ? 'from labels' : `taught by gen.${g - 1}`})`);
        const engine = new Engine(generationSpec(spec, plan, g, parent?.dir ?? null), { ...opts, data, backend, phase: role, resume: undefined, onCheckpoint: undefined });
        let result: RunResult;
        try {
          result = await engine.run();
        } catch (e) {
          engine.dispose();
          throw e;
        }
        if (result.status !== 'completed') {
          engine.dispose();
          throw new KdError('KD_INTERRUPTED', `stopped while training ${role} of ${plan.count}; ${g > 1 && opts.cacheDir ? `gen.1 … gen.${g - 1} are cached` : 'nothing was cached'}`, {
            path: `plugins[${plan.index}]`,
            fix: opts.cacheDir ? 'run the spec again: cached generations are reused, training restarts at this one' : 'run again with a cache folder so that finished generations are kept',
          });
        }
        engine.dispose(['student']);
        const model = result.models.get('student') as LayersModel;
        const tmp = `${dir}.tmp-${process.pid}-${Date.now()}`;
        fs.mkdirSync(path.dirname(dir), { recursive: true });
        await tools.save(model, tmp);
        if (fs.existsSync(tmp)) {
          fs.writeFileSync(path.join(tmp, 'teacher.json'), JSON.stringify({ key: keyObj, eval: result.eval.student, seconds: result.seconds }, null, 2));
        }
        fs.rmSync(dir, { recursive: true, force: true });
        if (fs.existsSync(tmp)) fs.renameSync(tmp, dir);
        else await tools.save(model, dir); // a model store that is not the file system (tests)
        gens.push({ generation: g, role, key, dir: opts.cacheDir ? dir : null, cached: false, seconds: (Date.now() - tg) / 1000, model, result });
      }
      parent = { key, dir };
    }

    // Every generation and their logit ensemble, through the spec's metrics, on the test split.
    const last = generationSpec(spec, plan, plan.count, parent?.dir ?? null);
    const evalEngine = new Engine(last, { ...opts, data, backend, phase: 'generations', observe: undefined, resume: undefined, onCheckpoint: undefined });
    let evalMetrics: Record<string, Record<string, number>>;
    try {
      await evalEngine.prepare();
      const student = last.student as NonNullable<RunSpec['student']>;
      const members = gens.map((gen) => evalRole(gen.role, gen.model, student));
      const roles = plan.count > 1 ? [...members, evalRole('ensemble', logitEnsemble(gens.map((gen) => gen.model)), student)] : members;
      evalMetrics = (await evaluate(evalEngine.bus, roles, data.test, { phase: 'generations', epoch: spec.train.epochs })).metrics;
    } finally {
      evalEngine.dispose();
    }

    const history: EpochSummary[] = gens.flatMap((gen) =>
      (gen.result?.history ?? []).map((h) => ({
        ...h,
        eval: Object.fromEntries(Object.entries(h.eval).map(([r, m]) => [r === 'student' ? gen.role : `${gen.role}:${r}`, m])),
      })),
    );
    const roles: RoleInfo[] = gens.map((gen) => ({ name: gen.role, kind: 'student', trainable: true }));
    const fresh = gens.filter((gen) => gen.result);
    return {
      status: 'completed',
      spec,
      backend,
      dataset: {
        name: data.train.name,
        source: data.train.source,
        train: data.train.labels.length,
        test: data.test.labels.length,
        ...(data.note || data.train.note ? { note: data.note ?? data.train.note } : {}),
      },
      roles,
      eval: evalMetrics,
      history,
      ledger: mergeLedgers(fresh.map((gen) => ({ role: gen.role, ledger: (gen.result as RunResult).ledger }))),
      seconds: (Date.now() - t0) / 1000,
      models: new Map(gens.map((gen) => [gen.role, gen.model])),
      data,
      teachers: Object.fromEntries(gens.map((gen) => [gen.role, { cached: gen.cached, key: gen.key, dir: gen.dir }])),
      resumes: 0,
      generations: gens.map(({ generation, role, key, dir, cached, seconds }) => ({ generation, role, key, dir, cached, seconds })),
    };
  } catch (e) {
    for (const gen of gens) gen.model.dispose();
    throw e;
  } finally {
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  }
}
