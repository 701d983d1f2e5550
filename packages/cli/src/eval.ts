import * as path from 'path';
import { KdError, selectBackend, validate, type BackendName } from '@tfkd/kd-core';
import { modelTools } from '@tfkd/models';
import { reliabilityDiagramSvg } from '@tfkd/metrics-ece';
import { calibrationOf } from './calibration';
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

/** `kd eval MODEL`: accuracy and calibration of a saved model on a dataset's test split. */
export async function evalCommand(modelDir: string, o: EvalOptions): Promise<string> {
  const registry = defaultRegistry();
  const backend = await selectBackend(o.backend as BackendName, registry.backends());
  const def = registry.dataset(o.data, '--data');
  const options = validate(def.options, { ...(o.dataPath ? { path: o.dataPath } : {}), ...(o.subset ? { subset: true } : {}) }, { prefix: '--data' });
  const data = await def.load(options as Record<string, unknown>, { seed: 1, specPath: '--data' });
  const model = await modelTools.load(path.resolve(modelDir));
  try {
    const inputSize = (model.inputs[0].shape as number[]).slice(1).reduce((a, b) => a * b, 1);
    const [h, w, c] = data.test.shape;
    if (inputSize !== h * w * c) {
      throw new KdError('KD_SHAPE_MISMATCH', `the model takes ${inputSize} values per image, ${o.data} has ${h}x${w}x${c}`, {
        path: modelDir,
        fix: 'evaluate on the dataset the model was trained on',
      });
    }
    const cal = calibrationOf(model, data.test);
    const rows: [string, number][] = [
      ['accuracy', cal.accuracy],
      ['ece', cal.ece],
      ['mce', cal.mce],
      ['adaptiveEce', cal.adaptiveEce],
      ['classwiseEce', cal.classwiseEce],
      ['nll', cal.nll],
      ['brier', cal.brier],
    ];
    const table = [
      `${path.resolve(modelDir)} on ${data.test.name} (${data.test.source}, ${cal.n} images), backend ${backend.name}`,
      '| metric | value |',
      '|---|---|',
      ...rows.map(([k, v]) => `| ${k} | ${v.toFixed(4)} |`),
    ].join('\n');
    if (o.out) {
      const staged = new StagedFolder(o.out);
      try {
        staged.write('eval.json', JSON.stringify({ model: path.resolve(modelDir), dataset: { name: data.test.name, source: data.test.source, n: cal.n }, backend: backend.name, versions: versions(), metrics: Object.fromEntries(rows), bins: cal.bins }, null, 2) + '\n');
        staged.write('reliability.svg', reliabilityDiagramSvg(cal, { title: `${path.basename(path.resolve(modelDir))}: reliability` }));
        staged.commit();
      } catch (e) {
        staged.abort();
        throw e;
      }
    }
    return table;
  } finally {
    model.dispose();
  }
}
