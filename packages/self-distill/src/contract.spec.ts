import '@tensorflow/tfjs-backend-cpu';
import { MODEL_DEFINITION } from '@tfkd/kd-core';
import { describePluginContract } from '@tfkd/engine/testing';
import { byotResnetDefinition } from '@tfkd/models';
import { ContainerModule } from 'inversify';
import { kdModule } from './module';

// kd-core's contract kit: registration, option errors at their path, no tensor growth over 30 steps,
// stacking with a sampler that halves the batch.
describePluginContract({ module: kdModule, id: 'self/tf-kd-virtual', options: { variant: 'distillistic' }, needsTeacher: false, invalidOptions: { correctProb: 2 } });
describePluginContract({ module: kdModule, id: 'self/tf-kd-virtual', options: {}, needsTeacher: false, invalidOptions: { variant: 'paper' } });
describePluginContract({ module: kdModule, id: 'self/tf-kd-calibrated', needsTeacher: false, invalidOptions: { alpha: 1.5 } });
describePluginContract({ module: kdModule, id: 'self/tf-kd-self', options: { temperature: 6 }, invalidOptions: { reduction: 'sum' } });
describePluginContract({ module: kdModule, id: 'self/born-again', needsTeacher: false, invalidOptions: { generations: 0 } });
describePluginContract({ module: kdModule, id: 'self/born-again', options: { generation: 2 }, invalidOptions: { generation: 2, alpha: -1 } });
describePluginContract({
  module: kdModule,
  id: 'self/byot',
  needsTeacher: false,
  stack: [],
  student: { model: 'byot-resnet', options: { widths: [4, 6, 8] } },
  modules: [new ContainerModule((o) => void o.bind(MODEL_DEFINITION).toConstantValue(byotResnetDefinition))],
  invalidOptions: { heads: [] },
});
