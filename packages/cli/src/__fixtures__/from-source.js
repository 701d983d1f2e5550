// Runs the `kd` CLI from its TypeScript sources in a child process, the way jest runs them
// (jest.preset.js: SWC transpiles, `@tfkd/*` resolves to `packages/*/src`), so tests that need a real
// process (signals, SIGKILL) never need a build — nor race `pack.spec.ts`'s build writing dist/.
//   node packages/cli/src/__fixtures__/from-source.js run SPEC …   ≡   node packages/cli/dist/bin.js run SPEC …
const fs = require('fs');
const Module = require('module');
const path = require('path');
const swc = require('@swc/core');

const ROOT = path.resolve(__dirname, '..', '..', '..', '..');
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  const m = /^@tfkd\/([a-z0-9-]+)(\/testing)?$/.exec(request);
  const mapped = m ? path.join(ROOT, 'packages', m[1], 'src', m[2] ? 'testing/index.ts' : 'index.ts') : request;
  return resolve.call(this, mapped, ...rest);
};
require.extensions['.ts'] = (module, filename) => {
  const { code } = swc.transformSync(fs.readFileSync(filename, 'utf8'), {
    filename,
    jsc: {
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
      target: 'es2022',
    },
    module: { type: 'commonjs' },
    sourceMaps: 'inline',
  });
  module._compile(code, filename);
};
require(path.join(ROOT, 'packages', 'cli', 'src', 'bin.ts'));
