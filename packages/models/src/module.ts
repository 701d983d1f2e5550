import { MODEL_DEFINITION, MODEL_TOOLS, type ModelDefinition, type ModelTools } from '@tfkd/kd-core';
import { ContainerModule } from 'inversify';
import { countFlops } from './flops';
import { loadModel, saveModel } from './io';
import { MODEL_ZOO } from './zoo';

/** The model services the engine needs: FLOPs per image, folder save and load. */
export const modelTools: ModelTools = {
  countFlops: (model) => countFlops(model).perImage,
  save: async (model, dir) => {
    await saveModel(model, dir);
  },
  load: (dir) => loadModel(dir),
};

/**
 * Binds every zoo model as a constant `MODEL_DEFINITION` (multi-binding: resolve them all with
 * `container.getAll<ModelDefinition>(MODEL_DEFINITION)`) and the model tools to `MODEL_TOOLS`.
 */
export const modelsModule: ContainerModule = new ContainerModule((options) => {
  for (const def of MODEL_ZOO) {
    options.bind<ModelDefinition>(MODEL_DEFINITION).toConstantValue(def);
  }
  options.bind<ModelTools>(MODEL_TOOLS).toConstantValue(modelTools);
});
export const kdModule = modelsModule;
