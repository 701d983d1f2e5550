import { PLUGIN_DEFINITION, type PluginDefinition } from '@tfkd/kd-core';
import { ContainerModule } from 'inversify';
import { randomCropAugment } from './crop';
import { randomErasingAugment } from './erasing';
import { flipAugment } from './flip';
import { cutmixAugment, mixupAugment } from './mix';
import { randAugmentAugment } from './randaugment';

/** Every plugin definition of this package, in the order `kd list` shows them. */
export const AUGMENTATIONS: readonly PluginDefinition[] = [randomCropAugment, flipAugment, randomErasingAugment, mixupAugment, cutmixAugment, randAugmentAugment];

/** Binds each definition to kd-core's `PLUGIN_DEFINITION` (a multi-binding). */
export const augmentModule: ContainerModule = new ContainerModule((options) => {
  for (const def of AUGMENTATIONS) options.bind<PluginDefinition>(PLUGIN_DEFINITION).toConstantValue(def);
});

/** The same module under the name a spec's `packages:` loader looks for. */
export const kdModule = augmentModule;
