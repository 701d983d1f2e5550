// Runs the `kd` CLI from its TypeScript sources in a child process, the way jest runs them
// (jest.preset.js: SWC transpiles, `@tfkd/*` resolves to `packages/*/src`), so tests that need a real
// process (signals, SIGKILL) never need a build — nor race `pack.spec.ts`'s build writing dist/.
//   node packages/cli/src/__fixtures__/from-source.js run SPEC …   ≡   node packages/cli/dist/bin.js run SPEC …
const path = require('path');
const { ROOT } = require('./register-source');

require(path.join(ROOT, 'packages', 'cli', 'src', 'bin.ts'));
