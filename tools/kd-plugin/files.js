'use strict';
// The files of a new plugin package, as [relative path, content] pairs. Shared by the Nx generator
// (generator.js) and the plain-node CLI (cli.js).

function camel(name) {
  return name.replace(/-([a-z0-9])/g, (_, c) => c.toUpperCase());
}

function pluginFiles({ name, id, directory = 'packages', scope = '@tfkd' }) {
  if (!/^[a-z][a-z0-9-]*$/.test(name)) throw new Error(`name '${name}' must be kebab-case (a-z, 0-9, -)`);
  const pluginId = id || `loss/${name}`;
  const fn = camel(name);
  const root = `${directory}/${name}`;
  const rel = [...directory.split('/').filter(Boolean), name].map(() => '..').join('/');
  const pkg = {
    name: `${scope}/${name}`,
    version: '0.1.0',
    description: `tfkd plugin ${pluginId}`,
    license: 'Apache-2.0',
    main: 'dist/index.js',
    types: 'dist/index.d.ts',
    exports: { '.': { types: './dist/index.d.ts', default: './dist/index.js' }, './package.json': './package.json' },
    files: ['dist', '!dist/**/*.spec.*', 'README.md'],
    scripts: { build: 'tsc -p tsconfig.lib.json', test: 'jest', lint: 'eslint src' },
    // kd-core is the whole contract a plugin package needs; the engine only runs its contract tests.
    dependencies: { '@tfkd/kd-core': '^0.1.0', inversify: '^7.11.0', zod: '^4.6.7' },
    peerDependencies: { '@tensorflow/tfjs-core': '^4.22.0' },
    devDependencies: { '@tfkd/engine': '^0.1.0' },
  };
  return [
    [`${root}/package.json`, JSON.stringify(pkg, null, 2) + '\n'],
    [
      `${root}/tsconfig.lib.json`,
      JSON.stringify(
        {
          extends: `${rel}/tsconfig.base.json`,
          compilerOptions: { rootDir: 'src', outDir: 'dist', paths: {}, tsBuildInfoFile: 'dist/.tsbuildinfo' },
          include: ['src/**/*.ts'],
          exclude: ['src/**/*.spec.ts'],
        },
        null,
        2,
      ) + '\n',
    ],
    [`${root}/jest.config.ts`, `/* eslint-disable */\nconst preset = require('${rel}/jest.preset.js');\nexport default { ...preset, displayName: '${name}', rootDir: __dirname };\n`],
    [
      `${root}/src/${name}.ts`,
      `import * as tf from '@tensorflow/tfjs-core';
import { defineLoss, studentOption, targetLogits, teacherOption } from '@tfkd/kd-core';
import { z } from 'zod';

/**
 * ${pluginId}: mean squared difference between the student's and the teacher's softened
 * probabilities, mean over batch and classes: mean((softmax(z_s/T) − softmax(z_t/T))²).
 * Replace with your method; keep the math a pure function of tensors.
 */
export function ${fn}(zs: tf.Tensor, zt: tf.Tensor, opts: { temperature: number }): tf.Scalar {
  return tf.tidy(() => {
    const ps = tf.softmax(tf.div(zs, opts.temperature));
    const pt = tf.softmax(tf.div(zt, opts.temperature));
    return tf.mean(tf.squaredDifference(ps, pt)) as tf.Scalar;
  });
}

// One definition: the roles it reads are declared once in \`requires\` (kd-core checks them at
// start-up); a loss with adapters or other state builds them in \`setup(options, deps)\` and gets
// them back as \`compute\`'s fourth argument (docs/writing-a-plugin.md).
export const ${fn}Loss = defineLoss({
  id: '${pluginId}',
  describe: 'mean squared difference of softened student and teacher probabilities',
  options: z
    .object({
      temperature: z.number().positive().default(4).describe('softmax temperature T'),
      student: studentOption,
      teacher: teacherOption,
    })
    .strict(),
  requires: (o) => ({ roles: [o.student, o.teacher] }),
  compute: (ctx, o) => ${fn}(ctx.outputs(o.student).logits, targetLogits(ctx, o.teacher), o),
});
`,
    ],
    [
      `${root}/src/index.ts`,
      `import { PLUGIN_DEFINITION } from '@tfkd/kd-core';
import { ContainerModule } from 'inversify';
import { ${fn}Loss } from './${name}';

export { ${fn}, ${fn}Loss } from './${name}';

/** Load with a spec's \`packages: ['${scope}/${name}']\`. */
export const kdModule = new ContainerModule((o) => {
  o.bind(PLUGIN_DEFINITION).toConstantValue(${fn}Loss);
});
`,
    ],
    [
      `${root}/src/${name}.spec.ts`,
      `import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { describePluginContract } from '@tfkd/engine/testing';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { ${fn} } from './${name}';
import { kdModule } from './index';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('${fn}', () => {
  it('matches a hand-computed value', () => {
    // T = 1, one sample. z_s = [0, 0] → p_s = [0.5, 0.5]; z_t = [ln 3, 0] → p_t = [0.75, 0.25].
    // mean((0.5 − 0.75)², (0.5 − 0.25)²) = 0.0625.
    const v = ${fn}(tf.tensor2d([[0, 0]]), tf.tensor2d([[Math.log(3), 0]]), { temperature: 1 });
    expect(v.dataSync()[0]).toBeCloseTo(0.0625, 6);
  });

  it('has the gradient of finite differences', () => {
    const zt = tf.tensor2d([[0.3, -1.2, 2.0], [1.1, 0.4, -0.5]]);
    const r = finiteDifferenceCheck((zs) => ${fn}(zs, zt, { temperature: 2 }), [0.5, -0.2, 1.0, -0.7, 0.9, 0.1], [2, 3]);
    expect(r.maxRelError).toBeLessThan(1e-2);
  });
});

describePluginContract({ module: kdModule, id: '${pluginId}', options: { temperature: 4 } });
`,
    ],
    [
      `${root}/README.md`,
      `# ${scope}/${name}

A tfkd plugin package: \`${pluginId}\`, mean((softmax(z_s/T) − softmax(z_t/T))²).

\`\`\`yaml
packages: ['${scope}/${name}']
plugins:
  - use: loss/cross-entropy
    weight: 0.5
  - use: ${pluginId}
    with: { temperature: 4 }
    weight: 0.5
\`\`\`

\`npm test\` runs the value test, the finite-difference gradient check and the plugin contract (\`@tfkd/engine/testing\`)
(registration, option errors, no tensor leaks, stacking with a sampler). See docs/writing-a-plugin.md.
`,
    ],
  ];
}

module.exports = { pluginFiles };
