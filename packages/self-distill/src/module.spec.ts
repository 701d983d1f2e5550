import { PLUGIN_DEFINITION, parseSpec, validate, type PluginDefinition } from '@tfkd/kd-core';
import { Registry } from '@tfkd/engine';
import * as fs from 'fs';
import { Container } from 'inversify';
import * as path from 'path';
import { kdModule, selfDistillModule } from './module';

const IDS = ['self/tf-kd-virtual', 'self/tf-kd-calibrated', 'self/tf-kd-self', 'self/born-again', 'self/byot'];

describe('selfDistillModule', () => {
  it('binds the five plugins to PLUGIN_DEFINITION; kdModule is the same module', () => {
    const c = new Container();
    c.load(selfDistillModule);
    expect(c.getAll<PluginDefinition>(PLUGIN_DEFINITION).map((d) => [d.id, d.kind])).toEqual(IDS.map((id) => [id, 'loss']));
    expect(kdModule).toBe(selfDistillModule);
    const registry = new Registry([kdModule]);
    for (const id of IDS) expect(registry.plugin(id, 'plugins[0].use').id).toBe(id);
  });

  it('every option is described; every one has a default but the per-variant ones of tf-kd-virtual and byot’s deepCeWeight', () => {
    const noDefault = ['self/tf-kd-virtual:correctProb', 'self/tf-kd-virtual:temperature', 'self/tf-kd-virtual:alpha', 'self/tf-kd-virtual:multiplier', 'self/byot:deepCeWeight'];
    for (const def of new Registry([kdModule]).plugins()) {
      const shape = (def.options as unknown as { shape: Record<string, { description?: string; parse(v: unknown): unknown }> }).shape;
      for (const [key, field] of Object.entries(shape)) {
        expect([def.id, key, typeof field.description]).toEqual([def.id, key, 'string']);
        expect([def.id, key, field.parse(undefined) !== undefined]).toEqual([def.id, key, !noDefault.includes(`${def.id}:${key}`)]);
      }
    }
  });
});

describe('examples/self-*.yaml', () => {
  const dir = path.resolve(__dirname, '../../../examples');
  const read = (name: string) => parseSpec(fs.readFileSync(path.join(dir, `${name}.yaml`), 'utf8'), `${name}.yaml`);
  const files: [string, string, string[]][] = [
    ['self-tf-kd-virtual', 'mlp-student', ['self/tf-kd-virtual']],
    ['self-tf-kd-virtual-distillistic', 'mlp-student', ['self/tf-kd-virtual']],
    ['self-tf-kd-calibrated', 'mlp-student', ['self/tf-kd-calibrated']],
    ['self-tf-kd-self', 'mlp-student', ['self/tf-kd-self']],
    ['self-born-again', 'mlp-student', ['self/born-again']],
    ['self-byot', 'byot-resnet', ['self/byot']],
    ['self-cross-quality', 'mlp-student', ['loss/cross-entropy', 'loss/hinton-kd']],
    ['self-cross-quality-scratch', 'mlp-student', ['loss/cross-entropy']],
    ['self-byot-scratch', 'byot-resnet', ['loss/cross-entropy']],
  ];

  it.each(files)('%s.yaml: fashion-mnist, the protocol recipe (20 epochs, Adam 1e-3, cosine), accuracy + ece; its plugins validate', (name, model, uses) => {
    const spec = read(name);
    expect(spec.data).toEqual({ name: 'fashion-mnist' });
    expect(spec.train).toMatchObject({ epochs: 20, batchSize: 128, optimizer: { name: 'adam', lr: 0.001, weightDecay: 0 }, schedule: { name: 'cosine' } });
    expect(spec.eval).toEqual(['accuracy', 'ece']);
    expect(spec.packages).toEqual([]);
    expect(spec.student?.model).toBe(model);
    expect(spec.plugins.map((p) => p.use)).toEqual(uses);
    const registry = new Registry([kdModule]);
    spec.plugins.forEach((p, i) => {
      if (!p.use.startsWith('self/')) return;
      validate(registry.plugin(p.use, `plugins[${i}].use`).options, p.with, { code: 'KD_PLUGIN_OPTIONS', prefix: `plugins[${i}].with` });
    });
  });

  it('the variants are named: official and distillistic', () => {
    expect(read('self-tf-kd-virtual').plugins[0].with).toEqual({ variant: 'official' });
    expect(read('self-tf-kd-virtual-distillistic').plugins[0].with).toEqual({ variant: 'distillistic' });
  });

  it('tf-kd-self’s teacher is the student’s architecture, trained with the same recipe', () => {
    const spec = read('self-tf-kd-self');
    expect(spec.teacher?.model).toBe(spec.student?.model);
    expect(spec.teacher?.train).toEqual(spec.train);
  });

  it('cross-quality: the teacher (and the run recipe) of fashion-kd-half-t2, so the cached teacher is reused; the student sees 14×14 up-sampled', () => {
    const cq = read('self-cross-quality');
    const half = read('fashion-kd-half-t2');
    expect(cq.teacher).toEqual(half.teacher);
    expect([cq.seed, cq.data, cq.train]).toEqual([half.seed, half.data, half.train]);
    expect(cq.plugins).toEqual(half.plugins);
    expect(cq.student).toEqual({ ...half.student, view: { resize: [14, 14], upsample: true } });
  });

  it('cross-quality scratch: the same student, view and recipe, from labels only (fashion-scratch + the view)', () => {
    const base = read('self-cross-quality-scratch');
    const scratch = read('fashion-scratch');
    expect(base.student).toEqual(read('self-cross-quality').student);
    expect([base.seed, base.data, base.train, base.plugins, base.teacher]).toEqual([scratch.seed, scratch.data, scratch.train, scratch.plugins, undefined]);
  });

  it('born-again asks for 3 generations', () => {
    expect(read('self-born-again').plugins[0].with).toEqual({ generations: 3 });
  });
});
