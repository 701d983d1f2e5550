import * as fs from 'fs';
import * as path from 'path';
import { readSweepFolder, readTable, tableMarkdown } from '@tfkd/sweep';

// docs/results.md's result tables are `kd sweep table` output (issue #18): each is preceded by a marker
// `<!-- kd sweep table examples/sweeps/NAME.yaml -->` and must equal the table regenerated from the
// committed cells in sweeps/NAME/runs (metrics.json per cell) — as must the committed
// sweeps/NAME/table.md. A table with the sweep table's header and no marker is a hand-made copy.

const ROOT = path.resolve(__dirname, '..', '..', '..');
const RESULTS = path.join(ROOT, 'docs', 'results.md');
// The parser tools/splice-tables.js puts the tables in with.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { markedTables, spliceTables } = require(path.join(ROOT, 'tools', 'splice-tables.js')) as {
  markedTables: (text: string) => { marked: { line: number; file: string; name: string; start: number; end: number; table: string }[]; unmarked: number[] };
  spliceTables: (text: string, tableOf: (name: string) => string) => { text: string; changed: number };
};

describe('docs/results.md tables are kd sweep table output', () => {
  const { marked, unmarked } = markedTables(fs.readFileSync(RESULTS, 'utf8'));

  it('the marker parser finds the table a marker precedes, and tables without one', () => {
    const doc = ['<!-- kd sweep table examples/sweeps/a.yaml -->', '', '| row | entry | seeds | x |', '|---|', '| k | student | 1 | 2 |', 'text', '| row | entry | seeds | y |'].join('\n');
    const r = markedTables(doc);
    expect(r.marked).toEqual([{ line: 1, file: 'examples/sweeps/a.yaml', name: 'a', start: 2, end: 5, table: '| row | entry | seeds | x |\n|---|\n| k | student | 1 | 2 |' }]);
    expect(r.unmarked).toEqual([7]);
    // splicing replaces only the marked table
    const spliced = spliceTables(doc, (name) => `| row | entry | seeds | ${name} |\n|---|\n`);
    expect(spliced).toEqual({ text: ['<!-- kd sweep table examples/sweeps/a.yaml -->', '', '| row | entry | seeds | a |', '|---|', 'text', '| row | entry | seeds | y |'].join('\n'), changed: 1 });
  });

  it('every sweep-shaped table has its marker', () => {
    expect(unmarked.map((l) => `docs/results.md:${l}`)).toEqual([]);
  });

  it('has marked tables', () => {
    expect(marked.length).toBeGreaterThan(0);
  });

  it.each(marked.map((m) => [`${m.name} (docs/results.md:${m.line})`, m] as const))('%s equals the table of the committed cells and sweeps/NAME/table.md', (_label, m) => {
    expect(fs.existsSync(path.join(ROOT, m.file))).toBe(true);
    const folder = path.join(ROOT, 'sweeps', m.name);
    const regenerated = tableMarkdown(readTable(folder, readSweepFolder(folder))).trimEnd();
    expect(m.table).toBe(regenerated);
    expect(fs.readFileSync(path.join(folder, 'table.md'), 'utf8').trimEnd()).toBe(regenerated);
  });
});
