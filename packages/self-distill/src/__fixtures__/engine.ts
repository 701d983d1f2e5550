import { DATASET_DEFINITION, MODEL_DEFINITION, MODEL_TOOLS } from '@tfkd/kd-core';
import { blobs, testModelDefinition } from '@tfkd/kd-core/testing';
import { logitLossesModule } from '@tfkd/losses-logit';
import { metricsModule } from '@tfkd/metrics-ece';
import { byotResnetDefinition, modelTools } from '@tfkd/models';
import { ContainerModule } from 'inversify';
import { nodeModule } from '@tfkd/engine/node';
import { z } from 'zod';
import { selfDistillModule } from '../module';

/**
 * Modules for engine tests: files as storage (@tfkd/engine/node), the test-dense and byot-resnet
 * models with the real FLOP counter and folder save/load of @tfkd/models, seeded blobs of any side (`blobs`: train/test/side), the logit
 * losses, the calibration metrics and this package.
 */
export function engineModules(): ContainerModule[] {
  const fixtures = new ContainerModule((o) => {
    o.bind(MODEL_DEFINITION).toConstantValue(testModelDefinition);
    o.bind(MODEL_DEFINITION).toConstantValue(byotResnetDefinition);
    o.bind(MODEL_TOOLS).toConstantValue(modelTools);
    o.bind(DATASET_DEFINITION).toConstantValue({
      id: 'blobs',
      describe: 'seeded Gaussian blobs (tests)',
      options: z
        .object({ train: z.number().int().positive().default(96), test: z.number().int().positive().default(48), side: z.number().int().positive().default(4) })
        .strict(),
      async load(o: Record<string, unknown>) {
        const side = o.side as number;
        return { train: blobs(o.train as number, { seed: 7, side, stream: 0 }), test: blobs(o.test as number, { seed: 7, side, stream: 1 }) };
      },
    });
  });
  // nodeModule: the teacher cache and generations' models as files (the models package saves to disk)
  return [nodeModule, fixtures, logitLossesModule, metricsModule, selfDistillModule];
}
