import '@tensorflow/tfjs-backend-cpu';
import { describePluginContract } from '@tfkd/engine/testing';
import { kdModule } from './module';

// The contract-test kit of kd-core, one line per plugin.
describePluginContract({ module: kdModule, id: 'loss/hinton-kd', options: { temperature: 4 } });
describePluginContract({ module: kdModule, id: 'loss/dkd', options: { warmup: 1 } });
describePluginContract({ module: kdModule, id: 'loss/cross-entropy', needsTeacher: false, invalidOptions: { labelSmoothing: 2 } });
