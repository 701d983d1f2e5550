#!/usr/bin/env node
'use strict';
// Without Nx: `node tools/kd-plugin/cli.js my-loss [--id loss/my-loss] [--directory packages]`
// (also `npm run generate:plugin -- my-loss`). Then `npm install` links the new workspace package.
// A package outside this repository: `npm create @tfkd/plugin my-loss` (packages/create-plugin), whose
// sources and README these share (files.js).
const fs = require('fs');
const path = require('path');
const { pluginFiles } = require('./files');

function main(argv) {
  const opts = { directory: 'packages' };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--id') opts.id = argv[++i];
    else if (argv[i] === '--directory') opts.directory = argv[++i];
    else if (argv[i] === '--scope') opts.scope = argv[++i];
    else if (!opts.name) opts.name = argv[i];
  }
  if (!opts.name) {
    console.error('usage: kd-plugin <name> [--id loss/<name>] [--directory packages] [--scope @tfkd]');
    console.error('(a package outside this repository: npm create @tfkd/plugin <name>, packages/create-plugin)');
    return 2;
  }
  const root = path.resolve(__dirname, '..', '..');
  let files;
  try {
    files = pluginFiles(opts);
  } catch (e) {
    if (typeof e.format !== 'function') throw e;
    console.error(`error ${e.format()}`);
    return 2;
  }
  for (const [file] of files) {
    if (fs.existsSync(path.join(root, file))) {
      console.error(`error KD_CREATE_EXISTS: ${file} exists. fix: choose another name`);
      return 2;
    }
  }
  for (const [file, content] of files) {
    fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    fs.writeFileSync(path.join(root, file), content);
    console.log(`created ${file}`);
  }
  return 0;
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
module.exports = { main };
