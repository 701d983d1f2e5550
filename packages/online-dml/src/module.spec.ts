import { MODEL_DEFINITION, PLUGIN_DEFINITION, parseSpec, validate, type ModelDefinition, type PluginDefinition } from '@tfkd/kd-core';
import { Registry } from '@tfkd/engine';
import * as fs from 'fs';
import { Container } from 'inversify';
import * as path from 'path';
import { kdModule, onlineDmlModule } from './module';

const IDS = ['online/dml', 'online/dml-ensemble', 'online/one', 'metric/peer-ensemble'];

describe('onlineDmlModule', () => {
  it('binds the four plugins to PLUGIN_DEFINITION and one-mlp, one-cnn to MODEL_DEFINITION', () => {
    const c = new Container();
    c.load(onlineDmlModule);
    const defs = c.getAll<PluginDefinition>(PLUGIN_DEFINITION);
    expect(defs.map((d) => [d.id, d.kind])).toEqual([
      ['online/dml', 'loss'],
      ['online/dml-ensemble', 'loss'],
      ['online/one', 'loss'],
      ['metric/peer-ensemble', 'metric'],
    ]);
    expect(c.getAll<ModelDefinition>(MODEL_DEFINITION).map((d) => d.id)).toEqual(['one-mlp', 'one-cnn']);
  });

  it('is exported as kdModule, and the registry finds every id', () => {
    expect(kdModule).toBe(onlineDmlModule);
    const registry = new Registry([kdModule]);
    for (const id of IDS) expect(registry.plugin(id, 'plugins[0].use').id).toBe(id);
    expect(registry.model('one-mlp', 'student.model').taps).toEqual(['trunk', 'branch0', 'branch1', 'branch2', 'gate']);
  });

  it('every option has a default and a description', () => {
    for (const def of new Registry([kdModule]).plugins()) {
      const shape = (def.options as unknown as { shape: Record<string, { description?: string; parse(v: unknown): unknown }> }).shape;
      for (const [key, field] of Object.entries(shape)) {
        expect([def.id, key, typeof field.description]).toEqual([def.id, key, 'string']);
        expect([def.id, key, field.parse(undefined) !== undefined]).toEqual([def.id, key, true]);
      }
    }
  });
});

describe('examples', () => {
  const dir = path.resolve(__dirname, '../../../examples');
  const files = ['dml-2', 'dml-3', 'dml-ensemble', 'one', 'independent-3'];

  it.each(files)('%s.yaml parses; its online plugins validate; fashion-mnist, the Adam recipe, peer-ensemble on cohorts', (name) => {
    const spec = parseSpec(fs.readFileSync(path.join(dir, `${name}.yaml`), 'utf8'), `${name}.yaml`);
    const registry = new Registry([kdModule]);
    expect(spec.data.name).toBe('fashion-mnist');
    expect(spec.train).toMatchObject({ epochs: 20, batchSize: 128, optimizer: { name: 'adam', lr: 0.001, weightDecay: 0 }, schedule: { name: 'cosine' } });
    // ONE is one model (its output the gated ensemble): peer-ensemble needs two or more students.
    expect(spec.eval).toEqual(name === 'one' ? ['accuracy', 'ece'] : ['accuracy', 'ece', 'peer-ensemble']);
    expect(spec.packages).toEqual([]); // the kd CLI ships this package
    const models = spec.students?.map((s) => s.model) ?? [spec.student?.model];
    expect(models).toEqual(name === 'one' ? ['one-mlp'] : name === 'dml-2' ? ['mlp-student', 'mlp-student'] : ['mlp-student', 'mlp-student', 'mlp-student']);
    spec.plugins.forEach((p, i) => {
      if (!p.use.startsWith('online/')) return;
      const def = registry.plugin(p.use, `plugins[${i}].use`);
      validate(def.options, p.with, { code: 'KD_PLUGIN_OPTIONS', prefix: `plugins[${i}].with` });
    });
    const uses = spec.plugins.map((p) => p.use);
    if (name === 'independent-3') {
      expect(spec.plugins.map((p) => [p.use, p.name, p.with.student])).toEqual([0, 1, 2].map((i) => ['loss/cross-entropy', `ce-${i}`, `student.${i}`]));
    } else {
      expect(uses).toEqual([name === 'one' ? 'online/one' : name === 'dml-ensemble' ? 'online/dml-ensemble' : 'online/dml']);
    }
  });
});
