import type { DataSplits, RunSpec, TrainSpec } from '@tfkd/kd-core';
import { selectBackend, type SelectedBackend } from './backend';
import { Engine, type EngineOptions } from './engine';
import { checkGenerationSpec, generationKey, generationPlan, generationSpec, type GenerationPlan } from './generations';
import { resolvePlugins } from './resolve';
import { buildModel, roleSpecs } from './roles';
import { loadRunData } from './run-data';
import type { ProvidedTeacher } from './setup';
import { resolvePhases } from './stages';
import type { Storage } from '@tfkd/kd-core';
import { teacherError, teacherRun, type TeacherRun } from './teachers';

/** One run a spec implies, fully resolved: what it trains, on which recipe, and where its result is kept. */
export interface PlannedRun {
  /** `teacher` (a teacher trained from labels), `gen.2` (a born-again generation), `distill` (the spec itself). */
  name: string;
  kind: 'teacher' | 'generation' | 'main';
  /** The run's own resolved spec (a teacher's: its model as the student of a cross-entropy run). */
  spec: RunSpec;
  /** The main phase's recipe; declared stages come before it. */
  train: TrainSpec;
  stages: { name: string; epochs: number }[];
  /** Where the result is cached (teachers, generations), and whether it is there already (then it is loaded, not trained). */
  cache: { key: string; dir: string | null; hit: boolean } | null;
  /** Runs whose trained model this one uses (as its teacher). */
  needs: string[];
}

/** Everything a spec implies, checked: `executePlan` runs it in order and never finds a spec error. */
export interface Plan {
  spec: RunSpec;
  runs: PlannedRun[];
  data: DataSplits & { note?: string };
  backend: SelectedBackend;
  /** Teachers trained from labels (the `teacher` runs), by role. */
  teachers: TeacherRun[];
  generations: GenerationPlan | null;
  specDir: string;
  storage: Storage;
  cacheDir: string | null;
}

export type PlanOptions = Pick<EngineOptions, 'registry' | 'specDir' | 'storage' | 'cacheDir' | 'log' | 'warn' | 'data' | 'backend' | 'models'>;

/** How a plan is executed: the registry and log, the main run's checkpoints, resume and stop, and its teachers' checkpoints. */
export type ExecuteOptions = Pick<EngineOptions, 'registry' | 'log' | 'warn' | 'observe' | 'resume' | 'onCheckpoint' | 'shouldStop' | 'models' | 'teacherCheckpoints'>;

/**
 * Spec → plan. Every static fact is checked here, before any weight moves: packages, backend, plugin
 * ids and options, stages, data, every role's model (built untrained: teachers that will be trained,
 * generations that do not exist yet), views, taps and their shapes, the roles each plugin needs, and
 * each plugin's own checks in `create` (run on copies of their generators). A typo anywhere in a spec
 * fails in seconds, whatever it would have trained first.
 */
export async function planRun(spec: RunSpec, opts: PlanOptions): Promise<Plan> {
  const { registry } = opts;
  const specDir = opts.specDir ?? '.';
  const storage = opts.storage ?? registry.storage();
  const cacheDir = opts.cacheDir ?? null;
  await registry.loadPackages(spec.packages, specDir);
  // Plugin ids, options and stages first: they need neither the backend nor the data.
  resolvePhases(spec, registry, resolvePlugins(spec, registry), 'distill');
  const generations = await generationPlan(spec, registry, specDir);
  if (generations) checkGenerationSpec(spec, generations);
  const backend = opts.backend ?? (await selectBackend(spec.backend, registry.backends()));
  const data = opts.data ?? (await loadRunData(spec, registry, specDir));
  const base = { registry, specDir, storage, data, backend, log: opts.log, models: opts.models };
  const plan: Plan = { spec, runs: [], data, backend, teachers: [], generations, specDir, storage, cacheDir };

  if (generations) {
    let parent: { key: string; dir: string } | null = null;
    for (let g = 1; g <= generations.count; g++) {
      const { key } = generationKey(spec, generations, g, parent?.key ?? null, data);
      const dir = cacheDir ? storage.resolve(cacheDir, storage.join('teachers', key)) : `(scratch)/${key}`;
      const gs = generationSpec(spec, generations, g, parent?.dir ?? null);
      const hit = cacheDir !== null && storage.exists(storage.join(dir, 'model.json'));
      plan.runs.push(planned(`gen.${g}`, 'generation', gs, { key, dir: cacheDir ? dir : null, hit }, g > 1 ? [`gen.${g - 1}`] : []));
      parent = { key, dir };
    }
    // Generation 1 learns from labels; every later one has the same shape with its predecessor as
    // teacher: checking generations 1 and 2 checks them all.
    await check(generationSpec(spec, generations, 1, null), base);
    if (generations.count > 1) await check(plan.runs[1].spec, base, await standIn(plan.runs[1].spec, base));
    return plan;
  }

  for (const [i, r] of roleSpecs(spec).entries()) {
    if (r.kind !== 'teacher' || !r.spec.train || r.spec.load) continue;
    const t = teacherRun(spec, r, r.spec.seed ?? spec.seed * 1000 + i, data, { storage, cacheDir });
    try {
      await check(t.spec, { ...base, phase: 'teacher' });
    } catch (e) {
      throw teacherError(e, r.specPath);
    }
    plan.teachers.push(t);
    plan.runs.push(planned(r.name, 'teacher', t.spec, { key: t.key, dir: t.dir, hit: t.cached }, []));
  }
  await check(spec, base);
  plan.runs.push(planned('distill', 'main', spec, null, plan.teachers.map((t) => t.role)));
  return plan;
}

function planned(name: string, kind: PlannedRun['kind'], spec: RunSpec, cache: PlannedRun['cache'], needs: string[]): PlannedRun {
  return { name, kind, spec, train: spec.train, stages: (spec.stages ?? []).map((s) => ({ name: s.name, epochs: s.epochs })), cache, needs };
}

/** Prepare a run without training (untrained models, plugins on copies of their generators), then free it. */
async function check(spec: RunSpec, opts: EngineOptions, teachers?: ReadonlyMap<string, ProvidedTeacher>): Promise<void> {
  const engine = new Engine(spec, { ...opts, dryRun: true, teachers });
  try {
    await engine.prepare();
  } finally {
    engine.dispose();
  }
}

/** A generation's teacher before it exists: its predecessor's model, built untrained. */
async function standIn(spec: RunSpec, opts: EngineOptions & { data: DataSplits; storage: Storage }): Promise<Map<string, ProvidedTeacher>> {
  const student = roleSpecs(spec).find((r) => r.kind === 'student') as ReturnType<typeof roleSpecs>[number];
  const { data, storage, registry } = opts;
  const model = await buildModel(registry, student, { inputShape: [...data.train.shape], numClasses: data.train.numClasses, seed: 0, specDir: opts.specDir ?? '.', storage });
  return new Map([['teacher', { model, cached: false, key: null, dir: null }]]);
}

/** The plan as `kd run --plan` prints it: one line per run, in execution order. */
export function describePlan(plan: Plan): string[] {
  const lines = [`plan: ${plan.runs.length} run${plan.runs.length === 1 ? '' : 's'}, data ${plan.spec.data.name}${plan.data.train.source !== plan.spec.data.name ? ` ${plan.data.train.source}` : ''} (${plan.data.train.labels.length} train / ${plan.data.test.labels.length} test)${plan.spec.task ? `, task ${plan.spec.task}` : ''}, backend ${plan.backend.name}`];
  plan.runs.forEach((r, i) => {
    const t = r.train;
    const dot = t.optimizer.name === 'dot' ? ` ± ${t.optimizer.delta} (task ${+(t.optimizer.momentum - (t.optimizer.delta ?? 0)).toFixed(6)}, distillation ${+(t.optimizer.momentum + (t.optimizer.delta ?? 0)).toFixed(6)})` : '';
    const opt = `${t.optimizer.name} lr ${t.optimizer.lr}${t.optimizer.name !== 'adam' && t.optimizer.momentum ? ` momentum ${t.optimizer.momentum}${dot}` : ''}${t.optimizer.weightDecay ? ` wd ${t.optimizer.weightDecay}` : ''}`;
    const stages = r.stages.length ? `${r.stages.map((s) => `${s.name} ${s.epochs} ep`).join(', ')}, then ` : '';
    const what =
      r.kind === 'teacher'
        ? `teacher '${r.name}': ${r.spec.student?.model} from labels`
        : r.kind === 'generation'
          ? `${r.name}: ${r.spec.student?.model ?? r.spec.student?.load}${r.needs.length ? ` taught by ${r.needs.join(', ')}` : ' from labels'}`
          : `${r.name}: ${roleSpecs(r.spec).map((x) => `${x.name} ${x.spec.model ?? x.spec.load}`).join(', ')}; plugins ${r.spec.plugins.map((p) => p.name ?? p.use).join(', ') || '(none)'}`;
    const players = r.kind === 'main' && r.spec.players ? `; ${describePlayers(r.spec.players)}` : '';
    const cache = r.cache ? (r.cache.hit ? ` — cached, loaded from ${r.cache.dir}` : r.cache.dir ? ` — trained, then cached in ${r.cache.dir}` : ' — trained (no cache)') : '';
    lines.push(`${i + 1}. ${what}; ${stages}${t.epochs} epochs × batch ${t.batchSize}${t.maxBatches ? ` (≤ ${t.maxBatches} batches)` : ''}, ${opt}${players}${cache}`);
  });
  return lines;
}

/** `players critic (sgd lr 0.0004 momentum 0.9 wd 0.0001, cosine, 1 step per student step)`. */
function describePlayers(players: NonNullable<RunSpec['players']>): string {
  const one = ([name, p]: [string, NonNullable<RunSpec['players']>[string]]) => {
    const o = p.train.optimizer;
    const opt = `${o.name} lr ${o.lr}${o.name !== 'adam' && o.momentum ? ` momentum ${o.momentum}` : ''}${o.weightDecay ? ` wd ${o.weightDecay}` : ''}`;
    return `${name} (${opt}${p.train.schedule.name !== 'constant' ? `, ${p.train.schedule.name}` : ''}, ${p.stepsPerStudentStep} step${p.stepsPerStudentStep === 1 ? '' : 's'} per student step)`;
  };
  return `player${Object.keys(players).length === 1 ? '' : 's'} ${Object.entries(players).map(one).join(', ')}`;
}
