import { Registry } from '@tfkd/kd-core';
import { wasmTrainModule } from '@tfkd/backend-wasm-train';
import { datasetsModule } from '@tfkd/datasets';
import { featureLossesModule } from '@tfkd/losses-feature';
import { logitLossesModule } from '@tfkd/losses-logit';
import { metricsModule } from '@tfkd/metrics-ece';
import { modelsModule } from '@tfkd/models';
import { onlineDmlModule } from '@tfkd/online-dml';
import { selfDistillModule } from '@tfkd/self-distill';
import { unixSamplersModule } from '@tfkd/samplers-unix';
import type { ContainerModule } from 'inversify';

/** The packages the `kd` command ships with; a spec's `packages:` adds more. */
export const BUILTIN_MODULES: readonly ContainerModule[] = [
  wasmTrainModule,
  datasetsModule,
  modelsModule,
  logitLossesModule,
  featureLossesModule,
  metricsModule,
  unixSamplersModule,
  onlineDmlModule,
  selfDistillModule,
];

export function defaultRegistry(): Registry {
  return new Registry(BUILTIN_MODULES);
}
