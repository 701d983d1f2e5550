import type { Scalar } from '@tensorflow/tfjs-core';
import type { z } from 'zod';
import type { StepContext } from './hooks';
import type { Plugin, PluginDefinition, PluginDeps, PluginRequirements } from './plugin';

export interface LossDefinition<S extends z.ZodType> {
  id: string;
  describe: string;
  options: S;
  requires?(options: z.output<S>): PluginRequirements;
  /**
   * The loss for the current step: a scalar, or named scalars (`{ distance, angle }`) logged as
   * `<name>:<key>`. Runs inside the step's tidy and gradient scope.
   */
  compute(ctx: StepContext, options: z.output<S>, deps: PluginDeps): Scalar | Record<string, Scalar>;
}

/**
 * A loss plugin from a pure compute function: the boilerplate every loss would otherwise repeat
 * (subscribe to `loss`, name the term, apply the spec weight) written once.
 */
export function defineLoss<S extends z.ZodType>(def: LossDefinition<S>): PluginDefinition<S> {
  return {
    id: def.id,
    kind: 'loss',
    describe: def.describe,
    options: def.options,
    stage: 'default',
    requires: def.requires,
    create(options, deps): Plugin {
      return {
        name: deps.name,
        register(bus) {
          bus.on('loss', (ctx) => {
            const out = def.compute(ctx, options, deps);
            if (isScalarLike(out)) {
              ctx.addLoss({ name: deps.name, value: out });
            } else {
              for (const [k, v] of Object.entries(out)) ctx.addLoss({ name: `${deps.name}:${k}`, value: v });
            }
          });
        },
      };
    },
  };
}

function isScalarLike(v: unknown): v is Scalar {
  return typeof v === 'object' && v !== null && 'dataId' in v && 'shape' in v;
}
