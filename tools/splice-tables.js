#!/usr/bin/env node
// Puts each sweep's committed table (sweeps/NAME/table.md, written by `kd sweep table`) into
// docs/results.md below its marker `<!-- kd sweep table examples/sweeps/NAME.yaml -->`, replacing the
// table that was there. packages/cli/src/results-tables.spec.ts checks the two are equal, with the
// same parser (`markedTables`).
//   kd sweep table examples/sweeps/protocol.yaml --offline && node tools/splice-tables.js
'use strict';
const fs = require('fs');
const path = require('path');

const MARKER = /^<!-- kd sweep table (examples\/sweeps\/([\w.-]+)\.yaml) -->$/;
const SWEEP_HEADER = /^\| row \| entry \| seeds \|/;

/**
 * The markers of a Markdown text and the table each one precedes (consecutive `|` lines after blank
 * lines): `line` (1-based) of the marker, the sweep `file` and `name`, the table's lines [start, end)
 * and its text; `unmarked`: 1-based lines of sweep-shaped table headers no marker precedes.
 */
function markedTables(text) {
  const lines = text.split('\n');
  const marked = [];
  lines.forEach((l, i) => {
    const m = MARKER.exec(l.trim());
    if (!m) return;
    let j = i + 1;
    while (j < lines.length && lines[j].trim() === '') j++;
    const start = j;
    while (j < lines.length && lines[j].startsWith('|')) j++;
    marked.push({ line: i + 1, file: m[1], name: m[2], start, end: j, table: lines.slice(start, j).join('\n') });
  });
  const starts = new Set(marked.map((m) => m.start));
  const unmarked = lines.flatMap((l, i) => (SWEEP_HEADER.test(l) && !starts.has(i) ? [i + 1] : []));
  return { marked, unmarked };
}

/** `text` with each marked table replaced by `tableOf(name)`; and how many changed. */
function spliceTables(text, tableOf) {
  const lines = text.split('\n');
  let changed = 0;
  for (const m of markedTables(text).marked.reverse()) {
    const table = tableOf(m.name).trimEnd();
    if (m.table !== table) changed++;
    lines.splice(m.start, m.end - m.start, ...table.split('\n'));
  }
  return { text: lines.join('\n'), changed };
}

module.exports = { markedTables, spliceTables };

if (require.main === module) {
  const root = path.resolve(__dirname, '..');
  const file = path.join(root, process.argv[2] ?? 'docs/results.md');
  const r = spliceTables(fs.readFileSync(file, 'utf8'), (name) => fs.readFileSync(path.join(root, 'sweeps', name, 'table.md'), 'utf8'));
  fs.writeFileSync(file, r.text);
  console.log(`${path.relative(root, file)}: ${r.changed} table(s) replaced`);
}
