import { MODEL_DEFINITION, PLUGIN_DEFINITION, type ModelDefinition, type PluginDefinition } from '@tfkd/kd-core';
import { ContainerModule } from 'inversify';
import { dmlEnsembleLossDefinition, dmlLossDefinition } from './dml';
import { oneLossDefinition } from './one';
import { ONE_MODELS } from './one-models';
import { peerEnsembleMetric } from './peer-ensemble';

/** Every plugin definition of this package, in the order `kd list` shows them. */
export const ONLINE_PLUGINS: readonly PluginDefinition[] = [dmlLossDefinition, dmlEnsembleLossDefinition, oneLossDefinition, peerEnsembleMetric];

/** Binds the plugins to PLUGIN_DEFINITION and the ONE models (one-mlp, one-cnn) to MODEL_DEFINITION. */
export const onlineDmlModule: ContainerModule = new ContainerModule((options) => {
  for (const def of ONLINE_PLUGINS) options.bind<PluginDefinition>(PLUGIN_DEFINITION).toConstantValue(def);
  for (const def of ONE_MODELS) options.bind<ModelDefinition>(MODEL_DEFINITION).toConstantValue(def);
});

/** The same module under the name a spec's `packages:` loader looks for. */
export const kdModule = onlineDmlModule;
