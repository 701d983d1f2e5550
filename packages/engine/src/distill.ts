import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { ContainerModule } from 'inversify';
import { z } from 'zod';
import {
  KdError,
  MODEL_TOOLS,
  PLUGIN_DEFINITION,
  RunSpec,
  definePlugin,
  type DataSplits,
  type LedgerSnapshot,
  type ModelTools,
  type PluginDefinition,
  type RunSpecInput,
} from '@tfkd/kd-core';
import { datasetFromCode, type DataInput } from './code-data';
import { executePlan } from './execute';
import { graphTeacher, isGraphModel, type GraphModelLike } from './graph-teacher';
import { planRun } from './plan';
import { Registry, type NamedModule } from './registry';
import type { RunResult } from './types';

/** A tfjs callback as `model.fitDataset` takes one: an object with any of these (a `tf.CustomCallback` too). */
export interface DistillCallback {
  setParams?(params: Record<string, unknown>): void;
  setModel?(model: LayersModel): void;
  onTrainBegin?(logs?: Record<string, number>): void | Promise<void>;
  onEpochBegin?(epoch: number, logs?: Record<string, number>): void | Promise<void>;
  onBatchEnd?(batch: number, logs?: Record<string, number>): void | Promise<void>;
  onEpochEnd?(epoch: number, logs?: Record<string, number>): void | Promise<void>;
  onTrainEnd?(logs?: Record<string, number>): void | Promise<void>;
}

/** A plugin as a spec names it (`{ use: 'loss/hinton-kd', with, weight }`), or a definition written in code. */
export type DistillPlugin = PluginDefinition | { use: string | PluginDefinition; with?: Record<string, unknown>; weight?: number; name?: string };

export interface DistillConfig {
  /** Frozen teachers: one (role `teacher`) or several by role name; a `tf.LayersModel` or a `tf.GraphModel`. */
  teachers?: LayersModel | GraphModelLike | Record<string, LayersModel | GraphModelLike>;
  /** A `tf.data.Dataset` of `{ xs, ys }` (ys: class indices or one-hot), or tensors/arrays. */
  data: DataInput;
  /** Evaluated after every epoch (`val_*` in the History); without it nothing is evaluated. */
  validationData?: DataInput;
  epochs: number;
  /** Default: the batch size of a batched dataset, else 32. */
  batchSize?: number;
  /** As a spec's `train.optimizer` (default Adam 1e-3, no weight decay) and `train.schedule`. */
  optimizer?: NonNullable<RunSpecInput['train']>['optimizer'];
  schedule?: NonNullable<RunSpecInput['train']>['schedule'];
  plugins: DistillPlugin[];
  /** Packages whose plugins `plugins` names by id (`logitLossesModule`, …). */
  modules?: NamedModule[];
  callbacks?: DistillCallback | DistillCallback[];
  /** As tfjs: when to give the event loop a turn (`'auto'`/`'batch'`, `'epoch'`, `'never'`, or every n ms). */
  yieldEvery?: 'auto' | 'batch' | 'epoch' | 'never' | number;
  seed?: number;
  /** Metrics for `validationData` (`accuracy` always; others name metric plugins of `modules`). */
  metrics?: string[];
}

/** A `tf.History` with every loss term, the validation metrics and the cost ledger. */
export interface DistillHistory {
  epoch: number[];
  history: Record<string, number[]>;
  params: { epochs: number; batchSize: number; samples: number };
  ledger: LedgerSnapshot;
  result: RunResult;
}

/** FLOPs are not counted for models handed over in code, unless a models package is among `modules`. */
const NO_TOOLS: ModelTools = {
  countFlops: () => 0,
  save: () => Promise.reject(new KdError('KD_INTERNAL', 'distill() keeps no models on storage')),
  load: () => Promise.reject(new KdError('KD_INTERNAL', 'distill() keeps no models on storage')),
};

const roleOf = (i: number, n: number) => (n === 1 ? 'student' : `student.${i}`);

/**
 * Knowledge distillation the TensorFlow.js way: `await distill(student, { teachers, data, epochs,
 * plugins, callbacks })`. The student (several for DML/ONE) is trained in place; teachers are frozen.
 * It builds the spec a `kd run` would, plans it — a missing tap or a shape mismatch is the same coded
 * error, before any training — and executes it on the active tfjs backend.
 */
export async function distill(students: LayersModel | LayersModel[], config: DistillConfig): Promise<DistillHistory> {
  const list = Array.isArray(students) ? students : [students];
  const teacherMap = !config.teachers ? {} : isModel(config.teachers) ? { teacher: config.teachers } : config.teachers;
  const models = new Map<string, LayersModel>(list.map((m, i) => [roleOf(i, list.length), m]));
  for (const [role, t] of Object.entries(teacherMap)) models.set(role, isGraphModel(t) ? graphTeacher(t, { name: role }) : (t as LayersModel));

  const train = await datasetFromCode(config.data, 'data', 'data');
  const numClasses = (list[0].outputs[0].shape as number[])[1];
  const validation = config.validationData ? (await datasetFromCode(config.validationData, 'validationData', 'validationData')).dataset : { ...train.dataset, images: new Float32Array(0), labels: new Int32Array(0) };
  const data: DataSplits = { train: { ...train.dataset, numClasses }, test: { ...validation, numClasses } };
  const batchSize = config.batchSize ?? train.batchSize ?? 32;

  const inline: PluginDefinition[] = [];
  const entries = config.plugins.map((p) => {
    const entry = 'create' in p ? { use: p } : p;
    if (typeof entry.use !== 'string') inline.push(entry.use);
    return { use: typeof entry.use === 'string' ? entry.use : entry.use.id, with: entry.with ?? {}, weight: entry.weight ?? 1, ...(entry.name ? { name: entry.name } : {}) };
  });
  const callbacks = Array.isArray(config.callbacks) ? config.callbacks : config.callbacks ? [config.callbacks] : [];
  const params = { epochs: config.epochs, batchSize, samples: data.train.labels.length };
  for (const c of callbacks) {
    c.setParams?.({ ...params, steps: Math.ceil(params.samples / batchSize) });
    c.setModel?.(list[0]);
  }
  const inCode = new ContainerModule((o) => {
    o.bind(MODEL_TOOLS).toConstantValue(NO_TOOLS);
    for (const d of [...inline, callbackPlugin(callbacks, config.yieldEvery ?? 'never')]) o.bind(PLUGIN_DEFINITION).toConstantValue(d);
  });
  const registry = new Registry([{ name: 'distill()', module: inCode }, ...(config.modules ?? [])]);
  const role = (name: string) => ({ model: `(${name} in code)` });
  const spec = RunSpec.parse({
    seed: config.seed ?? 1,
    data: { name: '(code)' },
    ...Object.fromEntries(Object.keys(teacherMap).map((r) => [r, role(r)])),
    ...(list.length === 1 ? { student: role('student') } : { students: list.map((_, i) => role(`student.${i}`)) }),
    train: { epochs: config.epochs, batchSize, optimizer: config.optimizer ?? { name: 'adam', lr: 0.001, weightDecay: 0 }, ...(config.schedule ? { schedule: config.schedule } : {}) },
    plugins: [...entries, { use: 'distill/callbacks' }],
    eval: config.metrics ?? ['accuracy'],
    teacherCache: 'off',
  });
  const backend = { name: tf.getBackend(), label: tf.getBackend(), requested: 'auto' as const, skipped: [] };
  const plan = await planRun(spec, { registry, data, backend, models, cacheDir: null });
  const { result, engine } = await executePlan(plan, { registry, models });
  engine?.dispose();
  return historyOf(result, params, list.length);
}

function isModel(t: unknown): t is LayersModel | GraphModelLike {
  return typeof (t as { apply?: unknown }).apply === 'function' || isGraphModel(t);
}

/** tfjs's History: per epoch, the training loss and every term, then `val_<metric>` (`val_<role>_<metric>` for several students). */
function historyOf(result: RunResult, params: DistillHistory['params'], students: number): DistillHistory {
  const history: Record<string, number[]> = {};
  const push = (k: string, v: number) => (history[k] ??= []).push(v);
  for (const h of result.history) {
    for (const [k, v] of Object.entries(h.train)) push(k, v);
    for (const [r, metrics] of Object.entries(h.eval)) {
      if (!r.startsWith('student')) continue;
      for (const [m, v] of Object.entries(metrics)) if (Number.isFinite(v)) push(students === 1 ? `val_${m}` : `val_${r}_${m}`, v);
    }
  }
  return { epoch: result.history.map((_, i) => i), history, params, ledger: result.ledger, result };
}

/** The user's tfjs callbacks as an observer plugin: number hooks, awaited in order, numbers only. */
function callbackPlugin(callbacks: DistillCallback[], yieldEvery: NonNullable<DistillConfig['yieldEvery']>): PluginDefinition {
  const nextFrame = () => new Promise<void>((r) => setTimeout(r, 0));
  let last = Date.now();
  const maybeYield = async (at: 'batch' | 'epoch') => {
    const every = yieldEvery === 'auto' ? 'batch' : yieldEvery;
    if (every === at || (typeof every === 'number' && Date.now() - last >= every)) {
      await nextFrame();
      last = Date.now();
    }
  };
  const all = async (f: (c: DistillCallback) => void | Promise<void> | undefined) => {
    for (const c of callbacks) await f(c);
  };
  return definePlugin({
    id: 'distill/callbacks',
    kind: 'observer',
    describe: "distill()'s tfjs callbacks",
    options: z.object({}).strict(),
    create: (_o, deps) => ({
      name: deps.name,
      register(bus) {
        bus.on('runStart', () => all((c) => c.onTrainBegin?.({})));
        bus.on('epochStart', (e) => all((c) => c.onEpochBegin?.(e.epoch - 1, {})));
        bus.on('batchEnd', async (b) => {
          await all((c) => c.onBatchEnd?.(b.batchIndex, { batch: b.batchIndex, size: b.images, loss: b.loss, ...b.terms }));
          await maybeYield('batch');
        });
        bus.on('epochEnd', async (e) => {
          const val = Object.fromEntries(Object.entries(e.eval.student ?? {}).filter(([, v]) => Number.isFinite(v)).map(([k, v]) => [`val_${k}`, v]));
          await all((c) => c.onEpochEnd?.(e.epoch - 1, { ...e.train, ...val }));
          await maybeYield('epoch');
        });
        bus.on('runEnd', () => all((c) => c.onTrainEnd?.({})));
      },
    }),
  });
}
