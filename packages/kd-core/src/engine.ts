import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { selectBackend, type SelectedBackend } from './backend';
import { OutputCache } from './cache';
import { LifecycleBus } from './bus';
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
}

export interface RunResult {
  status: 'completed';
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
  private instances: Plugin[] = [];
  private teachers: RunResult['teachers'] = {};
  private prepared = false;

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
    this.plugins = resolvePlugins(this.spec, registry);
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
    });
    this.roles = setup.roles;
    this.teachers = setup.teachers;
    this.instances = setup.instances;
    this.instances.forEach((p, i) => p.register(this.bus.forPlugin(p.name, this.plugins[i].stage, i)));
    this.opts.observe?.(this.bus, this.phase);
    this.prepared = true;
  }

  async run(): Promise<RunResult> {
    await this.prepare();
    const t0 = Date.now();
    const spec = this.spec;
    const roleList = [...this.roles.values()];
    const students = roleList.filter((r) => r.info.kind === 'student');
    const teachers = roleList.filter((r) => r.info.kind === 'teacher');
    const n = this.data.train.labels.length;
    const fullBatches = Math.ceil(n / spec.train.batchSize);
    const batchesPerEpoch = Math.min(fullBatches, spec.train.maxBatches ?? fullBatches);
    const dataset = {
      name: this.data.train.name,
      source: this.data.train.source,
      train: n,
      test: this.data.test.labels.length,
      ...(this.data.note || this.data.train.note ? { note: this.data.note ?? this.data.train.note } : {}),
    };
    await this.bus.emitAsync('runStart', {
      runId: `${this.phase}-${spec.seed}`,
      backend: this.backend.name,
      seed: spec.seed,
      roles: roleList.map((r) => r.info),
      phases: [{ name: this.phase, epochs: spec.train.epochs, batchesPerEpoch }],
      dataset,
    });

    const finalEval: Record<string, Record<string, number>> = {};
    if (teachers.length > 0) {
      const rep = await evaluate(this.bus, teachers, this.data.test, { phase: this.phase, epoch: 0 });
      Object.assign(finalEval, rep.metrics);
    }

    const host = this.trainHost();

    const history: EpochSummary[] = [];
    let step = 0;
    let skipped = 0;
    for (let epoch = 1; epoch <= spec.train.epochs; epoch++) {
      const te = Date.now();
      for (const s of students) setLearningRate(s.optimizer as tf.Optimizer, learningRateAt(s.train as TrainSpec, epoch));
      const lr = learningRateAt(students[0].train as TrainSpec, epoch);
      await this.bus.emitAsync('epochStart', { phase: this.phase, epoch, epochs: spec.train.epochs });
      const batches = epochBatches(n, { batchSize: spec.train.batchSize, seed: spec.seed, epoch }).slice(0, batchesPerEpoch);
      const sums: Record<string, number> = { loss: 0 };
      let counted = 0;
      for (const [batchIndex, indices] of batches.entries()) {
        const r = trainStep(host, { phase: this.phase, epoch, epochs: spec.train.epochs, batchIndex, step, indices });
        step++;
        if (r.skipped) skipped++;
        else {
          counted++;
          sums.loss += r.loss;
          for (const [k, v] of Object.entries(r.terms)) sums[k] = (sums[k] ?? 0) + v;
        }
        await this.bus.emitAsync('batchEnd', {
          phase: this.phase, epoch, batchIndex, batchesPerEpoch, step, loss: r.loss, terms: r.terms, learningRate: lr, images: r.images,
        });
      }
      const trainSeconds = (Date.now() - te) / 1000;
      this.ledger.phaseTime(this.phase, trainSeconds, batches.length);
      const train = Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, counted ? v / counted : NaN]));
      if (skipped > 0) train.skippedBatches = skipped;
      let evalMetrics: Record<string, Record<string, number>> = {};
      if (epoch % spec.evalEvery === 0 || epoch === spec.train.epochs) {
        evalMetrics = (await evaluate(this.bus, students, this.data.test, { phase: this.phase, epoch })).metrics;
        Object.assign(finalEval, evalMetrics);
      }
      const summary: EpochSummary = {
        phase: this.phase, epoch, epochs: spec.train.epochs, train, eval: evalMetrics, seconds: (Date.now() - te) / 1000, learningRate: lr,
      };
      history.push(summary);
      await this.bus.emitAsync('epochEnd', summary);
    }
    const seconds = (Date.now() - t0) / 1000;
    await this.bus.emitAsync('runEnd', { status: 'completed', seconds, eval: finalEval });
    return {
      status: 'completed',
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
    };
  }

  /**
   * Step-level access for benchmarks and soak tests: prepares the run, then `step()` trains on the
   * next batch of epoch 1's order (cycling), exactly as `run()` would, without evaluation or
   * number hooks. Returns the step's loss and terms.
   */
  async stepper(): Promise<{ step(): StepResult }> {
    await this.prepare();
    const host = this.trainHost();
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

  /**
   * The run's plugin instances with their ids and validated options, after `prepare()` (and until
   * `dispose()`): the CLI saves their adapters and buffers next to the student (`savePluginStates`).
   */
  pluginInstances(): { name: string; id: string; options: unknown; plugin: Plugin }[] {
    return this.instances.map((plugin, i) => ({ name: plugin.name, id: this.plugins[i].def.id, options: this.plugins[i].options, plugin }));
  }

  /** Optimizers per student and the step's view of the run. */
  private trainHost(): TrainHost {
    const spec = this.spec;
    const roleList = [...this.roles.values()];
    const students = roleList.filter((r) => r.info.kind === 'student');
    const teachers = roleList.filter((r) => r.info.kind === 'teacher');
    for (const s of students) {
      s.train = TrainSpec.parse({ ...spec.train, ...(s.spec.train ?? {}) });
      s.optimizer?.dispose();
      s.optimizer = makeOptimizer(s.train);
    }
    const pluginVars = this.instances.flatMap((p) => p.variables?.() ?? []);
    return {
      bus: this.bus,
      train: this.data.train,
      roles: this.roles,
      roleInfos: roleList.map((r) => r.info),
      ledger: this.ledger,
      numClasses: this.data.train.numClasses,
      weightOf: (owner) => this.plugins.find((p) => p.name === owner)?.entry.weight ?? 1,
      rngOf: (owner) => this.plugins.find((p) => p.name === owner)?.rng ?? new Rng(spec.seed),
      trainables: students.map((s, i) => ({
        role: s,
        variables: [...trainableVariables(s.model), ...(i === 0 ? pluginVars : [])],
        weightDecay: (s.train as TrainSpec).optimizer.weightDecay,
      })),
      prefetch: teachers.filter((t) => this.plugins.some((p) => p.requiresRole(t.info))).map((t) => t.info.name),
      nonFinite: spec.nonFinite,
      caches: this.teacherCaches(teachers),
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
    const { name, ...rest } = this.spec.data;
    const def = this.opts.registry.dataset(name, 'data.name');
    const options = validate(def.options, rest, { prefix: 'data' });
    const splits = await def.load(options as Record<string, unknown>, { seed: this.spec.seed, specPath: 'data' });
    if (splits.train.labels.length === 0) {
      throw new KdError('KD_DATA_CORRUPT', `dataset '${name}' has no training samples`, { path: 'data', fix: 'check the data folder' });
    }
    if (this.spec.calibrate) {
      const { train, heldOut } = holdOut(splits.train, this.spec.calibrate.holdout, this.spec.seed);
      return { ...splits, train, validation: heldOut };
    }
    return splits;
  }
}

/** Convenience: prepare and run a spec. The caller owns (and disposes) `result.models`. */
export async function runSpec(spec: RunSpec, opts: EngineOptions): Promise<RunResult> {
  const engine = new Engine(spec, opts);
  const result = await engine.run();
  engine.dispose([...result.models.keys()]);
  return result;
}
