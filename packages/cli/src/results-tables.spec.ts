import * as fs from 'fs';
import * as path from 'path';
import { readSweepFolder, readTable, tableMarkdown } from '@tfkd/sweep';

// docs/results.md's result tables are `kd sweep table` output (issue #18): each is preceded by a marker
// `<!-- kd sweep table examples/sweeps/NAME.yaml -->` and must equal the table regenerated from the
// committed cells in sweeps/NAME/runs (metrics.json per cell) — as must the committed
// sweeps/NAME/table.md. A table with the sweep table's header and no marker is a hand-made copy.

const ROOT = path.resolve(__dirname, '..', '..', '..');
const RESULTS = path.join(ROOT, 'docs', 'results.md');
const MARKER = /^<!-- kd sweep table (examples\/sweeps\/([\w.-]+)\.yaml) -->$/;
const SWEEP_HEADER = /^\| row \| entry \| seeds \|/;

interface MarkedTable {
  line: number;
  file: string;
  name: string;
  table: string;
}

/** The markers and the table (consecutive `|` lines, after blank lines) each one precedes. */
function markedTables(text: string): { marked: MarkedTable[]; unmarked: number[] } {
  const lines = text.split('\n');
  const marked: MarkedTable[] = [];
  const markedAt = new Set<number>();
  lines.forEach((l, i) => {
    const m = MARKER.exec(l.trim());
    if (!m) return;
    let j = i + 1;
    while (j < lines.length && lines[j].trim() === '') j++;
    const start = j;
    while (j < lines.length && lines[j].startsWith('|')) j++;
    markedAt.add(start);
    marked.push({ line: i + 1, file: m[1], name: m[2], table: lines.slice(start, j).join('\n') });
  });
  const unmarked = lines.flatMap((l, i) => (SWEEP_HEADER.test(l) && !markedAt.has(i) ? [i + 1] : []));
  return { marked, unmarked };
}

describe('docs/results.md tables are kd sweep table output', () => {
  const { marked, unmarked } = markedTables(fs.readFileSync(RESULTS, 'utf8'));

  it('the marker parser finds the table a marker precedes, and tables without one', () => {
    const doc = ['<!-- kd sweep table examples/sweeps/a.yaml -->', '', '| row | entry | seeds | x |', '|---|', '| k | student | 1 | 2 |', 'text', '| row | entry | seeds | y |'].join('\n');
    const r = markedTables(doc);
    expect(r.marked).toEqual([{ line: 1, file: 'examples/sweeps/a.yaml', name: 'a', table: '| row | entry | seeds | x |\n|---|\n| k | student | 1 | 2 |' }]);
    expect(r.unmarked).toEqual([7]);
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
