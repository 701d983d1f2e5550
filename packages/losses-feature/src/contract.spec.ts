import '@tensorflow/tfjs-backend-cpu';
import { describePluginContract } from '@tfkd/engine/testing';
import { kdModule } from './module';

// kd-core's plugin contract (module binding, option errors, a run with no tensor leak between step 5
// and step 30, stacking with a sampler that halves the batch) on the test-dense fc1 taps.
jest.setTimeout(60_000);

const fc1 = [['student.fc1', 'teacher.fc1']];
describePluginContract({ module: kdModule, id: 'loss/factor-transfer', options: { pairs: fc1, paraphraserEpochs: 2 }, invalidOptions: { pairs: fc1, p: 3 } });
describePluginContract({ module: kdModule, id: 'loss/crd', options: { pairs: fc1, dim: 4, mode: 'memory' }, invalidOptions: { pairs: fc1, mode: 'bank' } });
describePluginContract({ module: kdModule, id: 'loss/crd', options: { pairs: fc1, dim: 4, mode: 'in-batch' }, invalidOptions: { pairs: fc1, negatives: 0 } });
