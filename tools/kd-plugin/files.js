'use strict';
// The files of a new plugin package inside this repository (a workspace package under packages/), as
// [path relative to the repository, content] pairs. Shared by the Nx generator (generator.js) and the
// plain-node CLI (cli.js). The loss, module, tests and README come from the standalone generator,
// @tfkd/create-plugin (packages/create-plugin/src/plugin-files.ts, transpiled here with SWC, so no
// build is needed); only the workspace wiring (tsconfig extending the base, the jest preset) is here.
const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..', '..');
const SOURCE = path.join(ROOT, 'packages', 'create-plugin', 'src', 'plugin-files.ts');

let loaded;
/** packages/create-plugin/src/plugin-files.ts, a self-contained module (it imports nothing). */
function templates() {
  if (!loaded) {
    const swc = require('@swc/core');
    const { code } = swc.transformSync(fs.readFileSync(SOURCE, 'utf8'), { filename: SOURCE, ...require(path.join(ROOT, 'swc.options.js')), sourceMaps: false });
    const module = { exports: {} };
    const noImports = (id) => {
      throw new Error(`${SOURCE} must stay self-contained; it imports '${id}'`);
    };
    new Function('exports', 'require', 'module', '__filename', '__dirname', code)(module.exports, noImports, module, SOURCE, path.dirname(SOURCE));
    loaded = module.exports;
  }
  return loaded;
}

function workspaceVersion(pkg) {
  return JSON.parse(fs.readFileSync(path.join(ROOT, 'packages', pkg, 'package.json'), 'utf8')).version;
}

/** Throws the generator's coded error (CreatePluginError: `e.format()`) for a bad name or id. */
function pluginFiles({ name, id, directory = 'packages', scope = '@tfkd' }) {
  const t = templates();
  if (typeof name !== 'string' || name.includes('/')) {
    throw new t.CreatePluginError('KD_CREATE_NAME', `'${name}' is not a package folder name (the scope is --scope).`, 'give a kebab-case name, e.g. cosine-kd');
  }
  const names = t.pluginNames(`${scope}/${name}`, id);
  const root = `${directory}/${name}`;
  const rel = [...directory.split('/').filter(Boolean), name].map(() => '..').join('/');
  const pkg = {
    name: names.packageName,
    version: '0.1.0',
    description: `tfkd plugin ${names.id}`,
    license: 'Apache-2.0',
    main: 'dist/index.js',
    types: 'dist/index.d.ts',
    exports: { '.': { types: './dist/index.d.ts', default: './dist/index.js' }, './package.json': './package.json' },
    files: ['dist', '!dist/**/*.spec.*', 'README.md', 'LICENSE', '!dist/.tsbuildinfo'],
    scripts: { build: 'tsc -p tsconfig.lib.json', test: 'jest', lint: 'eslint src' },
    // kd-core and tfjs-core are the host's (peers: one copy of each at run time); the engine only
    // runs the contract tests.
    dependencies: { inversify: t.TOOL_VERSIONS.inversify, zod: t.TOOL_VERSIONS.zod },
    peerDependencies: { '@tfkd/kd-core': `^${workspaceVersion('kd-core')}`, '@tensorflow/tfjs-core': t.TOOL_VERSIONS['@tensorflow/tfjs-core'] },
    devDependencies: { '@tfkd/engine': `^${workspaceVersion('engine')}` },
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
    ...t.sourceFiles(names).map(([file, content]) => [`${root}/${file}`, content]),
    [
      `${root}/README.md`,
      t.readme(names, {
        test: `\`npm test\` runs the value test, the finite-difference gradient check and the plugin contract (\`@tfkd/engine/testing\`)
(registration, option errors, no tensor leaks, stacking with a sampler).`,
        docs: 'docs/writing-a-plugin.md',
      }),
    ],
    // what packages/cli/src/pack.spec.ts expects of every package of the repository
    [`${root}/LICENSE`, fs.readFileSync(path.join(ROOT, 'LICENSE'), 'utf8')],
  ];
}

module.exports = { pluginFiles, templates };
