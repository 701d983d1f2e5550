import type { LayersModel } from '@tensorflow/tfjs-layers';
import {
  isKdError,
  KdError,
  RunSpec,
  runTask,
  TASK_DEFAULTS,
  TrainSpec,
  type ModelTools,
  type RoleSpec,
} from '@tfkd/kd-core';
import { checkSameSpec, type TrainingState } from './checkpoint';
import { Engine, type EngineOptions, type RunResult, type TeacherCheckpoints } from './engine';
import { sha256Hex } from './hash';
import type { RunData } from './run-data';
import type { ProvidedTeacher } from './setup';
import type { Storage } from '@tfkd/kd-core';

/** A teacher trained from labels, as the plan has it: its own run, its recipe, its cache entry. */
export interface TeacherRun {
  /** The role it becomes (`teacher`). */
  role: string;
  specPath: string;
  /** The run that trains it: the teacher's model as the `student` of a run on the task's label loss (cross-entropy for classification). */
  spec: RunSpec;
  /** Cache key: hash of everything that decides the trained weights. */
  key: string;
  keyObj: unknown;
  /** Its folder in the teacher cache (null without a cache). */
  dir: string | null;
  /** Found in the cache when the plan was made: it will be loaded, not trained. */
  cached: boolean;
}

/**
 * The run that trains a teacher from labels. The recipe is the teacher's own `train:` (TrainSpec
 * defaults for what it leaves out) — the run's `train:` is the student's and never leaks into it,
 * so `--set train.epochs=…` neither retrains nor re-keys a cached teacher. Cached by the hash of
 * (model, options, seed, recipe, data, input shape, classes, held-out split, and the run's seed when
 * the samples depend on it: `data.runSeed`). The teacher trains on `data`, the run's own splits.
 */
export function teacherRun(
  spec: RunSpec,
  r: { name: string; spec: RoleSpec; specPath: string },
  seed: number,
  data: RunData,
  cache: { storage: Storage; cacheDir: string | null },
): TeacherRun {
  const train = TrainSpec.parse(r.spec.train ?? {});
  const inputShape = [...data.train.shape];
  const numClasses = data.train.numClasses;
  // A held-out split (spec `calibrate:`) changes what the teacher trains on, so it is part of the key.
  // A dense task trains another head on other targets: part of the key (absent for classification, so its keys are unchanged).
  // Samples drawn with the run's seed (a dataset seeded by it, the `calibrate:` hold-out) differ from
  // one run seed to the next: that seed is part of the key (absent when the data do not depend on it, so those keys are unchanged).
  const keyObj = {
    v: 1,
    model: r.spec.model,
    options: r.spec.options,
    seed,
    train,
    data: spec.data,
    inputShape,
    numClasses,
    ...(spec.calibrate ? { calibrate: spec.calibrate } : {}),
    ...(runTask(spec) !== 'classification' ? { task: spec.task } : {}),
    ...(data.runSeed !== undefined ? { dataSeed: data.runSeed } : {}),
  };
  const task = TASK_DEFAULTS[runTask(spec)];
  const key = sha256Hex(JSON.stringify(keyObj)).slice(0, 16);
  const { storage, cacheDir } = cache;
  const dir = cacheDir ? storage.resolve(cacheDir, storage.join('teachers', key)) : null;
  const childSpec = RunSpec.parse({
    seed,
    backend: spec.backend,
    data: spec.data,
    student: { model: r.spec.model, options: r.spec.options, seed },
    train,
    ...(spec.task ? { task: spec.task } : {}),
    // The task's label loss (cross-entropy; the detection loss; per-pixel cross-entropy) and metric.
    plugins: [{ use: task.labelLoss }],
    packages: spec.packages,
    eval: [task.metric ?? 'accuracy'],
    nonFinite: spec.nonFinite,
  });
  return {
    role: r.name,
    specPath: r.specPath,
    spec: childSpec,
    key,
    keyObj,
    dir,
    cached: dir !== null && storage.exists(storage.join(dir, 'model.json')),
  };
}

/** A KdError of a teacher's run, with its `student…`/`train…` paths mapped to the teacher's. */
export function teacherError(e: unknown, teacherPath: string): unknown {
  if (!(e instanceof KdError) || e.path === undefined) return e;
  const m = /^(student|train)(\b.*)?$/.exec(e.path);
  if (!m) return e;
  const path = m[1] === 'student' ? `${teacherPath}${m[2] ?? ''}` : `${teacherPath}.train${m[2] ?? ''}`;
  return new KdError(e.code, `teacher '${teacherPath}': ${e.message}`, { path, fix: e.fix, cause: e });
}

/** Load a planned teacher from the cache, or train it (a child engine run) and cache it. */
export async function executeTeacherRun(
  run: TeacherRun,
  opts: EngineOptions & { storage: Storage; tools: ModelTools },
): Promise<ProvidedTeacher> {
  const log = (l: string) => opts.log?.(l);
  if (run.dir && opts.storage.exists(opts.storage.join(run.dir, 'model.json'))) {
    log(`teacher '${run.role}': reusing the cached model ${run.dir}`);
    return { model: await opts.tools.load(run.dir), cached: true, key: run.key, dir: run.dir };
  }
  const warn = (l: string) => (opts.warn ?? opts.log)?.(l);
  // An unwritable cache degrades to "no cache" (the teacher is trained and used, not kept), with a warning.
  const dir = run.dir && writable(opts.storage, opts.storage.dirname(run.dir), warn) ? run.dir : null;
  log(
    `teacher '${run.role}': training ${run.spec.student?.model} from labels for ${run.spec.train.epochs} epochs${dir ? ' (cached afterwards)' : ''}`,
  );
  // Only a teacher that is cached keeps a checkpoint: without a cache it is not kept either.
  const saved = dir && opts.teacherCheckpoints ? checkpointStore(run, opts.teacherCheckpoints, log, warn) : null;
  const resume = (await saved?.read()) ?? undefined;
  const train = async (from: TrainingState | undefined) => {
    const engine = new Engine(run.spec, {
      ...opts,
      phase: 'teacher',
      teachers: undefined,
      resume: from,
      onCheckpoint: saved?.write,
      dryRun: false,
    });
    try {
      return { engine, result: await engine.run() };
    } catch (e) {
      // free the half-trained teacher
      engine.dispose();
      throw e;
    }
  };
  let child: Engine;
  let result: RunResult;
  try {
    ({ engine: child, result } = await train(resume).catch((e) => {
      // A checkpoint that does not fit this run (other data, other weights' shapes) is found before any step.
      if (!saved || !resume || !isKdError(e) || !['KD_RESUME_MISMATCH', 'KD_CHECKPOINT_INVALID'].includes(e.code)) throw e;
      return saved.ignore('does not fit this run', e).then(() => train(undefined));
    }));
  } catch (e) {
    // say where in *this* spec the problem is
    throw teacherError(e, run.specPath);
  }
  if (result.status === 'interrupted') {
    child.dispose();
    const kept = saved?.written() ?? false;
    throw new KdError(
      'KD_INTERRUPTED',
      `stopped while training teacher '${run.role}' (epoch ${result.stoppedAt?.epoch} of ${run.spec.train.epochs}); ${kept ? 'its checkpoint is kept' : 'nothing was cached'}`,
      {
        path: run.specPath,
        fix: kept
          ? 'run again: the teacher resumes from its checkpoint and is cached once complete'
          : 'run again: a teacher is trained from the start and cached only once complete',
      },
    );
  }
  child.dispose(['student']);
  const model = result.models.get('student') as LayersModel;
  if (dir) {
    try {
      await saveToCache(
        model,
        dir,
        { key: run.keyObj, eval: result.eval.student, seconds: result.seconds },
        opts,
      );
    } catch (e) {
      warn(
        `warning: teacher '${run.role}' was trained but not cached: ${e instanceof KdError ? e.format() : String(e)}`,
      );
      await saved?.clear();
      return { model, cached: false, key: run.key, dir: null };
    }
  }
  await saved?.clear();
  return { model, cached: false, key: run.key, dir };
}

/**
 * A teacher's checkpoint through `EngineOptions.teacherCheckpoints`: none of its failures stops
 * training — an unreadable checkpoint, or one of another spec, is ignored (the teacher trains from
 * the start), a failed write keeps the previous one. Each says so in a warning.
 */
function checkpointStore(run: TeacherRun, store: TeacherCheckpoints, log: (l: string) => void, warn: (l: string) => void) {
  const text = (e: unknown) => (e instanceof KdError ? e.format() : String((e as Error)?.message ?? e));
  const who = `teacher '${run.role}'`;
  let ok = false;
  let lastWarning = '';
  const clear = async () => {
    try {
      await store.clear(run.key);
    } catch (e) {
      warn(`warning: ${who}: its checkpoint could not be removed: ${text(e)}`);
    }
  };
  // Ignored: removed, so that it neither shadows the checkpoints written from now on nor claims to be kept.
  const ignore = async (why: string, e: unknown) => {
    // Without the error's fix: starting over is what is done about it.
    warn(`warning: ${who}: its checkpoint ${why}, so it is trained from the start: ${isKdError(e) ? `${e.code}: ${e.message}` : text(e)}`);
    ok = false;
    await clear();
  };
  return {
    async read(): Promise<TrainingState | null> {
      let state: TrainingState | null;
      try {
        state = await store.read(run.key);
      } catch (e) {
        await ignore('cannot be read', e);
        return null;
      }
      if (!state) return null;
      try {
        checkSameSpec(run.spec, state);
      } catch (e) {
        await ignore('was written for another spec', e);
        return null;
      }
      const { epoch, batchIndex } = state.next;
      log(`${who}: resuming at epoch ${epoch}${batchIndex > 0 ? `, batch ${batchIndex + 1}` : ''} from its checkpoint`);
      ok = true;
      return state;
    },
    ignore,
    write: async (state: TrainingState): Promise<void> => {
      try {
        await store.write(run.key, state);
        ok = true;
      } catch (e) {
        // Training goes on; the previous checkpoint (if any) stays, and the next epoch end tries again.
        const t = text(e);
        if (t !== lastWarning) warn(`warning: ${who}: checkpoint not written (training goes on): ${t}`);
        lastWarning = t;
      }
    },
    /** Whether a checkpoint to resume from exists (read or written). */
    written: () => ok,
    clear,
  };
}

/**
 * Put a trained model into its cache folder whole or not at all: saved beside it under a name of its
 * own, then renamed into place. A model store that is not this storage (tests' in-memory tools)
 * gets the model at `dir` directly.
 */
export async function saveToCache(
  model: LayersModel,
  dir: string,
  meta: unknown,
  io: { storage: Storage; tools: ModelTools },
): Promise<void> {
  const { storage, tools } = io;
  const tmp = `${dir}.tmp-${storage.uniqueSuffix()}`;
  try {
    storage.mkdirp(storage.dirname(dir));
    await tools.save(model, tmp);
    if (!storage.exists(tmp)) {
      await tools.save(model, dir);
      return;
    }
    storage.writeText(storage.join(tmp, 'teacher.json'), JSON.stringify(meta, null, 2));
    storage.remove(dir);
    storage.rename(tmp, dir);
  } catch (e) {
    try {
      storage.remove(tmp);
    } catch {
      // the first error is the one to report
    }
    throw new KdError(
      'KD_OUTPUT_WRITE',
      `could not write the cached model ${dir}: ${(e as Error)?.message ?? String(e)}`,
      {
        path: dir,
        fix: 'check that the teacher cache folder (--cache-dir, $KD_CACHE_DIR) is writable and its disk has room',
        cause: e,
      },
    );
  }
}

/** Whether a folder can be created and written (a probe file, removed again); warns when not. */
export function writable(storage: Storage, dir: string, warn: (line: string) => void): boolean {
  const probe = storage.join(dir, `.probe-${storage.uniqueSuffix()}`);
  try {
    storage.mkdirp(dir);
    storage.writeText(probe, '');
    storage.remove(probe);
    return true;
  } catch (e) {
    warn(
      `warning: the teacher cache ${dir} cannot be written (${(e as Error)?.message ?? String(e)}): runs go on without caching there`,
    );
    return false;
  }
}
