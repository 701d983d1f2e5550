import * as fs from 'fs';
import * as path from 'path';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { KdError, isKdError, parseSpecText, RunSpec, runTask, supportedTasks, validate, type Task } from '@tfkd/kd-core';
import { Engine, evaluateRoles, loadRunData, selectBackend, type BackendName, type Registry } from '@tfkd/engine';
import { modelTools } from '@tfkd/models';
import { computeCalibration, type CalibrationResult } from '@tfkd/metrics-ece';
import { reliabilitySvg } from './charts';
import { testLogits } from './calibration';
import { defaultRegistry } from './modules';
import { StagedFolder } from './output';
import { versions } from './versions';

export interface EvalOptions {
  /** Dataset id. Default: a detection/segmentation model's run data (its spec's `data:`), else fashion-mnist. */
  data?: string;
  dataPath?: string;
  subset?: boolean;
  out?: string;
  backend: string;
  /**
   * The run spec that gives the model's task, its metric options and (without `data`) its data.
   * Default: `spec.resolved.yaml` beside the model folder (a run folder's `student/`).
   */
  spec?: string;
  /** The task of a model without a run spec (a cached teacher, a model saved in code); metric options at their defaults. */
  task?: Task;
}

/**
 * `kd eval MODEL [MODEL…]`: saved models on a dataset's test split, evaluated for their task. The task
 * comes from the run spec — `--spec`, else the `spec.resolved.yaml` beside the first model folder (a
 * run folder's `student/`) — or, for a model without one, from `--task` (which must agree with a spec
 * that is there); none of them: classification. Classification: accuracy and calibration
 * (`evalClassification`, unchanged by tasks); detection and segmentation: the run's evaluation (`evalDense`).
 */
export async function evalCommand(modelDirs: string | readonly string[], o: EvalOptions): Promise<string> {
  const dirs = (typeof modelDirs === 'string' ? [modelDirs] : [...modelDirs]).map(modelFolder);
  const found = taskOf(dirs[0], o);
  return found.task === 'classification' ? evalClassification(dirs, o, found) : evalDense(dirs, found, o);
}

/** A run folder given for its model: its `student/` (a folder with no model.json that holds `student/model.json`). */
function modelFolder(dir: string): string {
  const student = path.join(dir, 'student');
  return !fs.existsSync(path.join(dir, 'model.json')) && fs.existsSync(path.join(student, 'model.json')) ? student : dir;
}

/** Where a model's task comes from: its run spec (given or beside it), or `--task` alone (`spec` null). */
interface TaskSource {
  task: Task;
  spec: RunSpec | null;
  file: string | null;
}

/** Rethrow a KdError about a spec file's content with the file in its path (`runs/det/spec.resolved.yaml: data.name`). */
function inFile(file: string | null, e: unknown): never {
  if (!file || !isKdError(e)) throw e;
  throw new KdError(e.code, e.message, { path: `${file}: ${e.path ?? '(root)'}`, fix: e.fix, cause: e });
}

function taskOf(dir: string, o: EvalOptions): TaskSource {
  const beside = path.join(path.dirname(path.resolve(dir)), 'spec.resolved.yaml');
  const file = o.spec ? path.resolve(o.spec) : fs.existsSync(beside) ? beside : null;
  if (o.spec && !fs.existsSync(o.spec)) {
    throw new KdError('KD_SPEC_INVALID', `spec file ${o.spec} does not exist`, { path: '--spec', fix: "give a run's spec.resolved.yaml (or the spec it was run from)" });
  }
  // A classification record is not validated: `kd eval` of a classifier reads nothing else from it.
  let raw: Record<string, unknown> | null = null;
  let spec: RunSpec | null = null;
  try {
    raw = file ? parseSpecText(fs.readFileSync(file, 'utf8'), file) : null;
    if (raw && raw.task !== undefined && raw.task !== 'classification') spec = validate(RunSpec, raw);
  } catch (e) {
    inFile(file, e);
  }
  const specTask: Task | null = spec ? runTask(spec) : raw ? 'classification' : null;
  if (o.task && specTask && o.task !== specTask) {
    throw new KdError('KD_TASK_MISMATCH', `--task ${o.task}, and ${file} is a ${specTask} run`, {
      path: '--task',
      fix: `leave --task out (the spec gives the task), or name the spec of this model with --spec`,
    });
  }
  return { task: o.task ?? specTask ?? 'classification', spec, file };
}

/** What a model's outputs are: a detector's heads (`cls_<level>`, `box_<level>`), per-pixel logits, or class logits. */
function outputKind(model: LayersModel): Task | null {
  if (model.outputNames.some((n) => n.startsWith('cls_')) && model.outputNames.some((n) => n.startsWith('box_'))) return 'detection';
  const rank = model.outputs[0].shape.length;
  return rank === 4 ? 'segmentation' : rank === 2 ? 'classification' : null;
}

const describeOutputs = (model: LayersModel) => model.outputNames.map((n, i) => `${n} [${(model.outputs[i].shape as number[]).slice(1)}]`).join(', ');

/** How `kd eval` is told a model's task, for fixes. */
const howToEval = (t: Task) => (t === 'classification' ? 'evaluate it as a classifier (no --task, no detection/segmentation spec)' : `give its ${t} run's spec (--spec RUN/spec.resolved.yaml) or --task ${t}`);

/**
 * Accuracy and calibration of saved classifiers on a dataset's test split.
 * With several models (a DML cohort, born-again generations, independently trained students) it
 * also evaluates their ensemble: the mean of their logits, softmax after averaging (as the
 * `peer-ensemble` metric and born-again's `ensemble` entry do).
 */
async function evalClassification(dirs: string[], o: EvalOptions, found: TaskSource): Promise<string> {
  const registry = defaultRegistry();
  const backend = await selectBackend(o.backend as BackendName, registry.backends());
  const dataName = o.data ?? 'fashion-mnist';
  const def = registry.dataset(dataName, '--data');
  const why = found.file ? `${found.file} is a classification run's` : o.task ? '--task classification' : 'no spec.resolved.yaml beside the model, no --spec, no --task';
  if (!supportedTasks(def).includes('classification')) {
    const [task] = supportedTasks(def);
    throw new KdError('KD_TASK_MISMATCH', `dataset '${dataName}' is made for ${supportedTasks(def).join(', ')}, and the model is evaluated for classification (${why})`, {
      path: '--data',
      fix: `a ${task} model: evaluate its run folder's student/ (spec.resolved.yaml beside it), or ${howToEval(task)}; a classifier: evaluate it on a classification dataset`,
    });
  }
  const options = validate(def.options, { ...(o.dataPath ? { path: o.dataPath } : {}), ...(o.subset ? { subset: true } : {}) }, { prefix: '--data' });
  const data = await def.load(options as Record<string, unknown>, { seed: 1, specPath: '--data' });
  const [h, w, c] = data.test.shape;
  const entries: { name: string; model: string | null; cal: CalibrationResult }[] = [];
  let sum: Float64Array | null = null;
  let k = 0;
  for (const dir of dirs) {
    const model = await modelTools.load(path.resolve(dir));
    try {
      const kind = outputKind(model);
      if (kind !== 'classification') {
        throw new KdError('KD_TASK_MISMATCH', `its outputs (${describeOutputs(model)}) are ${kind ? `a ${kind} model's` : 'not class logits'}, and it is evaluated for classification (${why})`, {
          path: dir,
          fix: kind ? `evaluate its run folder's student/ (spec.resolved.yaml beside it gives the task and the metric options), or ${howToEval(kind)}` : 'evaluate a classifier (first output [batch, classes])',
        });
      }
      const inputSize = (model.inputs[0].shape as number[]).slice(1).reduce((a, b) => a * b, 1);
      if (inputSize !== h * w * c) {
        throw new KdError('KD_SHAPE_MISMATCH', `the model takes ${inputSize} values per image, ${dataName} has ${h}x${w}x${c}`, {
          path: dir,
          fix: 'evaluate on the dataset the model was trained on',
        });
      }
      const logits = testLogits(model, data.test);
      const mk = (model.outputs[0].shape as number[])[1];
      if (sum && mk !== k) {
        throw new KdError('KD_SHAPE_MISMATCH', `${dir} has ${mk} classes, ${dirs[0]} has ${k}: no ensemble`, { path: dir, fix: 'ensemble models of the same task' });
      }
      k = mk;
      sum ??= new Float64Array(logits.length);
      for (let i = 0; i < logits.length; i++) sum[i] += logits[i];
      entries.push({ name: dirs.length === 1 ? 'model' : path.basename(path.resolve(dir)), model: path.resolve(dir), cal: computeCalibration(logits, data.test.labels, { input: 'logits', numClasses: k }) });
    } finally {
      model.dispose();
    }
  }
  if (dirs.length > 1 && sum) {
    const mean = sum.map((v) => v / dirs.length);
    entries.push({ name: 'ensemble', model: null, cal: computeCalibration(mean, data.test.labels, { input: 'logits', numClasses: k }) });
  }
  const metricsOf = (cal: CalibrationResult): [string, number][] => [
    ['accuracy', cal.accuracy],
    ['ece', cal.ece],
    ['mce', cal.mce],
    ['adaptiveEce', cal.adaptiveEce],
    ['classwiseEce', cal.classwiseEce],
    ['nll', cal.nll],
    ['brier', cal.brier],
  ];
  const n = entries[0].cal.n;
  const names = entries.map((e) => e.name);
  const metrics = entries.map((e) => metricsOf(e.cal));
  const table = [
    `${dirs.length === 1 ? path.resolve(dirs[0]) : `${dirs.length} models and their ensemble (mean logits)`} on ${data.test.name} (${data.test.source}, ${n} images), backend ${backend.name}`,
    `| metric | ${dirs.length === 1 ? 'value' : names.join(' | ')} |`,
    `|---|${entries.map(() => '---|').join('')}`,
    ...metrics[0].map(([m], r) => `| ${m} | ${metrics.map((rows) => rows[r][1].toFixed(4)).join(' | ')} |`),
  ].join('\n');
  if (o.out) {
    const at = (p: string) => besideOut(o.out as string, p);
    const dataset = { name: data.test.name, source: data.test.source, n };
    const json =
      dirs.length === 1
        ? { model: at(entries[0].model as string), dataset, backend: backend.name, versions: versions(), metrics: Object.fromEntries(metrics[0]), bins: entries[0].cal.bins }
        : { models: entries.flatMap((e) => (e.model ? [at(e.model)] : [])), dataset, backend: backend.name, versions: versions(), metrics: Object.fromEntries(entries.map((e, i) => [e.name, Object.fromEntries(metrics[i])])), bins: Object.fromEntries(entries.map((e) => [e.name, e.cal.bins])) };
    const files: [string, string][] = [['eval.json', JSON.stringify(json, null, 2) + '\n']];
    for (const e of entries) {
      const file = dirs.length === 1 ? 'reliability.svg' : `reliability-${e.name.replace(/[^a-z0-9.-]/gi, '_')}.svg`;
      files.push([file, await reliabilitySvg(e.cal, { title: `${e.model ? path.basename(e.model) : 'ensemble'}: reliability` })]);
    }
    writeWhole(o.out, files);
  }
  return table;
}

/** A path as eval.json records it: relative to eval.json's folder, so a committed or copied folder reads the same anywhere. */
const besideOut = (out: string, p: string) => path.relative(path.resolve(out), p);

/**
 * A detector or segmenter evaluated as its run evaluated it: the run's spec (the task, the metric
 * plugins with their options — `metric/map`'s decoding thresholds —, the student's view, `packages:`)
 * with the saved model as its student, the data through the engine's `loadRunData` (without `--data`,
 * the spec's own: the same test split), and the engine's task evaluation (`evaluateRoles`: every test
 * batch to the metric plugins, their numbers on `evalEnd`). One model: a dense model has no logit
 * ensemble. No reliability diagram (that is of class probabilities).
 */
async function evalDense(dirs: string[], found: TaskSource, o: EvalOptions): Promise<string> {
  const { task, spec, file } = found;
  if (dirs.length > 1) {
    throw new KdError('KD_TASK_MISMATCH', `${dirs.length} models given; kd eval takes one ${task} model at a time (the ensemble of several models, mean logits, is classification's)`, {
      path: dirs[1],
      fix: `evaluate each model on its own: ${dirs.map((d) => `kd eval ${d}`).join('; ')}`,
    });
  }
  const dir = path.resolve(dirs[0]);
  const registry = defaultRegistry();
  const backend = await selectBackend(o.backend as BackendName, registry.backends());
  const specDir = file ? path.dirname(file) : process.cwd();
  await registry.loadPackages(spec?.packages ?? [], specDir).catch((e: unknown) => inFile(file, e));
  const data = evalData(registry, task, found, o);
  const model = await modelTools.load(dir);
  try {
    const kind = outputKind(model);
    if (kind !== task) {
      throw new KdError('KD_SHAPE_MISMATCH', `its outputs (${describeOutputs(model)}) are ${kind ? `a ${kind} model's` : 'not a detector\'s heads or per-pixel logits'}, and ${file ?? '--task'} says ${task}`, {
        path: dir,
        fix: kind ? `a ${kind} model: ${howToEval(kind)}; or evaluate a ${task} model${file ? ` (${path.dirname(file)}/student)` : ''}` : `evaluate a ${task} model (kd list: the zoo's ${task} models)`,
      });
    }
    // The run's metric plugins (a `plugins:` entry of kind metric keeps its options), its `eval:` list;
    // the task's metric is added by the engine when neither names it.
    const metrics = (spec?.plugins ?? []).filter((p, i) => registry.plugin(p.use, `${file}: plugins[${i}].use`).kind === 'metric');
    const view = spec?.student?.view;
    const evalSpec = validate(RunSpec, { seed: spec?.seed ?? 1, task, data, student: { load: dir, ...(view ? { view } : {}) }, plugins: metrics, eval: spec?.eval ?? [], packages: spec?.packages ?? [] });
    const runData = await loadRunData(evalSpec, registry, specDir).catch((e: unknown) => inFile(o.data ? null : file, e));
    const engine = new Engine(evalSpec, { registry, backend, data: runData, specDir, models: new Map([['student', model]]) });
    let values: Record<string, number>;
    try {
      await engine.prepare().catch((e: unknown) => {
        // a model built for other data: the role's input check or the metric's heads check at creation says what it expects
        if (isKdError(e) && (e.code === 'KD_SHAPE_MISMATCH' || e.code === 'KD_PLUGIN_DEPENDENCY')) {
          throw new KdError('KD_SHAPE_MISMATCH', e.message, { path: dir, fix: `evaluate it on the data it was trained on${file && o.data ? ` (leave --data out: ${file}'s data)` : ''}`, cause: e });
        }
        throw e;
      });
      const report = await evaluateRoles(task, engine.bus, [...engine.roleRuntimes().values()], runData.test, { phase: 'eval', epoch: 0 });
      values = report.metrics.student ?? {};
    } finally {
      engine.dispose();
    }
    const test = runData.test;
    const n = test.labels.length;
    const table = [
      `${dir} on ${test.name} (${test.source}, ${n} images), backend ${backend.name}, task ${task} (${file ?? '--task'})`,
      '| metric | value |',
      '|---|---|',
      ...Object.entries(values).map(([m, v]) => `| ${m} | ${v.toFixed(4)} |`),
    ].join('\n');
    if (o.out) {
      const json = { model: besideOut(o.out, dir), task, spec: file && besideOut(o.out, file), dataset: { name: test.name, source: test.source, n }, backend: backend.name, versions: versions(), metrics: values };
      writeWhole(o.out, [['eval.json', JSON.stringify(json, null, 2) + '\n']]);
    }
    return table;
  } finally {
    model.dispose();
  }
}

/** `kd eval --out`: the files written into the folder whole or not at all (staged, then renamed into place). */
function writeWhole(out: string, files: readonly [string, string][]): void {
  const staged = new StagedFolder(out);
  try {
    for (const [name, text] of files) staged.write(name, text);
    staged.commit();
  } catch (e) {
    staged.abort();
    throw e;
  }
}

/**
 * The data a dense model is evaluated on: without `--data`, its run's `data:` block (every option,
 * so the same scenes); with `--data NAME`, that dataset at its defaults. `--data-path` and `--subset`
 * apply to either. A dataset without the task's targets (boxes, masks) is refused here, at `--data`.
 */
function evalData(registry: Registry, task: Task, found: TaskSource, o: EvalOptions): RunSpec['data'] {
  const base = o.data || !found.spec ? { name: o.data ?? 'fashion-mnist' } : found.spec.data;
  const at = o.data || !found.file ? '--data' : `${found.file}: data.name`;
  const def = registry.dataset(base.name, at);
  if (!supportedTasks(def).includes(task)) {
    const fitting = registry.datasets().filter((d) => supportedTasks(d).includes(task)).map((d) => d.id);
    throw new KdError('KD_TASK_MISMATCH', `dataset '${base.name}' has no ${task === 'detection' ? 'boxes' : 'masks'} (it supports ${supportedTasks(def).join(', ')}), and the model is evaluated for ${task}`, {
      path: at,
      fix: `evaluate on a dataset made for ${task} (--data ${fitting.join(' or --data ') || '…'})${found.spec && o.data ? ", or leave --data out for the run's own data" : ''}`,
    });
  }
  return { ...base, ...(o.dataPath ? { path: o.dataPath } : {}), ...(o.subset ? { subset: true } : {}) };
}
