#!/usr/bin/env node
// Puts each sweep's committed table (sweeps/NAME/table.md, written by `kd sweep table`) into
// docs/results.md below its marker `<!-- kd sweep table examples/sweeps/NAME.yaml -->`, replacing the
// table that was there. packages/cli/src/results-tables.spec.ts checks the two are equal.
//   kd sweep table examples/sweeps/protocol.yaml --offline && node tools/splice-tables.js
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const file = path.join(root, process.argv[2] ?? 'docs/results.md');
const lines = fs.readFileSync(file, 'utf8').split('\n');
const out = [];
let changed = 0;
for (let i = 0; i < lines.length; i++) {
  out.push(lines[i]);
  const m = /^<!-- kd sweep table examples\/sweeps\/([\w.-]+)\.yaml -->$/.exec(lines[i].trim());
  if (!m) continue;
  let j = i + 1;
  while (j < lines.length && lines[j].trim() === '') out.push(lines[j++]);
  const start = j;
  while (j < lines.length && lines[j].startsWith('|')) j++;
  const table = fs.readFileSync(path.join(root, 'sweeps', m[1], 'table.md'), 'utf8').trimEnd();
  if (lines.slice(start, j).join('\n') !== table) changed++;
  out.push(...table.split('\n'));
  i = j - 1;
}
fs.writeFileSync(file, out.join('\n'));
console.log(`${path.relative(root, file)}: ${changed} table(s) replaced`);
