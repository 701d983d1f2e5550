import { Registry, type NamedModule } from '@tfkd/engine';
import { nodeModule, nodePackageLoader } from '@tfkd/engine/node';
import { augmentModule } from '@tfkd/augment';
import { wasmTrainModule } from '@tfkd/backend-wasm-train';
import { datasetsModule } from '@tfkd/datasets';
import { denseModule } from '@tfkd/dense';
import { featureLossesModule } from '@tfkd/losses-feature';
import { logitLossesModule } from '@tfkd/losses-logit';
import { metricsModule } from '@tfkd/metrics-ece';
import { modelsModule } from '@tfkd/models';
import { netaugModule } from '@tfkd/netaug';
import { onlineDmlModule } from '@tfkd/online-dml';
import { selfDistillModule } from '@tfkd/self-distill';
import { unixSamplersModule } from '@tfkd/samplers-unix';
import type { ContainerModule } from 'inversify';

/** The packages the `kd` command ships with, named for error messages; a spec's `packages:` adds more. */
export const BUILTIN_MODULES: readonly { name: string; module: ContainerModule }[] = [
  { name: '@tfkd/engine/node', module: nodeModule },
  { name: '@tfkd/backend-wasm-train', module: wasmTrainModule },
  { name: '@tfkd/datasets', module: datasetsModule },
  { name: '@tfkd/models', module: modelsModule },
  { name: '@tfkd/losses-logit', module: logitLossesModule },
  { name: '@tfkd/losses-feature', module: featureLossesModule },
  { name: '@tfkd/metrics-ece', module: metricsModule },
  { name: '@tfkd/samplers-unix', module: unixSamplersModule },
  { name: '@tfkd/augment', module: augmentModule },
  { name: '@tfkd/online-dml', module: onlineDmlModule },
  { name: '@tfkd/self-distill', module: selfDistillModule },
  { name: '@tfkd/netaug', module: netaugModule },
  { name: '@tfkd/dense', module: denseModule },
];

/** The `kd` command's registry: the built-in packages, files as storage, `packages:` loaded from node_modules or paths. */
export function defaultRegistry(extra: readonly NamedModule[] = []): Registry {
  return new Registry([...BUILTIN_MODULES, ...extra], { loadPackage: nodePackageLoader });
}
