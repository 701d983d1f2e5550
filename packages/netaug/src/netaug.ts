import { crossEntropy, defineLoss, KdError, labelTargets, studentOption, type PluginDeps } from '@tfkd/kd-core';
import { z } from 'zod';
import { augmentedForward, chainFlops, createExtras, extents, extrasVariables, sampleWidths, tinyWidths, type LayerExtras } from './augment';
import { readChain, type Chain } from './chain';

/** Defaults from the reference (mit-han-lab/tinyml `netaug/`): see the package README. */
export const NETAUG_WIDTHS = [1.0, 1.8, 2.6];

export const netaugSchema = z
  .object({
    student: studentOption,
    widths: z
      .array(z.number().min(1))
      .min(1)
      .default(NETAUG_WIDTHS)
      .describe(
        'width multipliers of the augmented network (each ≥ 1, 1 = the tiny width); every step draws one per widened layer. ' +
          'Default [1.0, 1.8, 2.6]: the reference aug_width_mult_list of its MobileNetV2-0.35 and MobileNetV2-Tiny scripts',
      ),
    alpha: z
      .number()
      .min(0)
      .default(1)
      .describe('α in L = L(tiny) + α·L(augmented); default 1: the reference back-propagates the two losses unweighted'),
    labelSmoothing: z
      .number()
      .min(0)
      .lt(1)
      .default(0)
      .describe("ε of the augmented network's cross-entropy (the reference recipe: 0.1 on both losses; give loss/cross-entropy the same)"),
  })
  .strict();
export type NetaugOptions = z.output<typeof netaugSchema>;

/** `student` → `student`, `student.2` → `students[2]`: the role's spec path. */
function rolePath(role: string): string {
  const m = /^student\.(\d+)$/.exec(role);
  return m ? `students[${m[1]}]` : role;
}

/** The student as a chain, checked: a coded start-up error for anything NetAug cannot widen. */
function studentChain(o: NetaugOptions, deps: PluginDeps): Chain {
  const info = deps.roles.find((r) => r.name === o.student);
  const names = deps.roles.map((r) => r.name);
  if (!info) {
    throw new KdError('KD_PLUGIN_DEPENDENCY', `'${deps.name}' trains role '${o.student}' (option \`student\`), and the run has no such role`, {
      path: `${deps.specPath}.with.student`,
      fix: `set \`student:\` to one of the run's roles: ${names.join(', ')}`,
    });
  }
  if (info.kind !== 'student') {
    throw new KdError('KD_PLUGIN_OPTIONS', `'${deps.name}': role '${o.student}' is a ${info.kind}; NetAug trains a student`, {
      path: `${deps.specPath}.with.student`,
      fix: `name a student role: ${deps.roles.filter((r) => r.kind === 'student').map((r) => r.name).join(', ')}`,
    });
  }
  if (!deps.model) {
    throw new KdError('KD_PLUGIN_DEPENDENCY', `'${deps.name}' reads the student's weights, and this host gives plugins no models (PluginDeps.model)`, {
      path: deps.specPath,
      fix: 'run it with @tfkd/engine 0.1 or later (it sets PluginDeps.model); hand-made deps must provide model(role)',
    });
  }
  const chain = readChain(deps.model(o.student), { role: o.student, path: rolePath(o.student), plugin: deps.name });
  if (!chain.matrices.some((m) => m.widen)) {
    throw new KdError('KD_PLUGIN_DEPENDENCY', `'${deps.name}': the model of '${o.student}' has no hidden layer to widen (only its logits layer)`, {
      path: rolePath(o.student),
      fix: 'give the student at least one hidden Dense or Conv2D layer (e.g. mlp with hidden: [32])',
    });
  }
  return chain;
}

/**
 * `train/netaug` (Cai et al., ICLR 2022): the tiny student is also trained as the leading slice of a
 * wider network. Each step draws one augmented sub-network (a width per hidden layer from `widths`),
 * runs it on the batch with the student's current weights plus this plugin's extra weights, and adds
 * α·CE(augmented logits, y). L(tiny) is the run's other losses (`loss/cross-entropy`, or CE + KD). The
 * student's model is never changed: the saved student is the tiny model; the extras are plugin variables.
 */
export const netaugLoss = defineLoss({
  id: 'train/netaug',
  describe:
    'NetAug (Cai et al., ICLR 2022): adds α·CE of one randomly drawn wider network per step that contains the tiny student as its ' +
    'leading units/channels (the student\'s weights are shared; the extra weights are the plugin\'s). Stack with loss/cross-entropy ' +
    'for L(tiny). Students: chains of Dense/Conv2D/MaxPooling2D/Flatten/Dropout (mlp family, cnn-small, cnn-large)',
  options: netaugSchema,
  requires: (o) => ({ roles: [o.student] }),
  setup(o, deps) {
    const chain = studentChain(o, deps);
    const extras: LayerExtras[] = createExtras(chain, o.widths, deps.rng, deps.name);
    const widest = extents(chain, o.widths).map((e) => e.outMax);
    const grown = chain.matrices
      .map((m, i) => (m.widen ? `${m.layer} ${m.outTiny}→${widest[i]}` : null))
      .filter((s): s is string => s !== null)
      .join(', ');
    const mflops = (w: readonly number[]) => (chainFlops(chain, w) / 1e6).toFixed(2);
    return {
      chain,
      extras,
      variables: extrasVariables(extras),
      hooks: {
        runStart: () =>
          deps.log?.(
            `${deps.name}: ${o.student} widened up to ${grown} (multipliers ${JSON.stringify(o.widths)}, α = ${o.alpha}); ` +
              `augmented forward ≤ ${mflops(widest)} MFLOPs per image (tiny ${mflops(tinyWidths(chain))}), not counted in the cost ledger`,
          ),
      },
    };
  },
  compute(ctx, o, _deps, { chain, extras }) {
    const widths = sampleWidths(chain, o.widths, ctx.rng);
    const logits = augmentedForward(chain, extras, widths, ctx.input(o.student), { training: true, seed: () => ctx.rng.nextUint32() });
    return { aug: { value: crossEntropy(logits, labelTargets(ctx.batch), { labelSmoothing: o.labelSmoothing }), weight: o.alpha } };
  },
});
