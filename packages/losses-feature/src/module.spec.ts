import { PLUGIN_DEFINITION, parseSpec, validate, type PluginDefinition } from '@tfkd/kd-core';
import { Registry } from '@tfkd/engine';
import { logitLossesModule } from '@tfkd/losses-logit';
import * as fs from 'fs';
import { Container } from 'inversify';
import * as path from 'path';
import { featureLossesModule, kdModule } from './module';

const IDS = ['loss/attention', 'loss/gradient-attention', 'loss/fitnets', 'loss/nst', 'loss/factor-transfer', 'loss/sp', 'loss/pkt', 'loss/rkd', 'loss/fsp', 'loss/activation-boundary', 'loss/crd'];

describe('featureLossesModule', () => {
  it('binds the eleven loss definitions to PLUGIN_DEFINITION, each with a description of every option', () => {
    const c = new Container();
    c.load(featureLossesModule);
    const defs = c.getAll<PluginDefinition>(PLUGIN_DEFINITION);
    expect(defs.map((d) => d.id)).toEqual(IDS);
    expect(defs.every((d) => d.kind === 'loss' && d.stage === 'default')).toBe(true);
    for (const def of defs) {
      const shape = (def.options as unknown as { shape: Record<string, { description?: string }> }).shape;
      for (const [key, field] of Object.entries(shape)) expect([def.id, key, typeof field.description]).toEqual([def.id, key, 'string']);
    }
  });

  it('is exported as kdModule, and the registry finds every id', () => {
    expect(kdModule).toBe(featureLossesModule);
    const registry = new Registry([kdModule]);
    for (const id of IDS) expect(registry.plugin(id, 'plugins[0].use').id).toBe(id);
  });

  it('the recommended RepDistiller weight is in each describe', () => {
    const registry = new Registry([kdModule]);
    const weights: Record<string, string> = {
      'loss/attention': '1000',
      'loss/fitnets': '100',
      'loss/nst': '50',
      'loss/factor-transfer': '200',
      'loss/sp': '3000',
      'loss/pkt': '30000',
      'loss/fsp': '50',
      'loss/crd': '0.8',
    };
    for (const [id, w] of Object.entries(weights)) expect(registry.plugin(id, 'x').describe).toContain(`weight ${w}`);
  });
});

describe('examples/feature-*.yaml', () => {
  const dir = path.resolve(__dirname, '../../../examples');
  // file → the loss it exercises (one per id, plus variants)
  const files: [string, string][] = [...IDS.map((id): [string, string] => [`feature-${id.slice('loss/'.length)}.yaml`, id]), ['feature-crd-memory.yaml', 'loss/crd'], ['feature-fitnets-hint.yaml', 'loss/fitnets'], ['feature-activation-boundary-init.yaml', 'loss/activation-boundary'], ['feature-fsp-init.yaml', 'loss/fsp'], ['feature-pkt-kd.yaml', 'loss/pkt']];

  it.each(files)('%s parses, names its loss, and its plugin options validate', (file, id) => {
    const spec = parseSpec(fs.readFileSync(path.join(dir, file), 'utf8'), file);
    const registry = new Registry([featureLossesModule, logitLossesModule]);
    // the main list, plus plugins a declared stage brings in with `use:` (AB/FSP init stages)
    const entries = [...spec.plugins, ...(spec.stages ?? []).flatMap((st) => st.plugins.filter((p): p is typeof p & { use: string } => 'use' in p && typeof p.use === 'string'))];
    expect(entries.map((p) => p.use)).toContain(id);
    expect(spec.student?.model).toMatch(/^(cnn-small|resnet-student)$/);
    expect(spec.data).toMatchObject({ name: 'fashion-mnist', subset: true });
    entries.forEach((p, i) => {
      const def = registry.plugin(p.use, `plugins[${i}].use`);
      const options = validate(def.options, p.with, { code: 'KD_PLUGIN_OPTIONS', prefix: `plugins[${i}].with` });
      for (const tap of def.requires?.(options).taps ?? []) expect(tap).toMatch(/^(student|teacher)\.[a-z0-9]+$/);
    });
  });
});
