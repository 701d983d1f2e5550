import { PLUGIN_DEFINITION, parseSpec, validate, type PluginDefinition } from '@tfkd/kd-core';
import { Registry } from '@tfkd/engine';
import * as fs from 'fs';
import { Container } from 'inversify';
import * as path from 'path';
import { kdModule, logitLossesModule } from './module';

const IDS = [
  'loss/cross-entropy',
  'loss/label-smoothing',
  'loss/hinton-kd',
  'loss/soft-target-ce',
  'loss/logit-mse',
  'loss/dkd',
  'loss/dist',
  'loss/logit-std-kd',
  'loss/nkd',
  'loss/ttm',
  'loss/wttm',
  'loss/ctkd',
  'loss/mlkd',
];

describe('logitLossesModule', () => {
  it('binds the thirteen loss definitions to PLUGIN_DEFINITION', () => {
    const c = new Container();
    c.load(logitLossesModule);
    const defs = c.getAll<PluginDefinition>(PLUGIN_DEFINITION);
    expect(defs.map((d) => d.id)).toEqual(IDS);
    expect(defs.every((d) => d.kind === 'loss' && d.stage === 'default')).toBe(true);
  });

  it('is exported as kdModule for `packages:` loading, and the registry finds every id', () => {
    expect(kdModule).toBe(logitLossesModule);
    const registry = new Registry([kdModule]);
    for (const id of IDS) expect(registry.plugin(id, 'plugins[0].use').id).toBe(id);
  });

  it('every option has a default and a description', () => {
    const c = new Container();
    c.load(logitLossesModule);
    for (const def of c.getAll<PluginDefinition>(PLUGIN_DEFINITION)) {
      const shape = (def.options as unknown as { shape: Record<string, { description?: string; parse(v: unknown): unknown }> }).shape;
      for (const [key, field] of Object.entries(shape)) {
        expect([def.id, key, typeof field.description]).toEqual([def.id, key, 'string']);
        expect([def.id, key, field.parse(undefined) !== undefined]).toEqual([def.id, key, true]);
      }
    }
  });
});

describe('examples/logit-*.yaml', () => {
  const dir = path.resolve(__dirname, '../../../examples');
  const files = ['soft-target-ce', 'logit-mse', 'dkd', 'dist', 'label-smoothing', 'logit-std-kd', 'nkd', 'ttm', 'wttm', 'ctkd'].map((id) => `logit-${id}.yaml`);

  it.each(files)('%s parses and its plugin options validate', (file) => {
    const spec = parseSpec(fs.readFileSync(path.join(dir, file), 'utf8'), file);
    const registry = new Registry([logitLossesModule]);
    const id = `loss/${file.slice('logit-'.length, -'.yaml'.length)}`;
    expect(spec.plugins.map((p) => p.use)).toContain(id);
    spec.plugins.forEach((p, i) => {
      const def = registry.plugin(p.use, `plugins[${i}].use`);
      const options = validate(def.options, p.with, { code: 'KD_PLUGIN_OPTIONS', prefix: `plugins[${i}].with` });
      for (const role of def.requires?.(options).roles ?? []) expect(role === 'student' || spec.teacher !== undefined).toBe(true);
    });
  });
});
