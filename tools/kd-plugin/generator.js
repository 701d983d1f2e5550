'use strict';
// Nx generator: `npx nx g ./tools/kd-plugin:plugin my-loss` (writes through Nx's tree, so --dry-run works).
const { pluginFiles } = require('./files');

module.exports = async function kdPluginGenerator(tree, options) {
  let files;
  try {
    files = pluginFiles(options);
  } catch (e) {
    // a bad name or id: the generator's coded one-line error (KD_CREATE_NAME …), as Nx prints messages
    throw typeof e.format === 'function' ? new Error(e.format()) : e;
  }
  for (const [file, content] of files) {
    if (tree.exists(file)) throw new Error(`KD_CREATE_EXISTS: ${file} exists. fix: choose another name`);
    tree.write(file, content);
  }
};
