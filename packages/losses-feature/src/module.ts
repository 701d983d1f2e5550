import { PLUGIN_DEFINITION, type PluginDefinition } from '@tfkd/kd-core';
import { ContainerModule } from 'inversify';
import { activationBoundaryLoss } from './activation-boundary';
import { attentionLossDef } from './attention';
import { crdLoss } from './crd';
import { factorTransferLossDef } from './factor-transfer';
import { fitnetsLoss } from './fitnets';
import { fspLossDef } from './fsp';
import { gradientAttentionLoss } from './gradient-attention';
import { nstLossDef } from './nst';
import { pktLossDef } from './pkt';
import { rkdLossDef } from './rkd';
import { similarityLossDef } from './similarity';

/** Every plugin definition of this package, in the order `kd list` shows them. */
export const FEATURE_LOSSES: readonly PluginDefinition[] = [
  attentionLossDef,
  gradientAttentionLoss,
  fitnetsLoss,
  nstLossDef,
  factorTransferLossDef,
  similarityLossDef,
  pktLossDef,
  rkdLossDef,
  fspLossDef,
  activationBoundaryLoss,
  crdLoss,
] as PluginDefinition[];

/** Binds each definition to kd-core's `PLUGIN_DEFINITION` (a multi-binding). */
export const featureLossesModule: ContainerModule = new ContainerModule((options) => {
  for (const def of FEATURE_LOSSES) options.bind<PluginDefinition>(PLUGIN_DEFINITION).toConstantValue(def);
});

/** The same module under the name a spec's `packages:` loader looks for. */
export const kdModule = featureLossesModule;
