import { createHash } from 'crypto';
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { selectBackend, type SelectedBackend } from './backend';
import { OutputCache } from './cache';
import { LifecycleBus } from './bus';
import { checkSameSpec, specHash, type OptimizerState, type RunPosition, type TensorData, type TrainingState } from './checkpoint';
import { epochBatches, holdOut } from './data';
import { KdError } from './errors';
import type { EpochSummary, RoleInfo, RunStartInfo } from './hooks';
import { CostLedger, type LedgerSnapshot } from './ledger';
import type { Plugin } from './plugin';
import type { Registry } from './registry';
import { resolvePlugins, type ResolvedPlugin } from './resolve';
import { Rng } from './rng';
import { learningRateAt, makeOptimizer, setLearningRate, trainableVariables, type RoleRuntime } from './roles';
import { prepareRoles } from './setup';
import { TrainSpec, validate, type RunSpec } from './spec';
import { layersUpTo, resolvePhases, variablesOf, type Phase } from './stages';
import { evaluate, trainStep, type StepResult, type TrainHost } from './step';
import type { DataSplits } from './tokens';

export interface EngineOptions {
  registry: Registry;
  /** Folder that relative paths in the spec are resolved against. */
  specDir?: string;
  /** Teacher cache folder (null: no cache). */
  cacheDir?: string | null;
  log?: (line: string) => void;
  /** Called with the bus of every engine this run creates (the main run and teacher training). */
  observe?: (bus: LifecycleBus, phase: string) => void;
  /** Already loaded data / selected backend (teacher training reuses the parent's). */
  data?: DataSplits & { note?: string };
  backend?: SelectedBackend;
  phase?: string;
  /**
   * Continue from this state (`readCheckpoint`): the spec, data and teachers must be the ones it was
   * written with. Restored right after `runStart`; training continues at `state.next`.
   */
  resume?: TrainingState;
  /**
   * Called with the training state at the end of every epoch (after `epochEnd`) and when the run
   * stops on `shouldStop`; the engine awaits it. The CLI writes it with `writeCheckpoint`.
   */
  onCheckpoint?: (state: TrainingState) => void | Promise<void>;
  /**
   * Checked before every step: once it returns true the run stops (status `interrupted`), hands the
   * state at that step to `onCheckpoint`, and fires `runEnd`. Teacher training stops too (KD_INTERRUPTED).
   */
  shouldStop?: () => boolean;
}

export interface RunResult {
  /** `interrupted`: stopped on `shouldStop` before the last step (`stoppedAt` is the next step to run). */
  status: 'completed' | 'interrupted';
  spec: RunSpec;
  backend: SelectedBackend;
  dataset: RunStartInfo['dataset'];
  roles: RoleInfo[];
  /** Final evaluation: role → metric → value (teachers evaluated once, before training). */
  eval: Record<string, Record<string, number>>;
  history: EpochSummary[];
  ledger: LedgerSnapshot;
  seconds: number;
  models: Map<string, LayersModel>;
  /** The data the run used (plain arrays), for post-run analysis such as calibration. */
  data: DataSplits;
  teachers: Record<string, { cached: boolean; key: string | null; dir: string | null }>;
  /** Where an interrupted run stopped: the next step to run. */
  stoppedAt?: RunPosition & { step: number; phase?: string };
  /** Where this process took the run up from its checkpoint. */
  resumedFrom?: RunPosition & { step: number; phase?: string };
  /** How many times the run was resumed (0 for a run in one go). */
  resumes: number;
}

/**
 * Runs one spec: resolves and checks everything first (plugins, options, data, models, taps), then
 * trains. `prepare()` is where every spec error surfaces, before any training starts.
 */
export class Engine {
  readonly bus = new LifecycleBus();
  readonly ledger = new CostLedger();
  private readonly phase: string;
  private backend!: SelectedBackend;
  private data!: DataSplits & { note?: string };
  private roles = new Map<string, RoleRuntime>();
  private plugins: ResolvedPlugin[] = [];
  /** Declared stages (spec `stages:`), then the main phase; one entry for a spec without stages. */
  private phases: Phase[] = [];
  /** Per stage with `trainUpTo`: per student, the layers that train. */
  private upTo = new Map<string, Map<string, Set<string>>>();
  private instances: Plugin[] = [];
  private teachers: RunResult['teachers'] = {};
  private prepared = false;
  private prints: Record<string, string> | null = null;

  constructor(
    readonly spec: RunSpec,
    private readonly opts: EngineOptions,
  ) {
    this.phase = opts.phase ?? 'distill';
  }

  private log(line: string): void {
    this.opts.log?.(line);
  }

  async prepare(): Promise<void> {
    if (this.prepared) return;
    const { registry } = this.opts;
    const specDir = this.opts.specDir ?? process.cwd();
    await registry.loadPackages(this.spec.packages, specDir);
    this.backend = this.opts.backend ?? (await selectBackend(this.spec.backend, registry.backends()));
    ({ plugins: this.plugins, phases: this.phases } = resolvePhases(this.spec, registry, resolvePlugins(this.spec, registry), this.phase));
    this.data = this.opts.data ?? (await this.loadData());
    const setup = await prepareRoles(this, {
      registry,
      specDir,
      cacheDir: this.opts.cacheDir ?? null,
      data: this.data,
      plugins: this.plugins,
      backend: this.backend,
      log: (l) => this.log(l),
      observe: this.opts.observe,
      shouldStop: this.opts.shouldStop,
    });
    this.roles = setup.roles;
    this.teachers = setup.teachers;
    this.instances = setup.instances;
    this.checkTrainUpTo();
    this.instances.forEach((p, i) => p.register(this.bus.forPlugin(p.name, this.plugins[i].stage, i, this.plugins[i].specPath)));
    this.opts.observe?.(this.bus, this.phase);
    this.prepared = true;
  }

  async run(): Promise<RunResult> {
    await this.prepare();
    const t0 = Date.now();
    const spec = this.spec;
    const resume = this.opts.resume ?? null;
    const roleList = [...this.roles.values()];
    const students = roleList.filter((r) => r.info.kind === 'student');
    const teachers = roleList.filter((r) => r.info.kind === 'teacher');
    const n = this.data.train.labels.length;
    const staged = this.spec.stages !== undefined;
    const dataset = this.datasetInfo();
    if (resume) this.checkResumable(resume, dataset);
    // The phase the run starts (or resumes) in: a checkpoint of a staged run names it.
    const startPhase = resume ? this.phases.findIndex((p) => p.name === (resume.stage ?? this.phase)) : 0;
    const start: RunPosition = resume ? { ...resume.next } : { epoch: 1, batchIndex: 0 };
    const at = (phase: Phase) => (staged ? { phase: phase.name } : {});
    const resumedFrom = resume ? { ...resume.next, step: resume.step, ...at(this.phases[startPhase]) } : undefined;
    await this.bus.emitAsync('runStart', this.runStartInfo(resumedFrom));

    const caches = this.teacherCaches(teachers);
    const finalEval: Record<string, Record<string, number>> = {};
    const history: EpochSummary[] = [];
    let step = 0;
    let skipped = 0;
    let priorSeconds = 0;
    if (resume) {
      // After runStart, so whatever a plugin initialises there is overwritten by the saved state.
      // (The optimizers are restored when their phase starts, below.)
      this.restore(resume, caches);
      Object.assign(finalEval, resume.eval);
      history.push(...resume.history);
      step = resume.step;
      skipped = resume.skipped;
      priorSeconds = resume.seconds;
      const where = staged ? `${this.phases[startPhase].name} ` : '';
      this.log(`resuming at ${where}epoch ${start.epoch}${start.batchIndex > 0 ? `, batch ${start.batchIndex + 1}` : ''} (step ${step}) from a checkpoint of ${resume.createdAt}`);
    } else if (teachers.length > 0) {
      // Teachers are evaluated once, before training (a resumed run has their numbers in its checkpoint).
      const rep = await evaluate(this.bus, teachers, this.data.test, { phase: this.phase, epoch: 0 });
      Object.assign(finalEval, rep.metrics);
    }
    const resumes = resume ? resume.resumes + 1 : 0;
    const snapshot = (host: TrainHost, phase: Phase, next: RunPosition, epochProgress: TrainingState['epochProgress']): Promise<TrainingState> =>
      this.snapshot(host, {
        next, step, skipped, epochProgress, history, eval: finalEval, seconds: priorSeconds + (Date.now() - t0) / 1000, dataset, resumes,
        ...(staged ? { stage: phase.name } : {}),
      });

    let stopped: RunPosition | null = null;
    let stoppedPhase: Phase | null = null;
    let stoppedProgress: TrainingState['epochProgress'] = null;
    let stoppedHost: TrainHost | null = null;
    for (let pi = startPhase; pi < this.phases.length && !stopped; pi++) {
      const phase = this.phases[pi];
      const ptrain = phase.train;
      // Each phase starts with fresh optimizers (its own `train:`); a resumed one gets its saved state.
      const host = this.trainHost(phase, caches);
      const resuming = resume !== null && pi === startPhase;
      if (resuming) await this.restoreOptimizers(resume);
      if (staged) this.bus.setInactive(this.plugins.filter((p) => !phase.active.has(p.name)).map((p) => p.name));
      const batchesPerEpoch = this.batchesPerEpoch(phase);
      const frozen = this.frozenState(phase);
      // Each stage draws its batch order from a stream of its own; the main phase's is the run's seed.
      const orderSeed = phase.stage < 0 ? spec.seed : (spec.seed ^ Math.imul(phase.stage + 1, 0x85ebca6b)) >>> 0;
      const phaseStart: RunPosition = resuming ? start : { epoch: 1, batchIndex: 0 };
      try {
        for (let epoch = phaseStart.epoch; epoch <= ptrain.epochs && !stopped; epoch++) {
          const te = Date.now();
          // Resuming inside this epoch: its sums so far come from the checkpoint, and epochStart has fired.
          const first = epoch === phaseStart.epoch ? phaseStart.batchIndex : 0;
          const carried = first > 0 ? resume?.epochProgress ?? null : null;
          for (const s of students) setLearningRate(s.optimizer as tf.Optimizer, learningRateAt(s.train as TrainSpec, epoch));
          const lr = learningRateAt(students[0].train as TrainSpec, epoch);
          const batches = epochBatches(n, { batchSize: ptrain.batchSize, seed: orderSeed, epoch }).slice(0, batchesPerEpoch);
          const sums: Record<string, number> = carried ? { ...carried.sums } : { loss: 0 };
          let counted = carried?.counted ?? 0;
          const before = carried?.seconds ?? 0;
          let started = first > 0;
          for (let batchIndex = first; batchIndex < batches.length; batchIndex++) {
            // Checked between steps: a stop request (SIGINT in the CLI) ends the run after the current step.
            // The loop otherwise never leaves the microtask queue, so yield once for signal handlers to run.
            if (this.opts.shouldStop) await new Promise<void>((resolve) => setImmediate(resolve));
            if (this.opts.shouldStop?.()) {
              stopped = { epoch, batchIndex };
              stoppedPhase = phase;
              stoppedHost = host;
              stoppedProgress = batchIndex > 0 ? { sums: { ...sums }, counted, seconds: before + (Date.now() - te) / 1000 } : null;
              break;
            }
            if (!started) {
              await this.bus.emitAsync('epochStart', { phase: phase.name, epoch, epochs: ptrain.epochs });
              started = true;
            }
            const r = trainStep(host, { phase: phase.name, epoch, epochs: ptrain.epochs, batchIndex, step, indices: batches[batchIndex] });
            frozen?.reset();
            step++;
            if (r.skipped) skipped++;
            else {
              counted++;
              sums.loss += r.loss;
              for (const [k, v] of Object.entries(r.terms)) sums[k] = (sums[k] ?? 0) + v;
            }
            await this.bus.emitAsync('batchEnd', {
              phase: phase.name, epoch, batchIndex, batchesPerEpoch, step, loss: r.loss, terms: r.terms, learningRate: lr, images: r.images,
            });
          }
          if (stopped) break;
          const trainSeconds = before + (Date.now() - te) / 1000;
          this.ledger.phaseTime(phase.name, trainSeconds, batches.length);
          const train = Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, counted ? v / counted : NaN]));
          if (skipped > 0) train.skippedBatches = skipped;
          let evalMetrics: Record<string, Record<string, number>> = {};
          if (epoch % spec.evalEvery === 0 || epoch === ptrain.epochs) {
            evalMetrics = (await evaluate(this.bus, students, this.data.test, { phase: phase.name, epoch })).metrics;
            Object.assign(finalEval, evalMetrics);
          }
          const summary: EpochSummary = {
            phase: phase.name, epoch, epochs: ptrain.epochs, train, eval: evalMetrics, seconds: before + (Date.now() - te) / 1000, learningRate: lr,
          };
          history.push(summary);
          await this.bus.emitAsync('epochEnd', summary);
          if (this.opts.onCheckpoint) await this.opts.onCheckpoint(await snapshot(host, phase, { epoch: epoch + 1, batchIndex: 0 }, null));
        }
      } finally {
        // Also on an error: the held copies are freed.
        frozen?.dispose();
      }
    }
    if (staged) this.bus.setInactive([]);
    if (stopped && this.opts.onCheckpoint) await this.opts.onCheckpoint(await snapshot(stoppedHost as TrainHost, stoppedPhase as Phase, stopped, stoppedProgress));
    const seconds = priorSeconds + (Date.now() - t0) / 1000;
    const status = stopped ? 'interrupted' : 'completed';
    await this.bus.emitAsync('runEnd', { status, seconds, eval: finalEval });
    if (stopped) this.log(`stopped before ${staged ? `${(stoppedPhase as Phase).name} ` : ''}epoch ${stopped.epoch}, batch ${stopped.batchIndex + 1} (step ${step})`);
    return {
      status,
      spec,
      backend: this.backend,
      dataset,
      roles: roleList.map((r) => r.info),
      eval: finalEval,
      history,
      ledger: this.ledger.snapshot(),
      seconds,
      models: new Map(roleList.map((r) => [r.info.name, r.model])),
      data: this.data,
      teachers: this.teachers,
      resumes,
      ...(stopped ? { stoppedAt: { ...stopped, step, ...at(stoppedPhase as Phase) } } : {}),
      ...(resumedFrom ? { resumedFrom } : {}),
    };
  }

  /**
   * A `trainUpTo` stage: the non-trainable weights of the frozen layers (batch-norm moving statistics,
   * which a training-mode forward updates) as they were when the phase started; `reset()` puts them
   * back after every step, so nothing after the named layer changes during the stage.
   */
  private frozenState(phase: Phase): { reset(): void; dispose(): void } | null {
    const upTo = this.upTo.get(phase.name);
    if (!upTo) return null;
    const held: { v: tf.Variable; value: tf.Tensor }[] = [];
    for (const [role, layers] of upTo) {
      const model = (this.roles.get(role) as RoleRuntime).model;
      for (const l of model.layers) {
        if (layers.has(l.name)) continue;
        for (const w of l.nonTrainableWeights) {
          const v = w.read() as tf.Variable;
          held.push({ v, value: tf.clone(v) });
        }
      }
    }
    if (held.length === 0) return null;
    return {
      reset: () => held.forEach(({ v, value }) => v.assign(value)),
      dispose: () => held.forEach(({ value }) => value.dispose()),
    };
  }

  /** `trainUpTo` of every stage: the layer must exist in every student; the layers up to it train. */
  private checkTrainUpTo(): void {
    for (const phase of this.phases) {
      if (!phase.trainUpTo) continue;
      const perRole = new Map<string, Set<string>>();
      for (const r of [...this.roles.values()].filter((x) => x.info.kind === 'student')) {
        const layers = layersUpTo(r.model, phase.trainUpTo);
        if (!layers) {
          throw new KdError('KD_SPEC_INVALID', `stage '${phase.name}': role '${r.info.name}' (${r.model.name}) has no layer '${phase.trainUpTo}'`, {
            path: `${phase.specPath}.trainUpTo`,
            fix: `name a layer of the student, usually the guided layer of its hint (one of: ${r.model.layers.map((l) => l.name).join(', ')})`,
          });
        }
        perRole.set(r.info.name, layers);
      }
      this.upTo.set(phase.name, perRole);
    }
  }

  /** The training state at a step boundary (what a checkpoint holds). */
  private async snapshot(
    host: TrainHost,
    at: Pick<TrainingState, 'next' | 'step' | 'skipped' | 'epochProgress' | 'history' | 'eval' | 'seconds' | 'dataset' | 'resumes' | 'stage'>,
  ): Promise<TrainingState> {
    const students = [...this.roles.values()].filter((r) => r.info.kind === 'student');
    const roles: TrainingState['roles'] = [];
    for (const s of students) {
      roles.push({
        name: s.info.name,
        weights: s.model.weights.map((w) => tensorData(w.read(), w.name)),
        optimizer: s.optimizer ? await optimizerState(s.optimizer) : null,
      });
    }
    return {
      specHash: specHash(this.spec),
      spec: this.spec,
      phase: this.phase,
      ...(at.stage !== undefined ? { stage: at.stage } : {}),
      backend: this.backend.name,
      next: { ...at.next },
      step: at.step,
      skipped: at.skipped,
      epochProgress: at.epochProgress,
      history: at.history.map((h) => ({ ...h })),
      eval: structuredClone(at.eval),
      ledger: structuredClone(this.ledger.getState()),
      seconds: at.seconds,
      dataset: { name: at.dataset.name, train: at.dataset.train, test: at.dataset.test },
      teachers: this.teacherFingerprints(),
      roles,
      plugins: this.instances.map((p, i) => ({
        name: p.name,
        variables: (p.variables?.() ?? []).map((v) => tensorData(v, v.name)),
        buffers: (p.buffers?.() ?? []).map((v) => tensorData(v, v.name)),
        ...(p.getState ? { state: p.getState() } : {}),
        rng: this.plugins[i].rng.getState().map((v) => (Number.isNaN(v) ? null : v)),
      })),
      caches: [...(host.caches ?? new Map<string, OutputCache>()).entries()].map(([role, c]) => ({ role, ...c.state() })),
      resumes: at.resumes,
      createdAt: new Date().toISOString(),
    };
  }

  /** Everything that must equal the checkpoint's for a resumed run to continue the same run. */
  private checkResumable(state: TrainingState, dataset: { name: string; train: number; test: number }): void {
    checkSameSpec(this.spec, state);
    if (state.phase !== this.phase) {
      throw new KdError('KD_RESUME_MISMATCH', `the checkpoint is of phase '${state.phase}', this run is '${this.phase}'`, { fix: 'resume a distillation checkpoint' });
    }
    if (!this.phases.some((p) => p.name === (state.stage ?? this.phase))) {
      throw new KdError('KD_RESUME_MISMATCH', `the checkpoint stopped in stage '${state.stage}', which this run does not declare`, {
        path: 'stages',
        fix: 'resume with the spec the run started with',
      });
    }
    if (state.dataset.train !== dataset.train || state.dataset.test !== dataset.test) {
      throw new KdError('KD_RESUME_MISMATCH', `the data has ${dataset.train} train / ${dataset.test} test samples, the checkpoint's had ${state.dataset.train} / ${state.dataset.test}`, {
        path: 'data',
        fix: 'resume on the data the run started with (the same data folder and options)',
      });
    }
    const prints = this.teacherFingerprints();
    for (const [role, print] of Object.entries(state.teachers)) {
      if (prints[role] !== print) {
        throw new KdError('KD_RESUME_MISMATCH', `teacher '${role}' has other weights than when the checkpoint was written (fingerprint ${prints[role] ?? 'none'} vs ${print})`, {
          path: role,
          fix: 'resume with the same teacher: the same `load:` folder, or the same teacher cache (--cache-dir) the run started with',
        });
      }
    }
    if (state.backend !== this.backend.name) {
      this.log(`note: the checkpoint was written on ${state.backend}, this run uses ${this.backend.name}: the continuation is not bit-identical to an uninterrupted run`);
    }
  }

  /**
   * Restore students' weights, plugin tensors, state and generators, ledger and teacher caches. The
   * optimizers belong to the phase the checkpoint stopped in: `restoreOptimizers` once it has them.
   */
  private restore(state: TrainingState, caches: Map<string, OutputCache>): void {
    const mismatch = checkpointMismatch;
    for (const s of [...this.roles.values()].filter((r) => r.info.kind === 'student')) {
      const saved = state.roles.find((r) => r.name === s.info.name);
      if (!saved) throw mismatch(`no saved weights for role '${s.info.name}'`);
      assignAll(s.model.weights.map((w) => w.read() as tf.Variable), saved.weights, `role '${s.info.name}'`, mismatch);
    }
    if (state.plugins.length !== this.instances.length) throw mismatch(`${state.plugins.length} plugins saved, the run has ${this.instances.length}`);
    this.instances.forEach((p, i) => {
      const saved = state.plugins[i];
      if (saved.name !== p.name) throw mismatch(`plugin ${i} is '${p.name}', the checkpoint's '${saved.name}'`);
      assignAll(p.variables?.() ?? [], saved.variables, `plugin '${p.name}' variables`, mismatch);
      assignAll(p.buffers?.() ?? [], saved.buffers, `plugin '${p.name}' buffers`, mismatch);
      if (saved.state !== undefined) p.setState?.(saved.state);
      this.plugins[i].rng.setState(saved.rng.map((v) => (v === null ? NaN : v)));
    });
    this.ledger.setState(state.ledger);
    for (const c of state.caches) caches.get(c.role)?.restore(c);
  }

  private async restoreOptimizers(state: TrainingState): Promise<void> {
    for (const s of [...this.roles.values()].filter((r) => r.info.kind === 'student')) {
      const saved = state.roles.find((r) => r.name === s.info.name);
      if (s.optimizer && saved?.optimizer) await restoreOptimizer(s.optimizer, saved.optimizer, `role '${s.info.name}'`, checkpointMismatch);
    }
  }

  /** sha256 (16 hex) of each teacher's weights, computed once. */
  private teacherFingerprints(): Record<string, string> {
    if (!this.prints) {
      this.prints = {};
      for (const t of [...this.roles.values()].filter((r) => r.info.kind === 'teacher')) {
        const h = createHash('sha256');
        for (const w of t.model.weights) {
          const v = w.read().dataSync();
          h.update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
        }
        this.prints[t.info.name] = h.digest('hex').slice(0, 16);
      }
    }
    return this.prints;
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
    const host = this.trainHost(this.phases[this.phases.length - 1], this.teacherCaches([...this.roles.values()].filter((r) => r.info.kind === 'teacher')));
    const n = this.data.train.labels.length;
    const batches = epochBatches(n, { batchSize: this.spec.train.batchSize, seed: this.spec.seed, epoch: 1 });
    let step = 0;
    return {
      step: () => {
        const batchIndex = step % batches.length;
        const r = trainStep(host, { phase: this.phase, epoch: 1, epochs: this.spec.train.epochs, batchIndex, step, indices: batches[batchIndex] });
        step++;
        return r;
      },
    };
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

  /**
   * A phase's fresh optimizers per student (the run's `train`, the role's overrides, then a stage's)
   * and the step's view of the run: the phase's active plugins, their weights and variables.
   */
  private trainHost(phase: Phase, caches: Map<string, OutputCache>): TrainHost {
    const spec = this.spec;
    const roleList = [...this.roles.values()];
    const students = roleList.filter((r) => r.info.kind === 'student');
    const teachers = roleList.filter((r) => r.info.kind === 'teacher');
    for (const s of students) {
      s.train = TrainSpec.parse({ ...spec.train, ...(s.spec.train ?? {}), ...phase.overrides });
      s.optimizer?.dispose();
      s.optimizer = makeOptimizer(s.train);
    }
    const active = this.plugins.filter((p) => phase.active.has(p.name));
    const pluginVars = this.instances.filter((_, i) => phase.active.has(this.plugins[i].name)).flatMap((p) => p.variables?.() ?? []);
    const upTo = this.upTo.get(phase.name);
    return {
      bus: this.bus,
      train: this.data.train,
      roles: this.roles,
      roleInfos: roleList.map((r) => r.info),
      ledger: this.ledger,
      numClasses: this.data.train.numClasses,
      weightOf: (owner) => phase.active.get(owner) ?? this.plugins.find((p) => p.name === owner)?.entry.weight ?? 1,
      rngOf: (owner) => this.plugins.find((p) => p.name === owner)?.rng ?? new Rng(spec.seed),
      trainables: students.map((s, i) => ({
        role: s,
        variables: [...(upTo ? variablesOf(s.model, upTo.get(s.info.name) as Set<string>) : trainableVariables(s.model)), ...(i === 0 ? pluginVars : [])],
        weightDecay: (s.train as TrainSpec).optimizer.weightDecay,
      })),
      prefetch: teachers.filter((t) => active.some((p) => p.requiresRole(t.info))).map((t) => t.info.name),
      nonFinite: spec.nonFinite,
      caches,
    };
  }

  /** Per-teacher output caches, when no plugin transforms batches and each fits the budget. */
  private teacherCaches(teachers: RoleRuntime[]): Map<string, OutputCache> {
    const caches = new Map<string, OutputCache>();
    if (this.spec.teacherCache === 'off') return caches;
    const transforms = this.plugins.some((p) => {
      const t = p.def.transformsBatch;
      return typeof t === 'function' ? t(p.options as never) : Boolean(t);
    });
    if (transforms) return caches;
    const n = this.data.train.labels.length;
    for (const t of teachers) {
      const shapes = t.tapped.outputs.map((o) => (o.shape as number[]).slice(1));
      if (OutputCache.bytes(n, shapes) <= this.spec.teacherCacheMB * 2 ** 20) caches.set(t.info.name, new OutputCache(n, shapes));
      else this.log(`teacher '${t.info.name}': outputs too large to cache (${(OutputCache.bytes(n, shapes) / 2 ** 20).toFixed(0)} MB > teacherCacheMB)`);
    }
    return caches;
  }

  /** Free the models (except those of the roles in `keep`), optimizers and plugin state. */
  dispose(keep: readonly string[] = []): void {
    for (const p of this.instances) p.dispose?.();
    for (const r of this.roles.values()) {
      r.optimizer?.dispose();
      if (!keep.includes(r.info.name)) r.model.dispose();
    }
    this.bus.complete();
  }

  private async loadData(): Promise<DataSplits & { note?: string }> {
    return loadRunData(this.spec, this.opts.registry, this.opts.specDir ?? process.cwd());
  }
}

/**
 * A spec's data: the dataset definition named by `data.name`, its options validated at `data.*`,
 * relative paths resolved against the spec's folder (`specDir`, like `load:` and `packages:`), and
 * the `calibrate:` hold-out split off the training set. Shared by the engine and the generations driver.
 */
export async function loadRunData(spec: RunSpec, registry: Registry, specDir: string): Promise<DataSplits & { note?: string }> {
  const { name, ...rest } = spec.data;
  const def = registry.dataset(name, 'data.name');
  const options = validate(def.options, rest, { prefix: 'data' });
  const splits = await def.load(options as Record<string, unknown>, { seed: spec.seed, specPath: 'data', specDir });
  if (splits.train.labels.length === 0) {
    throw new KdError('KD_DATA_CORRUPT', `dataset '${name}' has no training samples`, { path: 'data', fix: 'check the data folder' });
  }
  if (spec.calibrate) {
    const { train, heldOut } = holdOut(splits.train, spec.calibrate.holdout, spec.seed);
    return { ...splits, train, validation: heldOut };
  }
  return splits;
}

function checkpointMismatch(what: string): KdError {
  return new KdError('KD_CHECKPOINT_INVALID', `the checkpoint does not fit this run: ${what}`, {
    path: 'checkpoint',
    fix: 'resume with the package versions that wrote the checkpoint, or start a new run without --resume',
  });
}

/** A copy of a tensor's values for a checkpoint. */
function tensorData(t: tf.Tensor, name: string): TensorData {
  if (t.dtype !== 'float32' && t.dtype !== 'int32') throw new KdError('KD_INTERNAL', `checkpoint: tensor '${name}' has dtype ${t.dtype}`);
  const v = t.dataSync();
  return { name, dtype: t.dtype, shape: [...t.shape], values: t.dtype === 'int32' ? Int32Array.from(v) : Float32Array.from(v) };
}

/** Assign saved values to variables, by position, shapes checked. */
function assignAll(vars: readonly tf.Variable[], saved: readonly TensorData[], what: string, mismatch: (w: string) => Error): void {
  if (vars.length !== saved.length) throw mismatch(`${what}: ${vars.length} tensors here, ${saved.length} saved`);
  vars.forEach((v, i) => {
    const s = saved[i];
    if (v.shape.join(',') !== s.shape.join(',')) throw mismatch(`${what}: tensor ${i} (${v.name}) is [${v.shape}], saved [${s.shape}]`);
    tf.tidy(() => v.assign(tf.tensor(s.values, s.shape, s.dtype)));
  });
}

/** The tfjs optimizer's slots (getWeights) and, for Adam, its running β powers. */
async function optimizerState(opt: tf.Optimizer): Promise<OptimizerState> {
  const [iter, ...slots] = await opt.getWeights();
  const iterations = iter.tensor.dataSync()[0];
  iter.tensor.dispose();
  const adam = opt as unknown as { accBeta1?: tf.Variable; accBeta2?: tf.Variable };
  return {
    kind: opt.getClassName(),
    iterations,
    slots: slots.map((s) => tensorData(s.tensor, s.name)),
    ...(adam.accBeta1 && adam.accBeta2 ? { accBeta: [adam.accBeta1.dataSync()[0], adam.accBeta2.dataSync()[0]] as [number, number] } : {}),
  };
}

async function restoreOptimizer(opt: tf.Optimizer, saved: OptimizerState, what: string, mismatch: (w: string) => Error): Promise<void> {
  if (opt.getClassName() !== saved.kind) throw mismatch(`${what}: the optimizer is ${opt.getClassName()}, the checkpoint's ${saved.kind}`);
  const tensors = [tf.scalar(saved.iterations, 'int32'), ...saved.slots.map((s) => tf.tensor(s.values, s.shape, s.dtype))];
  await opt.setWeights(tensors.map((tensor, i) => ({ name: i === 0 ? 'iter' : saved.slots[i - 1].name, tensor })));
  // setWeights made variables of them (sharing the data); the tensors themselves are no longer needed.
  tensors.forEach((t) => t.dispose());
  const adam = opt as unknown as { accBeta1?: tf.Variable; accBeta2?: tf.Variable };
  if (saved.accBeta && adam.accBeta1 && adam.accBeta2) {
    const [b1, b2] = saved.accBeta;
    tf.tidy(() => {
      adam.accBeta1?.assign(tf.scalar(b1));
      adam.accBeta2?.assign(tf.scalar(b2));
    });
  }
}

/** Convenience: prepare and run a spec. The caller owns (and disposes) `result.models`. */
export async function runSpec(spec: RunSpec, opts: EngineOptions): Promise<RunResult> {
  const engine = new Engine(spec, opts);
  const result = await engine.run();
  engine.dispose([...result.models.keys()]);
  return result;
}
