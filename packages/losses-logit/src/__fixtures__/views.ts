import * as tf from '@tensorflow/tfjs-core';
import { PLUGIN_DEFINITION, ViewName, type BatchWriter, type PluginDefinition } from '@tfkd/kd-core';
import { ContainerModule } from 'inversify';
import { z } from 'zod';

// Two image-view writers for MLKD's tests. The real ones are @tfkd/augment's (`view: weak` on
// random-crop/flip, `view: strong` on randaugment), but augment depends on this package (its tests run
// hinton-kd), so these stand in: deterministic tensor ops on NHWC images, declared with `writes` as
// augment declares its views, so the plan sees them.

type ViewWriter = PluginDefinition & BatchWriter<{ view: string }>;

function viewWriter(id: string, view: string, describe: string, f: (x: tf.Tensor) => tf.Tensor): ViewWriter {
  const options = z.object({ view: ViewName.default(view) }).strict();
  const def: PluginDefinition<typeof options> & BatchWriter<z.output<typeof options>> = {
    id,
    kind: 'sampler',
    describe,
    options,
    stage: 'sample',
    writes: (o) => ({ views: [o.view] }),
    create: (o, deps) => ({
      name: deps.name,
      register(bus) {
        bus.on('batchStart', (ctx) => ctx.setView(o.view, f(ctx.batch.views?.[o.view] ?? ctx.batch.x)));
      },
    }),
  };
  return def as unknown as ViewWriter;
}

/** `test/view-weak`: the horizontal flip of every image, into the view `weak` (option `view`). */
export const weakViewWriter = viewWriter('test/view-weak', 'weak', 'horizontal flip into a view (test fixture)', (x) => tf.reverse(x, 2));

/** `test/view-strong`: vertical flip at half contrast, 0.5·x + 0.25, into the view `strong`. */
export const strongViewWriter = viewWriter('test/view-strong', 'strong', 'vertical flip at half contrast into a view (test fixture)', (x) =>
  tf.add(tf.mul(tf.reverse(x, 1), 0.5), 0.25),
);

/** Both writers as a module (for `describePluginContract({ modules })`). */
export const viewWritersModule = new ContainerModule((o) => {
  o.bind<PluginDefinition>(PLUGIN_DEFINITION).toConstantValue(weakViewWriter);
  o.bind<PluginDefinition>(PLUGIN_DEFINITION).toConstantValue(strongViewWriter);
});

/** The spec entries that write both views. */
export const VIEW_WRITERS = [{ use: 'test/view-weak' }, { use: 'test/view-strong' }];
