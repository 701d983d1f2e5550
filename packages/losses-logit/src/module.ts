import { PLUGIN_DEFINITION, type PluginDefinition } from '@tfkd/kd-core';
import { ContainerModule } from 'inversify';
import { crossEntropyLoss, labelSmoothingLoss } from './cross-entropy';
import { ctkdLoss } from './ctkd';
import { distLoss } from './dist';
import { dkdLoss } from './dkd';
import { hintonKdLoss } from './hinton-kd';
import { logitMseLoss } from './logit-mse';
import { logitStdKdLoss } from './logit-std-kd';
import { mlkdLoss } from './mlkd';
import { nkdLoss } from './nkd';
import { softTargetCeLoss } from './soft-target-ce';
import { ttmLoss, wttmLoss } from './ttm';

/** Every plugin definition of this package, in the order `kd list` shows them. */
export const LOGIT_LOSSES: readonly PluginDefinition[] = [
  crossEntropyLoss,
  labelSmoothingLoss,
  hintonKdLoss,
  softTargetCeLoss,
  logitMseLoss,
  dkdLoss,
  distLoss,
  logitStdKdLoss,
  nkdLoss,
  ttmLoss,
  wttmLoss,
  ctkdLoss,
  mlkdLoss,
];

/** Binds each definition to kd-core's `PLUGIN_DEFINITION` (a multi-binding). */
export const logitLossesModule: ContainerModule = new ContainerModule((options) => {
  for (const def of LOGIT_LOSSES) options.bind<PluginDefinition>(PLUGIN_DEFINITION).toConstantValue(def);
});

/** The same module under the name a spec's `packages:` loader looks for. */
export const kdModule = logitLossesModule;
