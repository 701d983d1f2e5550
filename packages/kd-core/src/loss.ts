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
   * `<name>:<key>`, each optionally with its own weight (`{ ce: { value, weight: 1 − α } }`: logged
   * unweighted, summed as spec weight × term weight × value). Runs inside the step's tidy and gradient scope.
   */
  compute(ctx: StepContext, options: z.output<S>, deps: PluginDeps): Scalar | Record<string, Scalar | WeightedTerm>;
}

/** A named term with its own weight (multiplied by the entry's spec `weight:`). */
export interface WeightedTerm {
  value: Scalar;
  weight: number;
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
              for (const [k, v] of Object.entries(out)) {
                ctx.addLoss(isScalarLike(v) ? { name: `${deps.name}:${k}`, value: v } : { name: `${deps.name}:${k}`, value: v.value, weight: v.weight });
              }
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
