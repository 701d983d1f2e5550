'use strict';
// Nx generator: `npx nx g ./tools/kd-plugin:plugin my-loss` (writes through Nx's tree, so --dry-run works).
const { pluginFiles } = require('./files');

module.exports = async function kdPluginGenerator(tree, options) {
  for (const [file, content] of pluginFiles(options)) {
    if (tree.exists(file)) throw new Error(`${file} exists; choose another name`);
    tree.write(file, content);
  }
};
