// The files of a tfkd plugin package and the checks of the names that go into them. Self-contained
// (no imports, no Node built-ins): the standalone generator (cli.ts, `npm create @tfkd/plugin`) and
// the repository's in-repo generator (tools/kd-plugin, which transpiles this file) write the same
// loss, module, tests and README from here.

/** The error codes of the generator: stable, printed as `error CODE: message fix: …` (exit 2). */
export const CREATE_ERROR_CODES = {
  KD_CREATE_USAGE: 'The command line is not one the generator understands',
  KD_CREATE_NAME: 'The package name or plugin id cannot be used',
  KD_CREATE_EXISTS: 'The target folder already holds files',
  KD_CREATE_WRITE: 'A file of the new package could not be written',
} as const;

export type CreateErrorCode = keyof typeof CREATE_ERROR_CODES;

/** A user error of the generator: a code, what went wrong, and the fix (the shape of kd-core's KdError). */
export class CreatePluginError extends Error {
  readonly code: CreateErrorCode;
  readonly fix: string;

  constructor(code: CreateErrorCode, message: string, fix: string) {
    super(message);
    this.name = 'CreatePluginError';
    this.code = code;
    this.fix = fix;
  }

  /** One line: `KD_CREATE_NAME: 'My Loss' is not … fix: …`. */
  format(): string {
    return `${this.code}: ${this.message} fix: ${this.fix}`;
  }
}

/** The ranges a generated package starts with (peers are the host's; the rest only build and test it). */
export const TOOL_VERSIONS = {
  '@tensorflow/tfjs-core': '^4.22.0',
  '@tensorflow/tfjs-layers': '^4.22.0',
  '@tensorflow/tfjs-backend-cpu': '^4.22.0',
  inversify: '^7.11.0',
  zod: '^4.6.7',
  jest: '^30.0.0',
  '@types/jest': '^30.0.0',
  '@swc/core': '^1.16.0',
  '@swc/jest': '^0.2.39',
  typescript: '~5.9.0',
} as const;

/** Versions of the tfkd packages a generated package is written against (its `^` ranges). */
export interface KdVersions {
  kdCore: string;
  engine: string;
}

export interface PluginNames {
  /** The method's kebab-case name: the source file, the default folder and plugin id (`cosine-kd`). */
  name: string;
  /** The npm package name (`cosine-kd`, `@me/cosine-kd`). */
  packageName: string;
  /** The plugin id a spec's `use:` names (`loss/cosine-kd`). */
  id: string;
  /** The function's identifier (`cosineKd`); the plugin definition is `<fn>Loss`. */
  fn: string;
}

const NAME = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;
const SCOPE = /^@[a-z0-9][a-z0-9._~-]*$/;
const ID = /^[a-z][a-z0-9-]*\/[a-z0-9][a-z0-9-]*$/;
// Identifiers the generated source declares or imports, and JavaScript's reserved words: a method
// named after one of them would not compile.
const TAKEN = new Set(
  (
    'tf z defineLoss studentOption teacherOption targetLogits PLUGIN_DEFINITION ContainerModule kdModule describePluginContract ' +
    'finiteDifferenceCheck break case catch class const continue debugger default delete do else enum export extends false finally ' +
    'for function if import in instanceof new null return super switch this throw true try typeof var void while with yield let ' +
    'static implements interface package private protected public await arguments eval undefined'
  ).split(' '),
);

export function camel(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** Checks a package name (`cosine-kd` or `@scope/cosine-kd`) and an optional plugin id; the names of the files. */
export function pluginNames(packageName: string, id?: string): PluginNames {
  const slash = packageName.indexOf('/');
  const scope = packageName.startsWith('@') && slash > 0 ? packageName.slice(0, slash) : null;
  const name = scope ? packageName.slice(slash + 1) : packageName;
  const suggestion = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^[^a-z]+|-+$/g, '');
  const good = suggestion || 'my-loss';
  if ((scope !== null && !SCOPE.test(scope)) || !NAME.test(name) || packageName.length > 214) {
    throw new CreatePluginError(
      'KD_CREATE_NAME',
      `'${packageName}' is not a plugin package name: kebab-case, a letter first, then letters, digits and single dashes (optionally @scope/ before it).`,
      `try '${scope && SCOPE.test(scope) ? `${scope}/` : ''}${good}'`,
    );
  }
  const fn = camel(name);
  if (TAKEN.has(fn)) {
    throw new CreatePluginError(
      'KD_CREATE_NAME',
      `'${name}' would name the loss function \`${fn}\`, which the generated code cannot declare.`,
      `choose another name, e.g. '${name}-loss'`,
    );
  }
  const pluginId = id ?? `loss/${name}`;
  if (!ID.test(pluginId)) {
    throw new CreatePluginError(
      'KD_CREATE_NAME',
      `'${pluginId}' is not a plugin id: <kind>/<name>, lower-case, e.g. loss/${name}.`,
      `give --id loss/${good}`,
    );
  }
  return { name, packageName, id: pluginId, fn };
}

/** The package's sources, relative to its folder: the loss (pure function + plugin), the module, the tests. */
export function sourceFiles(n: PluginNames): [string, string][] {
  const { name, packageName, id, fn } = n;
  // The package's entry module (src/index.ts), which the generated test imports. Its name is
  // interpolated, not spelled out in the templates: shared/tools/structure.js scans text, template
  // literals included, and read the generated test's import line as this file importing our index.ts
  // (a false index.ts ↔ plugin-files.ts ↔ cli.ts circle). The generated files are the same either way.
  const entry = 'index';
  return [
    [
      `src/${name}.ts`,
      `import * as tf from '@tensorflow/tfjs-core';
import { defineLoss, studentOption, targetLogits, teacherOption } from '@tfkd/kd-core';
import { z } from 'zod';

/**
 * ${id}: mean squared difference between the student's and the teacher's softened
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
  id: '${id}',
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
      `src/${entry}.ts`,
      `import { PLUGIN_DEFINITION } from '@tfkd/kd-core';
import { ContainerModule } from 'inversify';
import { ${fn}Loss } from './${name}';

export { ${fn}, ${fn}Loss } from './${name}';

/** Load with a spec's \`packages: ['${packageName}']\`. */
export const kdModule = new ContainerModule((o) => {
  o.bind(PLUGIN_DEFINITION).toConstantValue(${fn}Loss);
});
`,
    ],
    [
      `src/${name}.spec.ts`,
      `import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { describePluginContract } from '@tfkd/engine/testing';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { ${fn} } from './${name}';
import { kdModule } from './${entry}';

tf.env().set('PROD', true); // no "install tfjs-node" banner: these tests run on the cpu backend on purpose

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

// Registration, option errors (KD_PLUGIN_OPTIONS), real engine steps without tensor leaks, stacking
// with a sampler. \`options\` must be valid for the schema above.
describePluginContract({ module: kdModule, id: '${id}', options: { temperature: 4 } });
`,
    ],
  ];
}

/** How the README tells to run the tests and where the package comes from. */
export interface ReadmeContext {
  /** The `npm test` line: what it runs. */
  test: string;
  /** Where to read on (a link or a path). */
  docs: string;
}

export function readme(n: PluginNames, ctx: ReadmeContext): string {
  return `# ${n.packageName}

A tfkd plugin package: \`${n.id}\`, mean((softmax(z_s/T) − softmax(z_t/T))²) — an example to replace
with your method (\`src/${n.name}.ts\`).

\`\`\`yaml
packages: ['${n.packageName}']
plugins:
  - use: loss/cross-entropy
    weight: 0.5
  - use: ${n.id}
    with: { temperature: 4 }
    weight: 0.5
\`\`\`

${ctx.test}

See ${ctx.docs}.
`;
}

/**
 * A package that builds and tests on its own, outside any repository: \`npm install && npm test\`.
 * kd-core and tfjs-core (and inversify, zod) are peers — the host's copies are the ones loaded — and
 * devDependencies too, with the engine for its contract kit, jest (SWC) and TypeScript.
 */
export function standaloneFiles(n: PluginNames, v: KdVersions): [string, string][] {
  const caret = (x: string) => (/^\d/.test(x) ? `^${x}` : x);
  const peers = {
    '@tfkd/kd-core': caret(v.kdCore),
    '@tensorflow/tfjs-core': TOOL_VERSIONS['@tensorflow/tfjs-core'],
    inversify: TOOL_VERSIONS.inversify,
    zod: TOOL_VERSIONS.zod,
  };
  const sorted = (o: Record<string, string>) =>
    Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
  const pkg = {
    name: n.packageName,
    version: '0.1.0',
    description: `tfkd plugin ${n.id}`,
    license: 'Apache-2.0',
    keywords: ['tfkd', 'tfkd-plugin', 'knowledge-distillation', 'tensorflowjs'],
    main: 'dist/index.js',
    types: 'dist/index.d.ts',
    exports: {
      '.': { types: './dist/index.d.ts', default: './dist/index.js' },
      './package.json': './package.json',
    },
    files: ['dist', '!dist/**/*.spec.*', 'README.md'],
    scripts: {
      build: 'tsc -p tsconfig.build.json',
      test: 'tsc -p tsconfig.json && jest',
      prepack: 'npm run build',
    },
    peerDependencies: peers,
    devDependencies: sorted({
      ...peers,
      '@tfkd/engine': caret(v.engine),
      '@tensorflow/tfjs-layers': TOOL_VERSIONS['@tensorflow/tfjs-layers'],
      '@tensorflow/tfjs-backend-cpu': TOOL_VERSIONS['@tensorflow/tfjs-backend-cpu'],
      jest: TOOL_VERSIONS.jest,
      '@types/jest': TOOL_VERSIONS['@types/jest'],
      '@swc/core': TOOL_VERSIONS['@swc/core'],
      '@swc/jest': TOOL_VERSIONS['@swc/jest'],
      typescript: TOOL_VERSIONS.typescript,
    }),
  };
  const json = (o: unknown) => `${JSON.stringify(o, null, 2)}\n`;
  return [
    ['package.json', json(pkg)],
    [
      'tsconfig.json',
      json({
        compilerOptions: {
          target: 'ES2022',
          module: 'node16',
          moduleResolution: 'node16',
          lib: ['ES2022'],
          strict: true,
          esModuleInterop: true,
          skipLibCheck: true,
          declaration: true,
          sourceMap: true,
          rootDir: 'src',
          outDir: 'dist',
          types: ['jest'],
          noEmit: true,
        },
        include: ['src/**/*.ts'],
      }),
    ],
    [
      'tsconfig.build.json',
      json({
        extends: './tsconfig.json',
        compilerOptions: { noEmit: false, types: [] },
        exclude: ['src/**/*.spec.ts'],
      }),
    ],
    [
      'jest.config.js',
      `// jest runs the TypeScript sources through SWC (type checking is \`tsc\`'s, first in \`npm test\`).
/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  testMatch: ['<rootDir>/src/**/*.spec.ts'],
  transform: {
    '^.+\\\\.ts$': ['@swc/jest', { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } }],
  },
};
`,
    ],
    ['.gitignore', 'node_modules/\ndist/\n*.tgz\n'],
    ...sourceFiles(n),
    [
      'README.md',
      readme(n, {
        test: `\`npm install && npm test\`: the type check, then jest — the value test, the finite-difference gradient check and
the plugin contract (\`@tfkd/engine/testing\`: registration, option errors, no tensor leaks, stacking with a
sampler). \`npm pack\` builds \`dist/\` and packs it; install the tarball (or the published package) next to
your specs, beside \`@tfkd/cli\`: kd-core and tfjs-core are peers, so the host's copies are the ones loaded.`,
        docs: 'docs/writing-a-plugin.md in the tfkd repository (`defineLoss`, state and adapters, other hooks, tests)',
      }),
    ],
  ];
}
