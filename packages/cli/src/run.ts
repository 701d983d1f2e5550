import * as fs from 'fs';
import * as path from 'path';
import { checkSameSpec, describePlan, executePlan, packageLines, planRun, resolvedSpec, type LoadedPackage, type CheckpointSummary, type Engine, type EngineOptions, type RunPosition, type RunResult, type TrainingState } from '@tfkd/engine';
import { peekCheckpoint, readCheckpoint, teacherCheckpointFiles, teacherWorkerSource, writeCheckpoint } from '@tfkd/engine/node';
import { foldBatchNorm } from '@tfkd/models';
import { KdError, isKdError, parseSpec, runTask, stringifySpec, type RunSpec } from '@tfkd/kd-core';
import { writeAdapters } from './adapters';
import { calibrationArtifacts } from './calibration';
import { defaultRegistry } from './modules';
import { CHECKPOINT_DIR, StagedFolder, defaultCacheDir, defaultOutDir, existingOutput, stagingConflict, stagingFolderOf, targetOf } from './output';
import { attachProgress } from './progress';
import { trainingCurvesSvg } from './charts';
import { versions } from './versions';

export interface RunOptions {
  out?: string;
  set?: string[];
  backend?: string;
  /** Teacher cache folder (default: $KD_CACHE_DIR, else `.kd-cache` in the working folder). */
  cacheDir?: string;
  /** Replace an `out` folder that already holds a run — only once the new run has completed. */
  overwrite?: boolean;
  /** The runner's storage port (teacher cache, generations); default: the file system. */
  storage?: EngineOptions['storage'];
  /** Progress and log lines (default: stderr). */
  quiet?: boolean;
  /**
   * Continue an interrupted run from its last checkpoint: its run folder (`status: interrupted`),
   * its `<out>.incomplete` staging folder (after a crash or SIGKILL), or a `checkpoint/` folder.
   * The newest checkpoint of that output folder is taken; the run is written to that folder unless `out` is given.
   */
  resume?: string;
  /** Install SIGINT/SIGTERM handlers for the run (the `kd` command does; default true). */
  signals?: boolean;
  /** Check the spec and print its plan (every run it implies, in order), without training anything. */
  plan?: boolean;
  /** Called with the bus of every engine the run creates (teachers, generations, the run): observers. */
  observe?: EngineOptions['observe'];
  /**
   * `--teacher-worker`: the frozen teacher's forward in a worker thread, one batch ahead (bit-identical
   * results; off, with a warning, when a sampler or augmentation changes the batches).
   */
  teacherWorker?: boolean;
  /** `--teacher-fold-bn`: the frozen teacher's batch norms folded into its convolutions (float32-equal, not bit-equal). */
  teacherFoldBn?: boolean;
}

export interface RunOutcome {
  outDir: string;
  /** Null for `plan: true` (nothing ran). */
  result: RunResult | null;
  metrics: Record<string, unknown>;
  status: 'completed' | 'interrupted' | 'planned';
  /** `plan: true`: the plan, one line per run. */
  plan?: string[];
  /** The signal that stopped an interrupted run, and the exit code `kd` gives it (130 SIGINT, 143 SIGTERM). */
  signal?: NodeJS.Signals;
  exitCode: number;
}

export function loadSpecFile(file: string, sets: readonly string[] = [], backend?: string): RunSpec {
  if (!fs.existsSync(file)) {
    throw new KdError('KD_SPEC_INVALID', `spec file ${file} does not exist`, { path: file, fix: 'give the path of a YAML spec, e.g. examples/fashion-kd.yaml' });
  }
  const overrides = backend ? [...sets, `backend=${backend}`] : sets;
  return parseSpec(fs.readFileSync(file, 'utf8'), file, overrides);
}

/** The checkpoint `--resume DIR` continues: the newest of `<out>.incomplete/checkpoint` and `<out>/checkpoint`. */
export function locateResume(dir: string): { target: string; checkpoint: CheckpointSummary } {
  const abs = path.resolve(dir);
  // A checkpoint folder itself: its run (or staging) folder is the parent.
  const runDir = path.basename(abs).startsWith(CHECKPOINT_DIR) && fs.existsSync(path.join(abs, 'checkpoint.json')) ? path.dirname(abs) : abs;
  const target = targetOf(runDir);
  const found = [path.join(stagingFolderOf(target), CHECKPOINT_DIR), path.join(target, CHECKPOINT_DIR)]
    .map((d) => peekCheckpoint(d))
    .filter((c): c is CheckpointSummary => c !== null)
    .sort((a, b) => b.step - a.step);
  if (found.length > 0) return { target, checkpoint: found[0] };
  let why = `neither ${target} nor ${stagingFolderOf(target)} holds a checkpoint`;
  try {
    const m = JSON.parse(fs.readFileSync(path.join(target, 'metrics.json'), 'utf8')) as { status?: string };
    if (m.status === 'completed') why = `the run in ${target} completed; there is nothing to resume`;
  } catch {
    if (!fs.existsSync(runDir)) why = `${runDir} does not exist`;
  }
  throw new KdError('KD_CHECKPOINT_INVALID', why, {
    path: dir,
    fix: 'give --resume the folder of an interrupted run (metrics.json status "interrupted"), or its <out>.incomplete folder after a crash; or start a new run without --resume',
  });
}

const SIGNAL_EXIT: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143 };

/**
 * SIGINT/SIGTERM during a run: the first asks the engine to stop after the current step (it then
 * writes a checkpoint and the run folder, status `interrupted`); a second one exits at once (the
 * last epoch-end checkpoint stays in the staging folder). Installed for the run only.
 */
export class StopRequest {
  signal: NodeJS.Signals | null = null;
  private readonly handlers: [NodeJS.Signals, () => void][] = [];

  constructor(
    private readonly log: (line: string) => void,
    private readonly staging: () => string | null,
  ) {}

  install(): void {
    for (const sig of ['SIGINT', 'SIGTERM'] as NodeJS.Signals[]) {
      const handler = () => {
        if (this.signal === null) {
          this.signal = sig;
          this.log(`${sig}: stopping after the current step and writing a checkpoint (${sig === 'SIGINT' ? 'Ctrl-C' : sig} again stops at once)`);
          return;
        }
        const where = this.staging();
        process.stderr.write(`${sig} again: stopped at once${where ? `; the last epoch-end checkpoint (if any) is in ${where}` : ''}\n`);
        process.exit(SIGNAL_EXIT[sig] ?? 1);
      };
      process.on(sig, handler);
      this.handlers.push([sig, handler]);
    }
  }

  uninstall(): void {
    for (const [sig, handler] of this.handlers.splice(0)) process.off(sig, handler);
  }

  get exitCode(): number {
    return this.signal ? (SIGNAL_EXIT[this.signal] ?? 1) : 0;
  }
}

/**
 * `kd run SPEC`: validate, prepare (all spec errors surface here), train, then write the run folder
 * atomically. Every epoch end writes a checkpoint into the staging folder; a stop request (SIGINT,
 * SIGTERM) ends the run after the current step with an `interrupted` run folder that `--resume` continues.
 */
export async function runCommand(specFile: string, opts: RunOptions = {}): Promise<RunOutcome> {
  const spec = loadSpecFile(specFile, opts.set ?? [], opts.backend);
  const log = opts.quiet ? () => undefined : (l: string) => process.stderr.write(`${l}\n`);
  // Warnings and what to do after a stop are printed even with --quiet.
  const warn = (l: string) => void process.stderr.write(`${l}\n`);
  // --resume: the spec must be the checkpoint's; checked before anything is built or trained.
  const from = opts.resume ? locateResume(opts.resume) : null;
  if (from) checkSameSpec(spec, from.checkpoint);
  const state = from ? readCheckpoint(from.checkpoint.dir) : undefined;
  if (from) log(`resuming ${from.target} from ${from.checkpoint.dir} (${from.checkpoint.epochsDone} epochs done, step ${from.checkpoint.step})`);
  const outDir = opts.out ?? (from ? path.relative(process.cwd(), from.target) || '.' : defaultOutDir(specFile));
  const command = `kd run ${specFile}`;
  // Before anything is built: a live run into the same folder, or an unresumed checkpoint there.
  const staging = { resumeFrom: from?.checkpoint.dir, resumeTarget: from?.target, command };
  const conflict = existingOutput(outDir, { overwrite: opts.overwrite, resumeTarget: from?.target, command }) ?? stagingConflict(outDir, staging);
  if (conflict) throw conflict;

  let staged: StagedFolder | null = null;
  const stop = new StopRequest(warn, () => staged?.staging ?? null);
  const checkpoints = { written: 0, failed: 0, lastError: null as string | null, last: null as { next: RunPosition; step: number; phase?: string } | null };
  // Runs with `stages:` also say which phase `next` is in.
  const position = (s: TrainingState) => ({ next: s.next, step: s.step, ...(s.stage !== undefined ? { phase: s.stage } : {}) });
  if (state) checkpoints.last = position(state);
  const registry = defaultRegistry();
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const engineOptions: EngineOptions = {
    registry,
    specDir: path.dirname(path.resolve(specFile)),
    cacheDir,
    storage: opts.storage,
    log,
    warn,
    observe: (bus, phase) => {
      if (!opts.quiet) attachProgress(bus, phase);
      opts.observe?.(bus, phase);
    },
    resume: state,
    // --teacher-worker / --teacher-fold-bn: the frozen teacher's forward during training (engine/src/teacher-forward.ts).
    teacherForward: { ...(opts.teacherWorker ? { worker: teacherWorkerSource } : {}), ...(opts.teacherFoldBn ? { foldBatchNorm } : {}) },
    shouldStop: () => stop.signal !== null,
    onCheckpoint: (s) => {
      if (!staged) return;
      try {
        writeCheckpoint(staged.checkpointDir, s);
        checkpoints.written++;
        checkpoints.last = position(s);
      } catch (e) {
        // Training goes on: the previous checkpoint is intact, and the next epoch end tries again.
        checkpoints.failed++;
        checkpoints.lastError = isKdError(e) ? (e as KdError).format() : String(e);
        warn(`warning: checkpoint not written (the previous one is kept): ${checkpoints.lastError}`);
      }
    },
    // A teacher trained from labels checkpoints every epoch into <cacheDir>/teachers/<key>.partial: a killed run resumes it.
    ...(cacheDir ? { teacherCheckpoints: teacherCheckpointFiles(cacheDir) } : {}),
  };
  let engine: Engine | null = null;
  if (opts.signals !== false) stop.install();
  try {
    // Every run the spec implies (teachers, generations, the run itself), checked before anything trains.
    const plan = await planRun(spec, engineOptions);
    for (const w of registry.loadedPackages().flatMap((p) => p.warnings ?? [])) warn(w);
    if (opts.plan) {
      return { outDir, result: null, metrics: {}, status: 'planned', exitCode: 0, plan: describePlan(plan) };
    }
    if (from && plan.generations) {
      throw new KdError('KD_SPEC_INVALID', `'${plan.generations.id}' trains ${plan.generations.count} generations, each cached when it finishes; --resume continues one engine run only`, {
        path: `plugins[${plan.generations.index}]`,
        fix: `run the spec again without --resume${engineOptions.cacheDir ? ` (generations already in ${path.join(engineOptions.cacheDir, 'teachers')} are reused)` : ''}`,
      });
    }
    staged = new StagedFolder(outDir, staging);
    const startedAt = new Date().toISOString();
    const executed = await executePlan(plan, engineOptions);
    engine = executed.engine;
    const result = executed.result;
    const interrupted = result.status === 'interrupted';
    // the record of the run: plugin defaults filled, paths absolute, packages named (re-runnable from anywhere)
    const record = { spec: resolvedSpec(spec, registry, engineOptions.specDir as string, plan.storage), packages: registry.loadedPackages() };
    const metrics = await writeRun(staged, specFile, record, result, startedAt, {
      checkpoints,
      signal: stop.signal,
      resumedFrom: from ? { dir: opts.resume as string, ...from.checkpoint.next, step: from.checkpoint.step } : null,
    });
    if (engine) await writeAdapters(staged, engine); // adapters/: every plugin's adapters, buffers and state (adapters.ts)
    staged.commit({ keepCheckpoint: interrupted });
    if (interrupted) {
      log(`wrote ${outDir} (interrupted${checkpoints.last ? `; continue with \`${command} --resume ${outDir}\`` : ''})`);
    } else log(`wrote ${outDir}`);
    return { outDir, result, metrics, status: result.status, exitCode: interrupted ? stop.exitCode || 1 : 0, ...(stop.signal ? { signal: stop.signal } : {}) };
  } catch (e) {
    if (staged?.abort()) warn(`the last checkpoint is kept in ${staged.staging}: continue with \`${command} --resume ${staged.staging}\``);
    if (isKdError(e) && (e as KdError).code === 'KD_INTERRUPTED') Object.assign(e as object, { exitCode: stop.exitCode || 1 });
    throw e;
  } finally {
    stop.uninstall();
    (engine as Engine | null)?.dispose();
  }
}

interface RunNotes {
  checkpoints: { written: number; failed: number; lastError: string | null; last: { next: RunPosition; step: number } | null };
  signal: NodeJS.Signals | null;
  /** This process's `--resume` folder (as given) and the step it continued from. */
  resumedFrom: { dir: string; epoch: number; batchIndex: number; step: number } | null;
}

async function writeRun(
  staged: StagedFolder,
  specFile: string,
  record: { spec: RunSpec; packages: readonly LoadedPackage[] },
  result: RunResult,
  startedAt: string,
  notes: RunNotes,
): Promise<Record<string, unknown>> {
  const interrupted = result.status === 'interrupted';
  const spec = record.spec;
  const head = [`# the resolved spec of ${path.resolve(specFile)}: plugin defaults filled in, paths absolute; \`kd run\` it from any folder`, ...packageLines(record.packages)];
  staged.write('spec.resolved.yaml', `${head.join('\n')}\n${stringifySpec(spec)}`);
  staged.write('history.jsonl', result.history.map((h) => JSON.stringify(h)).join('\n') + '\n');
  const students = result.roles.filter((r) => r.kind === 'student').map((r) => r.name);
  const tools = (await import('@tfkd/models')).modelTools;
  for (const role of students) {
    await staged.saveInto(students.length === 1 ? 'student' : path.join('students', role), (dir) => tools.save(result.models.get(role) as never, dir));
  }
  // Players (an adversarial critic, spec `players:`): their trained models beside the student.
  for (const name of result.players ?? []) {
    await staged.saveInto(path.join('players', name), (dir) => tools.save(result.models.get(name) as never, dir));
  }
  // Post-training analysis (temperature fit) only for a finished classification run (a dense task's outputs are maps, not class scores).
  const calibration = interrupted || runTask(spec) !== 'classification' ? {} : await calibrationArtifacts(result, (name, svg) => staged.write(name, svg));
  const eval_ = Object.fromEntries(
    Object.entries(result.eval).map(([role, m]) => [role, { ...m, ...(calibration[role] ?? {}) }]),
  );
  const metrics = {
    status: result.status,
    spec: path.resolve(specFile),
    versions: versions(),
    backend: { name: result.backend.name, label: result.backend.label, requested: result.backend.requested },
    seed: spec.seed,
    ...(record.packages.length ? { packages: record.packages } : {}),
    dataset: result.dataset,
    ...(result.players ? { players: result.players } : {}),
    epochs: spec.train.epochs,
    epochsDone: result.history.length,
    ...(interrupted
      ? {
          signal: notes.signal,
          stoppedAt: result.stoppedAt,
          // The checkpoint in this folder (`kd run SPEC --resume FOLDER` continues from it): null when none could be written.
          checkpoint: notes.checkpoints.last ? { dir: CHECKPOINT_DIR, ...notes.checkpoints.last } : null,
        }
      : {}),
    ...(result.resumes > 0 ? { resumes: result.resumes, resumedFrom: notes.resumedFrom } : {}),
    checkpoints: { written: notes.checkpoints.written, failed: notes.checkpoints.failed, ...(notes.checkpoints.lastError ? { lastError: notes.checkpoints.lastError } : {}) },
    eval: eval_,
    teachers: result.teachers,
    ledger: result.ledger,
    wallSeconds: result.seconds,
    startedAt,
    finishedAt: new Date().toISOString(),
  };
  staged.write('metrics.json', JSON.stringify(metrics, null, 2) + '\n');
  // Per-term loss and total, accuracy per role with the teachers as reference lines, learning rate (charts.ts).
  // A dense task's panels show its metric (`map`, `miou`) where classification shows accuracy.
  const metric = ({ classification: 'accuracy', detection: 'map', segmentation: 'miou' } as const)[runTask(spec)];
  const teachers = Object.fromEntries(result.roles.filter((r) => r.kind === 'teacher' && result.eval[r.name]?.[metric] !== undefined).map((r) => [r.name, result.eval[r.name][metric]]));
  staged.write('training-curves.svg', await trainingCurvesSvg({ title: path.basename(specFile), history: result.history, students, teachers, ...(metric === 'accuracy' ? {} : { metric }) }));
  return metrics;
}
