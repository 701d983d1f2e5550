import { KdError, type RunSpec } from '@tfkd/kd-core';
import { Engine, type RunResult } from './engine';
import { executeGenerations, type GenerationsResult } from './generations-run';
import { planRun, type ExecuteOptions, type Plan, type PlanOptions } from './plan';
import type { ProvidedTeacher } from './setup';
import { executeTeacherRun } from './teachers';

/**
 * Runs a plan in order: teachers trained from labels (or loaded from the cache), then the main run —
 * or, for a multi-generation spec, its generations. Returns the main run's result and its engine
 * (prepared and run; the caller saves its plugins' state and disposes it), or no engine for
 * generations. `resume` applies to the main run; a plan with generations refuses it.
 */
export async function executePlan(plan: Plan, opts: ExecuteOptions): Promise<{ result: RunResult | GenerationsResult; engine: Engine | null }> {
  if (plan.generations) {
    if (opts.resume) {
      throw new KdError('KD_SPEC_INVALID', `'${plan.generations.id}' trains ${plan.generations.count} generations, each cached when it finishes; --resume continues one engine run only`, {
        path: `plugins[${plan.generations.index}]`,
        fix: 'run the spec again without --resume (finished generations are reused from the teacher cache)',
      });
    }
    return { result: await executeGenerations(plan, opts), engine: null };
  }
  const engine = await startPlan(plan, opts);
  try {
    return { result: await engine.run(), engine };
  } catch (e) {
    engine.dispose();
    throw e;
  }
}

/**
 * The teacher runs of a plan (trained, or loaded from the cache), then the main run's engine,
 * prepared but not run: for callers that drive it themselves (`stepper()`, benchmarks, tests).
 */
export async function startPlan(plan: Plan, opts: ExecuteOptions): Promise<Engine> {
  if (plan.generations) throw new KdError('KD_INTERNAL', 'startPlan: a multi-generation plan has no single main run (use executePlan)');
  const tools = opts.registry.modelTools();
  const base = { ...opts, specDir: plan.specDir, storage: plan.storage, data: plan.data, backend: plan.backend };
  const teachers = new Map<string, ProvidedTeacher>();
  try {
    for (const t of plan.teachers) teachers.set(t.role, await executeTeacherRun(t, { ...base, tools }));
    const engine = new Engine(plan.spec, { ...base, teachers });
    try {
      await engine.prepare();
    } catch (e) {
      engine.dispose();
      throw e;
    }
    return engine;
  } catch (e) {
    for (const t of teachers.values()) disposeQuietly(t.model);
    throw e;
  }
}

/** Plan a spec, then execute it: the one-call library API. The caller owns (and disposes) `result.models`. */
export async function runSpec(spec: RunSpec, opts: PlanOptions & ExecuteOptions): Promise<RunResult> {
  const { result, engine } = await executePlan(await planRun(spec, opts), opts);
  engine?.dispose([...result.models.keys()]);
  return result;
}

/** Plan a spec and train its teachers: the main run's engine, prepared. The caller runs and disposes it. */
export async function prepareRun(spec: RunSpec, opts: PlanOptions & ExecuteOptions): Promise<Engine> {
  return startPlan(await planRun(spec, opts), opts);
}

/** A multi-generation spec (born-again), planned and executed: every generation and their ensemble. */
export async function runGenerations(spec: RunSpec, opts: PlanOptions & ExecuteOptions): Promise<GenerationsResult> {
  const plan = await planRun(spec, opts);
  if (!plan.generations) throw new KdError('KD_INTERNAL', 'runGenerations: no plugin of the spec asks for generations');
  return executeGenerations(plan, opts);
}

/** Free a model that a failed run may already have freed. */
function disposeQuietly(model: { dispose(): unknown }): void {
  try {
    model.dispose();
  } catch {
    // already disposed with the engine that failed
  }
}
