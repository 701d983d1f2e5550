import { MODEL_DEFINITION, type ModelDefinition } from '@tfkd/kd-core';
import { Container } from 'inversify';
import { modelsModule } from './module';
import { getModelDefinition, MODEL_ZOO } from './zoo';

describe('modelsModule', () => {
  it('binds every zoo model under MODEL_DEFINITION', () => {
    const c = new Container();
    c.loadSync(modelsModule);
    const defs = c.getAll<ModelDefinition>(MODEL_DEFINITION);
    expect(defs.map((d) => d.id)).toEqual([
      'mlp',
      'mlp-teacher',
      'mlp-student',
      'cnn-small',
      'cnn-large',
      'resnet',
      'resnet-student',
      'resnet-teacher',
      'byot-resnet',
    ]);
    expect(defs).toEqual([...MODEL_ZOO]);
    // The bound list can be searched like the built-in zoo.
    expect(getModelDefinition('cnn-large', defs)).toBe(MODEL_ZOO[4]);
  });

  it('loads asynchronously and unloads', async () => {
    const c = new Container();
    await c.load(modelsModule);
    expect(c.getAll<ModelDefinition>(MODEL_DEFINITION)).toHaveLength(9);
    await c.unload(modelsModule);
    expect(c.isBound(MODEL_DEFINITION)).toBe(false);
  });
});
