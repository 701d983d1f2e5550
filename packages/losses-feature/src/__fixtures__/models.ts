import * as tfl from '@tensorflow/tfjs-layers';
import { MODEL_DEFINITION, type ModelDefinition } from '@tfkd/kd-core';
import { ContainerModule } from 'inversify';

/**
 * test-conv: conv 3×3 (`width` filters, same, ReLU) `c1` → maxpool 2 `p1` → conv 3×3 (2·width) `c2`
 * → flatten → dense logits. On the 4×4×1 blobs: c1 [4,4,w], p1 [2,2,w], c2 [2,2,2w].
 */
export const testConvDefinition: ModelDefinition = {
  id: 'test-conv',
  describe: 'tiny CNN for tests (option width, default 2)',
  taps: ['c1', 'p1', 'c2'],
  build(o) {
    const width = (o.width as number | undefined) ?? 2;
    const seed = o.seed ?? 1;
    const init = (k: number) => tfl.initializers.glorotUniform({ seed: seed * 10 + k });
    const x0 = tfl.input({ shape: o.inputShape });
    let x = tfl.layers.conv2d({ filters: width, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1', kernelInitializer: init(1) }).apply(x0) as tfl.SymbolicTensor;
    x = tfl.layers.maxPooling2d({ poolSize: 2, name: 'p1' }).apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.conv2d({ filters: 2 * width, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c2', kernelInitializer: init(2) }).apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.flatten({ name: 'flatten' }).apply(x) as tfl.SymbolicTensor;
    const out = tfl.layers.dense({ units: o.numClasses, name: 'logits', kernelInitializer: init(3) }).apply(x) as tfl.SymbolicTensor;
    return tfl.model({ inputs: x0, outputs: out, name: 'test-conv' });
  },
};

export const testConvModule = new ContainerModule((o) => {
  o.bind<ModelDefinition>(MODEL_DEFINITION).toConstantValue(testConvDefinition);
});
