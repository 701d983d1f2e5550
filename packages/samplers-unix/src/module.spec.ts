import { PLUGIN_DEFINITION, parseSpec, unixCostRatio, validate, type PluginDefinition } from '@tfkd/kd-core';
import { Registry } from '@tfkd/engine';
import { logitLossesModule } from '@tfkd/losses-logit';
import * as fs from 'fs';
import { Container } from 'inversify';
import * as path from 'path';
import { ledgerCostRatio, predictedTeacherCostRatio } from './cost';
import { kdModule, unixSamplersModule } from './module';

describe('unixSamplersModule', () => {
  it('binds sampler/unix and sampler/random to PLUGIN_DEFINITION, found by the registry', () => {
    const c = new Container();
    c.load(unixSamplersModule);
    const defs = c.getAll<PluginDefinition>(PLUGIN_DEFINITION);
    expect(defs.map((d) => [d.id, d.kind, d.stage])).toEqual([
      ['sampler/unix', 'sampler', 'sample'],
      ['sampler/random', 'sampler', 'sample'],
    ]);
    expect(kdModule).toBe(unixSamplersModule);
    const registry = new Registry([kdModule]);
    expect(registry.plugin('sampler/unix', 'plugins[0].use').id).toBe('sampler/unix');
  });
});

describe('predictedTeacherCostRatio', () => {
  it("is kd-core's unixCostRatio and reproduces the UNIXKD README's computation column", () => {
    expect(predictedTeacherCostRatio).toBe(unixCostRatio);
    // k/N = 48/64 = 0.75; vgg13 → MobileNetV2, F_t/F_s = 38.17: 0.75 + 1/(38.17 + 2) = 0.774894 (README: 77.49%)
    expect(predictedTeacherCostRatio(48, 64, 38.17, 1)).toBeCloseTo(0.774894, 6);
    // ResNet50 → vgg8, 13.56: 0.75 + 1/15.56 = 0.814267 (README: 81.43%); wrn40-2 → ShuffleV1, 8.22: 0.847847 (84.79%)
    expect(predictedTeacherCostRatio(48, 64, 13.56, 1)).toBeCloseTo(0.814267, 6);
    expect(predictedTeacherCostRatio(48, 64, 8.22, 1)).toBeCloseTo(0.847847, 6);
    // the ledger's convention (backward = 2× forward): 0.75 + 1/(38.17 + 3) = 0.774290
    expect(ledgerCostRatio(48, 64, 38.17, 1)).toBeCloseTo(0.77429, 6);
  });
});

describe('examples', () => {
  const dir = path.resolve(__dirname, '../../../examples');
  const read = (file: string) => parseSpec(fs.readFileSync(path.join(dir, file), 'utf8'), file);
  const registry = new Registry([unixSamplersModule, logitLossesModule]);
  const files: [string, string | null][] = [
    ['kd-cnn.yaml', null],
    ['unix-kd.yaml', 'sampler/unix'],
    ['unix-kd-40.yaml', 'sampler/unix'],
    ['random-kd.yaml', 'sampler/random'],
    ['unix-attention.yaml', 'sampler/unix'],
  ];

  it.each(files)('%s parses; recipe, sampler first, options valid', (file, sampler) => {
    const spec = read(file);
    expect(spec.data).toEqual({ name: 'fashion-mnist', subset: true });
    expect(spec.teacher).toMatchObject({ model: 'cnn-large', seed: 1, train: { epochs: 8, batchSize: 64, optimizer: { name: 'adam', lr: 0.001, weightDecay: 0 } } });
    expect(spec.student?.model).toBe('cnn-small');
    expect(spec.train).toMatchObject({ epochs: 10, batchSize: 64, optimizer: { name: 'adam', lr: 0.001, weightDecay: 0 } });
    const uses = spec.plugins.map((p) => p.use);
    expect(uses.slice(0, sampler ? 2 : 1)).toEqual([...(sampler ? [sampler] : []), 'loss/hinton-kd']);
    expect(uses).not.toContain('loss/cross-entropy'); // UNIXKD: CE weight 0
    expect(spec.packages).toEqual([]); // the kd CLI ships this package's module
    spec.plugins.forEach((p, i) => {
      if (p.use === 'loss/attention') return; // another package; the example only has to parse
      const def = registry.plugin(p.use, `plugins[${i}].use`);
      const o = validate(def.options, p.with, { code: 'KD_PLUGIN_OPTIONS', prefix: `plugins[${i}].with` }) as Record<string, unknown>;
      if (p.use === 'loss/hinton-kd') expect([o.temperature, p.weight]).toEqual([4, 1]);
      if (p.use.startsWith('sampler/')) expect(o).toMatchObject({ w: 10, b: 32, alpha: 1, beta: 1, lambda: null });
    });
  });

  it('keeps 48 (unix-kd, random-kd with mixup) and 40 (unix-kd-40); unix-attention adds AT at weight 1000', () => {
    expect(read('unix-kd.yaml').plugins[0].with.keep).toBe(48);
    expect(read('unix-kd-40.yaml').plugins[0].with.keep).toBe(40);
    expect(read('random-kd.yaml').plugins[0].with).toMatchObject({ keep: 48, mixup: true });
    const at = read('unix-attention.yaml').plugins[2];
    expect(at).toMatchObject({ use: 'loss/attention', weight: 1000, with: { pairs: [['student.block2', 'teacher.block3']] } });
  });
});
