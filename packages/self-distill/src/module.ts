import { PLUGIN_DEFINITION, type PluginDefinition } from '@tfkd/kd-core';
import { ContainerModule } from 'inversify';
import { bornAgainLoss } from './born-again';
import { byotPlugin } from './byot';
import { tfKdCalibratedLoss, tfKdSelfLoss, tfKdVirtualLoss } from './tf-kd';

/** Every plugin definition of this package, in the order `kd list` shows them. */
export const SELF_DISTILL_PLUGINS: readonly PluginDefinition[] = [tfKdVirtualLoss, tfKdCalibratedLoss, tfKdSelfLoss, bornAgainLoss, byotPlugin] as PluginDefinition[];

/** Binds the plugins to PLUGIN_DEFINITION (the model byot-resnet lives in @tfkd/models' zoo). */
export const selfDistillModule: ContainerModule = new ContainerModule((options) => {
  for (const def of SELF_DISTILL_PLUGINS) options.bind<PluginDefinition>(PLUGIN_DEFINITION).toConstantValue(def);
});

/** The same module under the name a spec's `packages:` loader looks for. */
export const kdModule = selfDistillModule;
