import { PLUGIN_DEFINITION, type PluginDefinition } from '@tfkd/kd-core';
import { ContainerModule } from 'inversify';
import { randomSampler } from './random';
import { unixSampler } from './unix';

/** Every plugin definition of this package, in the order `kd list` shows them. */
export const UNIX_SAMPLERS: readonly PluginDefinition[] = [unixSampler, randomSampler];

/** Binds each definition to kd-core's `PLUGIN_DEFINITION` (a multi-binding). */
export const unixSamplersModule: ContainerModule = new ContainerModule((options) => {
  for (const def of UNIX_SAMPLERS) options.bind<PluginDefinition>(PLUGIN_DEFINITION).toConstantValue(def);
});

/** The same module under the name a spec's `packages:` loader looks for. */
export const kdModule = unixSamplersModule;
