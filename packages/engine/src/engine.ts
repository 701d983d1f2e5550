import {
  CostLedger,
  epochBatches,
  LifecycleBus,
  setLearningRate,
  type DataSplits,
  type EpochSummary,
  type Plugin,
  type RunSpec,
  type RunStartInfo,
  runTask,
  type TrainSpec,
} from '@tfkd/kd-core';
import { selectBackend, type SelectedBackend } from './backend';
import type { OutputCache } from './cache';
import type { RunPosition, TrainingState } from './checkpoint';
import { yieldToEventLoop } from './hash';
import { frozenState, teacherCaches, trainHost, trainUpToLayers, type UpTo } from './host';
import { resolvePlugins, type ResolvedPlugin } from './resolve';
import { learningRateAt, type RoleRuntime } from './roles';
import { loadRunData } from './run-data';
import type { PlayerRuntime } from './players';
import { prepareRoles } from './setup';
import { resolvePhases, type Phase } from './stages';
import { TeacherForward } from './teacher-forward';
import { captureState, checkResumable, restoreOptimizers, restoreState, type RunParts } from './state';
import { evaluateRoles } from './evaluate-task';
import { trainStep, type StepResult, type TrainHost } from './step';
import type { EngineOptions, RunResult } from './types';

export type { EngineOptions, RunResult, TeacherCheckpoints, TeacherForwardOptions, TeacherSource, TeacherSourceFactory, TeacherSourceRequest } from './types';

/** Where a run stopped on request: the position, its phase and host, and the epoch's sums so far. */
interface Stop {
  at: RunPosition;
  phase: Phase;
  host: TrainHost;
  progress: TrainingState['epochProgress'];
}

/**
 * One run of one spec whose teachers exist (loaded, or handed over by the plan's executor):
 * `prepare()` resolves and checks plugins, options, data, models and taps; `run()` trains. A spec
 * whose teacher is trained from labels goes through `planRun` → `executePlan` (or `runSpec`).
 */
export class Engine {
  readonly bus = new LifecycleBus();
  readonly ledger = new CostLedger();
  private readonly phase: string;
  private backend!: SelectedBackend;
  private data!: DataSplits & { note?: string };
  private roles = new Map<string, RoleRuntime>();
  /** Players (spec `players:`): trainable models with their own optimizer (players.ts). */
  private players = new Map<string, PlayerRuntime>();
  private plugins: ResolvedPlugin[] = [];
  /** Declared stages (spec `stages:`), then the main phase; one entry for a spec without stages. */
  private phases: Phase[] = [];
  private upTo: UpTo = new Map();
  private instances: Plugin[] = [];
  private teachers: RunResult['teachers'] = {};
  private prepared = false;
  /** Frozen teachers' fast forward (`teacherForward` option), while a run or a stepper lasts. */
  private forward: TeacherForward | null = null;

  constructor(
    readonly spec: RunSpec,
    private readonly opts: EngineOptions,
  ) {
    this.phase = opts.phase ?? 'distill';
  }

  private log(line: string): void {
    this.opts.log?.(line);
  }

  private get parts(): RunParts & { bus: LifecycleBus; data: DataSplits } {
    const { spec, phase, phases, backend, roles, players, plugins, instances, ledger, bus, data } = this;
    return { spec, phase, phases, backend, roles, players, plugins, instances, ledger, bus, data, log: (l) => this.log(l) };
  }

  async prepare(): Promise<void> {
    if (this.prepared) return;
    const { registry } = this.opts;
    const specDir = this.opts.specDir ?? '.';
    await registry.loadPackages(this.spec.packages, specDir);
    this.backend = this.opts.backend ?? (await selectBackend(this.spec.backend, registry.backends()));
    ({ plugins: this.plugins, phases: this.phases } = resolvePhases(this.spec, registry, resolvePlugins(this.spec, registry), this.phase));
    this.data = this.opts.data ?? (await loadRunData(this.spec, registry, specDir));
    const setup = await prepareRoles({
      spec: this.spec,
      ledger: this.ledger,
      registry,
      specDir,
      storage: this.opts.storage ?? registry.storage(),
      data: this.data,
      plugins: this.plugins,
      log: (l) => this.log(l),
      teachers: this.opts.teachers,
      models: this.opts.models,
      dryRun: this.opts.dryRun,
    });
    this.roles = setup.roles;
    this.players = setup.players;
    this.teachers = setup.teachers;
    this.instances = setup.instances;
    this.upTo = trainUpToLayers(this.phases, this.roles);
    this.instances.forEach((p, i) => p.register(this.bus.forPlugin(p.name, this.plugins[i].stage, i, this.plugins[i].specPath)));
    if (!this.opts.dryRun) this.opts.observe?.(this.bus, this.phase);
    this.prepared = true;
  }

  async run(): Promise<RunResult> {
    await this.prepare();
    if (this.opts.dryRun) throw new Error('Engine: a dry-run engine only checks (prepare); it does not train');
    const t0 = Date.now();
    const resume = this.opts.resume ?? null;
    const roleList = [...this.roles.values()];
    const teachers = roleList.filter((r) => r.info.kind === 'teacher');
    const staged = this.spec.stages !== undefined;
    const dataset = this.datasetInfo();
    if (resume) checkResumable(this.parts, resume, dataset);
    // The phase the run starts (or resumes) in: a checkpoint of a staged run names it.
    const startPhase = resume ? this.phases.findIndex((p) => p.name === (resume.stage ?? this.phase)) : 0;
    const at = (phase: Phase) => (staged ? { phase: phase.name } : {});
    const resumedFrom = resume ? { ...resume.next, step: resume.step, ...at(this.phases[startPhase]) } : undefined;
    await this.bus.emitAsync('runStart', this.runStartInfo(resumedFrom));

    const caches = teacherCaches(this.parts);
    const progress: Progress = { eval: {}, logits: {}, history: [], step: 0, skipped: 0, priorSeconds: 0, t0, dataset, resumes: resume ? resume.resumes + 1 : 0 };
    if (resume) {
      // After runStart, so whatever a plugin initialises there is overwritten by the saved state.
      // (The optimizers are restored when their phase starts, in runPhase.)
      restoreState(this.parts, resume, caches);
      Object.assign(progress.eval, resume.eval);
      progress.history.push(...resume.history);
      progress.step = resume.step;
      progress.skipped = resume.skipped;
      progress.priorSeconds = resume.seconds;
      const where = staged ? `${this.phases[startPhase].name} ` : '';
      const { epoch, batchIndex } = resume.next;
      this.log(`resuming at ${where}epoch ${epoch}${batchIndex > 0 ? `, batch ${batchIndex + 1}` : ''} (step ${progress.step}) from a checkpoint of ${resume.createdAt}`);
    } else if (teachers.length > 0) {
      // Teachers are evaluated once, before training (a resumed run has their numbers in its checkpoint).
      const rep = await evaluateRoles(runTask(this.spec), this.bus, teachers, this.data.test, { phase: this.phase, epoch: 0, logits: progress.logits });
      Object.assign(progress.eval, rep.metrics);
    }

    let stop: Stop | null = null;
    this.forward = await this.startForward();
    try {
      for (let pi = startPhase; pi < this.phases.length && !stop; pi++) {
        stop = await this.runPhase(this.phases[pi], caches, progress, resume !== null && pi === startPhase ? resume : null);
      }
    } finally {
      // At the end, on an error and on a stop: no worker outlives the run.
      await this.forward?.close();
    }
    if (staged) this.bus.setInactive([]);
    if (stop && this.opts.onCheckpoint) await this.opts.onCheckpoint(await this.snapshot(stop.host, stop.phase, stop.at, stop.progress, progress));
    const seconds = progress.priorSeconds + (Date.now() - t0) / 1000;
    const status = stop ? 'interrupted' : 'completed';
    await this.bus.emitAsync('runEnd', { status, seconds, eval: progress.eval });
    if (stop) this.log(`stopped before ${staged ? `${stop.phase.name} ` : ''}epoch ${stop.at.epoch}, batch ${stop.at.batchIndex + 1} (step ${progress.step})`);
    return {
      status,
      spec: this.spec,
      backend: this.backend,
      dataset,
      roles: roleList.map((r) => r.info),
      eval: progress.eval,
      testLogits: progress.logits,
      history: progress.history,
      ledger: this.ledger.snapshot(),
      seconds,
      models: new Map([...roleList.map((r) => [r.info.name, r.model] as const), ...[...this.players.values()].map((p) => [p.info.name, p.model] as const)]),
      data: this.data,
      teachers: this.teachers,
      resumes: progress.resumes,
      ...(this.players.size > 0 ? { players: [...this.players.keys()] } : {}),
      ...(stop ? { stoppedAt: { ...stop.at, step: progress.step, ...at(stop.phase) } } : {}),
      ...(resumedFrom ? { resumedFrom } : {}),
    };
  }

  /**
   * One phase: fresh optimizers (a resumed phase gets its saved ones), then its epochs. Returns where
   * it stopped when a stop was requested, else null.
   */
  private async runPhase(phase: Phase, caches: Map<string, OutputCache>, run: Progress, resume: TrainingState | null): Promise<Stop | null> {
    const ptrain = phase.train;
    const students = [...this.roles.values()].filter((r) => r.info.kind === 'student');
    const host = trainHost(this.parts, phase, caches, this.upTo);
    const fwd = this.forward;
    host.teacherForward = fwd?.roles;
    if (resume) await restoreOptimizers(this.parts, resume);
    if (this.spec.stages !== undefined) this.bus.setInactive(this.plugins.filter((p) => !phase.active.has(p.name)).map((p) => p.name));
    const batchesPerEpoch = this.batchesPerEpoch(phase);
    const frozen = frozenState(this.upTo.get(phase.name), this.roles);
    // Each stage draws its batch order from a stream of its own; the main phase's is the run's seed.
    const orderSeed = phase.stage < 0 ? this.spec.seed : (this.spec.seed ^ Math.imul(phase.stage + 1, 0x85ebca6b)) >>> 0;
    const start: RunPosition = resume ? { ...resume.next } : { epoch: 1, batchIndex: 0 };
    const n = this.data.train.labels.length;
    let yielded = Date.now();
    try {
      for (let epoch = start.epoch; epoch <= ptrain.epochs; epoch++) {
        const te = Date.now();
        // Resuming inside this epoch: its sums so far come from the checkpoint, and epochStart has fired.
        const first = epoch === start.epoch ? start.batchIndex : 0;
        const carried = first > 0 ? (resume?.epochProgress ?? null) : null;
        for (const s of students) setLearningRate(s.optimizer as NonNullable<typeof s.optimizer>, learningRateAt(s.train as TrainSpec, epoch));
        for (const p of this.players.values()) setLearningRate(p.optimizer as NonNullable<typeof p.optimizer>, learningRateAt(p.train as TrainSpec, epoch));
        const lr = learningRateAt(students[0].train as TrainSpec, epoch);
        const batches = epochBatches(n, { batchSize: ptrain.batchSize, seed: orderSeed, epoch }).slice(0, batchesPerEpoch);
        const sums: Record<string, number> = carried ? { ...carried.sums } : { loss: 0 };
        let counted = carried?.counted ?? 0;
        const before = carried?.seconds ?? 0;
        // Teacher outputs computed ahead: the epoch's (or the resumed position's) first batch, and the next.
        fwd?.ahead(host, batches[first], batches[first + 1]);
        for (let batchIndex = first; batchIndex < batches.length; batchIndex++) {
          // Checked between steps: a stop request (SIGINT in the CLI) ends the run after the current step.
          // The loop otherwise never leaves the microtask queue, so yield once for signal handlers to run;
          // without a stop check, at least every 100 ms, so that the host's timers run (a BullMQ worker
          // renews its job's lock on one: a teacher trained inside a `kd worker` lost its job without it).
          if (this.opts.shouldStop || Date.now() - yielded > 100) {
            await yieldToEventLoop();
            yielded = Date.now();
          }
          if (this.opts.shouldStop?.()) {
            const progress = batchIndex > 0 ? { sums: { ...sums }, counted, seconds: before + (Date.now() - te) / 1000 } : null;
            return { at: { epoch, batchIndex }, phase, host, progress };
          }
          if (batchIndex === 0) await this.bus.emitAsync('epochStart', { phase: phase.name, epoch, epochs: ptrain.epochs });
          fwd?.ahead(host, batches[batchIndex], batches[batchIndex + 1]);
          const r = trainStep(host, { phase: phase.name, epoch, epochs: ptrain.epochs, batchIndex, step: run.step, indices: batches[batchIndex] });
          frozen?.reset();
          run.step++;
          if (r.skipped) run.skipped++;
          else {
            counted++;
            sums.loss += r.loss;
            for (const [k, v] of Object.entries(r.terms)) sums[k] = (sums[k] ?? 0) + v;
          }
          await this.bus.emitAsync('batchEnd', {
            phase: phase.name, epoch, batchIndex, batchesPerEpoch, step: run.step, loss: r.loss, terms: r.terms, learningRate: lr, images: r.images,
          });
        }
        const seconds = before + (Date.now() - te) / 1000;
        await fwd?.idle(caches, n);
        this.ledger.phaseTime(phase.name, seconds, batches.length);
        const train = Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, counted ? v / counted : NaN]));
        if (run.skipped > 0) train.skippedBatches = run.skipped;
        let evalMetrics: Record<string, Record<string, number>> = {};
        if (epoch % this.spec.evalEvery === 0 || epoch === ptrain.epochs) {
          evalMetrics = (await evaluateRoles(runTask(this.spec), this.bus, students, this.data.test, { phase: phase.name, epoch, logits: run.logits })).metrics;
          Object.assign(run.eval, evalMetrics);
        }
        const summary: EpochSummary = { phase: phase.name, epoch, epochs: ptrain.epochs, train, eval: evalMetrics, seconds, learningRate: lr };
        run.history.push(summary);
        await this.bus.emitAsync('epochEnd', summary);
        if (this.opts.onCheckpoint) await this.opts.onCheckpoint(await this.snapshot(host, phase, { epoch: epoch + 1, batchIndex: 0 }, null, run));
      }
    } finally {
      // Also on an error: the held copies are freed.
      frozen?.dispose();
    }
    return null;
  }

  private snapshot(host: TrainHost, phase: Phase, next: RunPosition, epochProgress: TrainingState['epochProgress'], run: Progress): Promise<TrainingState> {
    return captureState(this.parts, host.caches, {
      next, step: run.step, skipped: run.skipped, epochProgress, history: run.history, eval: run.eval,
      seconds: run.priorSeconds + (Date.now() - run.t0) / 1000, dataset: run.dataset, resumes: run.resumes,
      ...(this.spec.stages !== undefined ? { stage: phase.name } : {}),
    });
  }

  /**
   * Step-level access for benchmarks and soak tests: prepares the run and fires `runStart` (with
   * `run()`'s payload), then `step()` trains on the next batch of epoch 1's order (cycling) of the
   * main phase (declared stages are not stepped), as `run()` would, without evaluation or epoch
   * hooks. Returns the step's loss and terms.
   */
  async stepper(): Promise<{ step(): StepResult }> {
    await this.prepare();
    // As a run: plugins get runStart first (factor transfer pre-trains its paraphraser there).
    await this.bus.emitAsync('runStart', this.runStartInfo());
    const host = trainHost(this.parts, this.phases[this.phases.length - 1], teacherCaches(this.parts), this.upTo);
    const fwd = (this.forward ??= await this.startForward());
    host.teacherForward = fwd?.roles;
    const batches = epochBatches(this.data.train.labels.length, { batchSize: this.spec.train.batchSize, seed: this.spec.seed, epoch: 1 });
    let step = 0;
    return {
      step: () => {
        const batchIndex = step % batches.length;
        fwd?.ahead(host, batches[batchIndex], batches[(batchIndex + 1) % batches.length]);
        const r = trainStep(host, { phase: this.phase, epoch: 1, epochs: this.spec.train.epochs, batchIndex, step, indices: batches[batchIndex] });
        step++;
        return r;
      },
    };
  }

  /** The `teacherForward` option's folded teachers and teacher sources (null: none asked for or none applies). */
  private startForward(): Promise<TeacherForward | null> {
    return TeacherForward.start({
      roles: this.roles, plugins: this.plugins, data: this.data, backend: this.backend, options: this.opts.teacherForward,
      maxBatch: Math.max(...this.phases.map((p) => p.train.batchSize)), log: (l) => this.log(l), warn: this.opts.warn ?? ((l) => this.log(l)),
    });
  }

  private batchesPerEpoch(ph: Phase): number {
    const full = Math.ceil(this.data.train.labels.length / ph.train.batchSize);
    return Math.min(full, ph.train.maxBatches ?? full);
  }

  private datasetInfo(): RunStartInfo['dataset'] {
    return {
      name: this.data.train.name,
      source: this.data.train.source,
      train: this.data.train.labels.length,
      test: this.data.test.labels.length,
      ...(this.data.note || this.data.train.note ? { note: this.data.note ?? this.data.train.note } : {}),
    };
  }

  /** The `runStart` payload, for `run()` and `stepper()`. */
  private runStartInfo(resumed?: RunStartInfo['resumed']): RunStartInfo {
    return {
      runId: `${this.phase}-${this.spec.seed}`,
      backend: this.backend.name,
      seed: this.spec.seed,
      roles: [...this.roles.values()].map((r) => r.info),
      phases: this.phases.map((p) => ({ name: p.name, epochs: p.train.epochs, batchesPerEpoch: this.batchesPerEpoch(p) })),
      dataset: this.datasetInfo(),
      ...(resumed ? { resumed } : {}),
    };
  }

  /**
   * The run's plugin instances with their ids and validated options, after `prepare()` (and until
   * `dispose()`): the CLI saves their adapters and buffers next to the student (`savePluginStates`).
   */
  pluginInstances(): { name: string; id: string; options: unknown; plugin: Plugin }[] {
    return this.instances.map((plugin, i) => ({ name: plugin.name, id: this.plugins[i].def.id, options: this.plugins[i].options, plugin }));
  }

  /** The run's roles after `prepare()`: their models (a dry run's untrained ones) and taps. */
  roleRuntimes(): ReadonlyMap<string, RoleRuntime> {
    return this.roles;
  }

  /** The run's players (spec `players:`) after `prepare()`: their models and, once a phase runs, their optimizers. */
  playerRuntimes(): ReadonlyMap<string, PlayerRuntime> {
    return this.players;
  }

  /** Free the models (except those of the roles in `keep`), optimizers and plugin state. */
  dispose(keep: readonly string[] = []): void {
    // A stepper's worker (a run closes its own): terminated, its folded models freed.
    void this.forward?.close();
    for (const p of this.instances) p.dispose?.();
    const external = new Set(this.opts.models?.values() ?? []);
    for (const r of this.roles.values()) {
      r.optimizer?.dispose();
      if (!keep.includes(r.info.name) && !external.has(r.model)) r.model.dispose();
    }
    for (const p of this.players.values()) {
      p.optimizer?.dispose();
      if (!keep.includes(p.info.name)) p.model.dispose();
    }
    this.bus.complete();
  }
}

/** A run's running totals across its phases. */
interface Progress {
  eval: Record<string, Record<string, number>>;
  logits: Record<string, Float32Array>;
  history: EpochSummary[];
  step: number;
  skipped: number;
  priorSeconds: number;
  t0: number;
  dataset: RunStartInfo['dataset'];
  resumes: number;
}
