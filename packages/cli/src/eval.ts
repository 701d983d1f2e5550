import * as path from 'path';
import { KdError, validate } from '@tfkd/kd-core';
import { selectBackend, type BackendName } from '@tfkd/engine';
import { modelTools } from '@tfkd/models';
import { computeCalibration, type CalibrationResult } from '@tfkd/metrics-ece';
import { reliabilitySvg } from './charts';
import { testLogits } from './calibration';
import { defaultRegistry } from './modules';
import { StagedFolder } from './output';
import { versions } from './versions';

export interface EvalOptions {
  data: string;
  dataPath?: string;
  subset?: boolean;
  out?: string;
  backend: string;
}

/**
 * `kd eval MODEL [MODEL…]`: accuracy and calibration of saved models on a dataset's test split.
 * With several models (a DML cohort, born-again generations, independently trained students) it
 * also evaluates their ensemble: the mean of their logits, softmax after averaging (as the
 * `peer-ensemble` metric and born-again's `ensemble` entry do).
 */
export async function evalCommand(modelDirs: string | readonly string[], o: EvalOptions): Promise<string> {
  const dirs = typeof modelDirs === 'string' ? [modelDirs] : [...modelDirs];
  const registry = defaultRegistry();
  const backend = await selectBackend(o.backend as BackendName, registry.backends());
  const def = registry.dataset(o.data, '--data');
  const options = validate(def.options, { ...(o.dataPath ? { path: o.dataPath } : {}), ...(o.subset ? { subset: true } : {}) }, { prefix: '--data' });
  const data = await def.load(options as Record<string, unknown>, { seed: 1, specPath: '--data' });
  const [h, w, c] = data.test.shape;
  const entries: { name: string; model: string | null; cal: CalibrationResult }[] = [];
  let sum: Float64Array | null = null;
  let k = 0;
  for (const dir of dirs) {
    const model = await modelTools.load(path.resolve(dir));
    try {
      const inputSize = (model.inputs[0].shape as number[]).slice(1).reduce((a, b) => a * b, 1);
      if (inputSize !== h * w * c) {
        throw new KdError('KD_SHAPE_MISMATCH', `the model takes ${inputSize} values per image, ${o.data} has ${h}x${w}x${c}`, {
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
    const staged = new StagedFolder(o.out);
    try {
      const dataset = { name: data.test.name, source: data.test.source, n };
      const json =
        dirs.length === 1
          ? { model: entries[0].model, dataset, backend: backend.name, versions: versions(), metrics: Object.fromEntries(metrics[0]), bins: entries[0].cal.bins }
          : { models: entries.filter((e) => e.model).map((e) => e.model), dataset, backend: backend.name, versions: versions(), metrics: Object.fromEntries(entries.map((e, i) => [e.name, Object.fromEntries(metrics[i])])), bins: Object.fromEntries(entries.map((e) => [e.name, e.cal.bins])) };
      staged.write('eval.json', JSON.stringify(json, null, 2) + '\n');
      for (const e of entries) {
        const file = dirs.length === 1 ? 'reliability.svg' : `reliability-${e.name.replace(/[^a-z0-9.-]/gi, '_')}.svg`;
        staged.write(file, await reliabilitySvg(e.cal, { title: `${e.model ? path.basename(e.model) : 'ensemble'}: reliability` }));
      }
      staged.commit();
    } catch (e) {
      staged.abort();
      throw e;
    }
  }
  return table;
}
