import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { firstOutput, KdError, type EpochSummary, type LedgerSnapshot, type RoleInfo, type RunSpec } from '@tfkd/kd-core';
import { Engine, type EngineOptions, type RunResult } from './engine';
import { generationKey, generationSpec } from './generations';
import type { ExecuteOptions, Plan } from './plan';
import type { RoleRuntime } from './roles';
import { evaluate } from './step';
import { saveToCache, writable } from './teachers';

type Kwargs = Parameters<LayersModel['apply']>[1];

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
 * `teacher`. Each generation is one ordinary `Engine` run on the plan's data, saved under
 * `<cacheDir>/teachers/<key>` (the teacher cache; `generationKey` hashes the spec chain), and reused
 * from there when a later run asks for the same lineage. Afterwards every generation and the logit
 * ensemble of all of them are evaluated on the test split through the spec's metrics.
 *
 * The result has the shape of a run's: roles `gen.1` … `gen.G` (students; `models` holds each),
 * `eval` with one entry per generation and `ensemble`, the generations' histories (phase `gen.g`,
 * eval entries renamed to `gen.g`) and their ledgers side by side.
 */
export async function executeGenerations(whole: Plan, opts: ExecuteOptions): Promise<GenerationsResult> {
  const t0 = Date.now();
  const { spec, data, backend, storage } = whole;
  const plan = whole.generations;
  if (!plan) throw new KdError('KD_INTERNAL', 'runGenerations: no plugin of the spec asks for generations');
  const student = spec.student as NonNullable<RunSpec['student']>;
  const log = (l: string) => opts.log?.(l);
  const tools = opts.registry.modelTools();
  const base: EngineOptions = { ...opts, specDir: whole.specDir, storage, data, backend, resume: undefined, onCheckpoint: undefined, teachers: undefined };
  const warn = (l: string) => (opts.warn ?? opts.log)?.(l);
  // An unwritable cache: the generations go to a scratch folder (trained, used, not kept).
  const cacheDir = whole.cacheDir && writable(storage, storage.resolve(whole.cacheDir, 'teachers'), warn) ? whole.cacheDir : null;
  const scratch = cacheDir ? null : storage.tempDir('kd-generations-');
  const gens: (GenerationInfo & { model: LayersModel; result: RunResult | null })[] = [];
  try {
    let parent: { key: string; dir: string } | null = null;
    for (let g = 1; g <= plan.count; g++) {
      const role = `gen.${g}`;
      const { key, keyObj } = generationKey(spec, plan, g, parent?.key ?? null, data);
      const dir: string = cacheDir ? storage.resolve(cacheDir, storage.join('teachers', key)) : storage.join(scratch as string, key);
      const tg = Date.now();
      if (cacheDir && storage.exists(storage.join(dir, 'model.json'))) {
        log(`${role}: reusing the cached model ${dir}`);
        gens.push({ generation: g, role, key, dir, cached: true, seconds: 0, model: await tools.load(dir), result: null });
      } else {
        log(`${role}: training ${student.model ?? student.load} (${g === 1 ? 'from labels' : `taught by gen.${g - 1}`})`);
        const engine = new Engine(generationSpec(spec, plan, g, parent?.dir ?? null), { ...base, phase: role });
        let result: RunResult;
        try {
          result = await engine.run();
        } catch (e) {
          engine.dispose();
          throw e;
        }
        if (result.status !== 'completed') {
          engine.dispose();
          throw new KdError('KD_INTERRUPTED', `stopped while training ${role} of ${plan.count}; ${g > 1 && cacheDir ? `gen.1 … gen.${g - 1} are cached` : 'nothing was cached'}`, {
            path: `plugins[${plan.index}]`,
            fix: cacheDir ? 'run the spec again: cached generations are reused, training restarts at this one' : 'run again with a cache folder so that finished generations are kept',
          });
        }
        engine.dispose(['student']);
        const model = result.models.get('student') as LayersModel;
        await saveToCache(model, dir, { key: keyObj, eval: result.eval.student, seconds: result.seconds }, { storage, tools });
        gens.push({ generation: g, role, key, dir: cacheDir ? dir : null, cached: false, seconds: (Date.now() - tg) / 1000, model, result });
      }
      parent = { key, dir };
    }

    // Every generation and their logit ensemble, through the spec's metrics, on the test split.
    const last = generationSpec(spec, plan, plan.count, parent?.dir ?? null);
    const evalEngine = new Engine(last, { ...base, phase: 'generations', observe: undefined });
    let evalMetrics: Record<string, Record<string, number>>;
    const testLogits: Record<string, Float32Array> = {};
    try {
      await evalEngine.prepare();
      const student = last.student as NonNullable<RunSpec['student']>;
      const members = gens.map((gen) => evalRole(gen.role, gen.model, student));
      const roles = plan.count > 1 ? [...members, evalRole('ensemble', logitEnsemble(gens.map((gen) => gen.model)), student)] : members;
      evalMetrics = (await evaluate(evalEngine.bus, roles, data.test, { phase: 'generations', epoch: spec.train.epochs, logits: testLogits })).metrics;
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
      testLogits,
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
    if (scratch) storage.remove(scratch);
  }
}
