import { PLUGIN_DEFINITION, type PluginDefinition } from '@tfkd/kd-core';
import { ContainerModule } from 'inversify';
import { netaugLoss } from './netaug';

/** Binds `train/netaug` to PLUGIN_DEFINITION. */
export const netaugModule: ContainerModule = new ContainerModule((options) => {
  options.bind<PluginDefinition>(PLUGIN_DEFINITION).toConstantValue(netaugLoss);
});

/** The same module under the name a spec's `packages:` loader looks for. */
export const kdModule = netaugModule;
