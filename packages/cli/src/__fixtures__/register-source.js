// Hooks `require` so that `@tfkd/*` and `.ts` files load from the TypeScript sources (SWC, as jest
// does). Required by from-source.js and the other child-process fixtures.
const fs = require('fs');
const Module = require('module');
const path = require('path');
const swc = require('@swc/core');

const ROOT = path.resolve(__dirname, '..', '..', '..', '..');
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  const m = /^@tfkd\/([a-z0-9-]+)(\/testing|\/node)?$/.exec(request);
  const mapped = m ? path.join(ROOT, 'packages', m[1], 'src', m[2] ? `${m[2].slice(1)}/index.ts` : 'index.ts') : request;
  return resolve.call(this, mapped, ...rest);
};
require.extensions['.ts'] = (module, filename) => {
  const { code } = swc.transformSync(fs.readFileSync(filename, 'utf8'), { filename, ...require(path.join(ROOT, 'swc.options.js')) });
  module._compile(code, filename);
};
module.exports = { ROOT };
