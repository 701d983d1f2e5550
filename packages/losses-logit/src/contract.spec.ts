import '@tensorflow/tfjs-backend-cpu';
import { describePluginContract } from '@tfkd/engine/testing';
import { VIEW_WRITERS, viewWritersModule } from './__fixtures__/views';
import { kdModule } from './module';

// The contract-test kit of kd-core, one line per plugin.
describePluginContract({ module: kdModule, id: 'loss/hinton-kd', options: { temperature: 4 } });
describePluginContract({ module: kdModule, id: 'loss/dkd', options: { warmup: 1 } });
describePluginContract({ module: kdModule, id: 'loss/cross-entropy', needsTeacher: false, invalidOptions: { labelSmoothing: 2 } });
describePluginContract({ module: kdModule, id: 'loss/logit-std-kd', options: { temperature: 2 } });
describePluginContract({ module: kdModule, id: 'loss/nkd', options: { temperature: 3, gamma: 3.5 } });
describePluginContract({ module: kdModule, id: 'loss/ttm', options: { gamma: 0.1 } });
describePluginContract({ module: kdModule, id: 'loss/wttm', options: { gamma: 0.2 } });
describePluginContract({ module: kdModule, id: 'loss/ctkd', options: { lambdaEpochs: 1 }, invalidOptions: { lambdaEpochs: 0 } });
// MLKD reads the image views `weak` and `strong`: two writers (test fixtures standing in for
// @tfkd/augment, which depends on this package) come before it in every contract run.
describePluginContract({ module: kdModule, id: 'loss/mlkd', modules: [viewWritersModule], stack: VIEW_WRITERS, invalidOptions: { weakView: 'same', strongView: 'same' } });
