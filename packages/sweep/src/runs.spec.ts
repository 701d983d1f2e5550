import * as fs from 'fs';
import * as path from 'path';
import type { SweepPlan } from './plan';
import { KEYS, storeRun } from './queue';
import { redisServerFixture } from './__fixtures__/redis-server';
import { connection } from './redis';
import { collectRuns, collectedRun, restoreRuns } from './runs';
import { readTable } from './sweep';

// A sweep folder's `runs/<row>-seed<N>` is a cell's result only if its cell.json names that cell: a
// row whose spec changed (a new cell id) neither shows its old folder in the table nor keeps it once
// the new result is collected — on a real redis-server.
jest.setTimeout(60_000);

const fixture = redisServerFixture('kd-runs-');
const at = fixture.at;
let redis: ReturnType<typeof connection>;
beforeAll(() => void (redis = fixture.redis()));

/** A finished run folder whose student scored `accuracy`. */
function runFolder(dir: string, accuracy: number, id?: string): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'metrics.json'), JSON.stringify({ status: 'completed', eval: { student: { accuracy } } }));
  if (id) fs.writeFileSync(path.join(dir, 'cell.json'), JSON.stringify({ id }));
}

const plan = (id: string): SweepPlan =>
  ({
    name: 'runs',
    file: at('runs.yaml'),
    id: 's-runs',
    metric: 'accuracy',
    rows: [{ label: 'kd', axes: { spec: 'kd' }, baseline: null }],
    cells: [{ id, row: 'kd', seed: 1, axes: { spec: 'kd' }, sets: [], specFile: at('kd.yaml'), specName: 'kd', specText: 'seed: 1\n', teachers: [], models: {}, command: 'kd run kd.yaml' }],
    teachers: {},
  }) as unknown as SweepPlan;

describe('collected runs belong to their cell', () => {
  it('a folder marked with an earlier cell of the row: not in the table, not restored, replaced once the new result is collected', async () => {
    const out = at('sweeps', 'runs');
    const folder = at('sweeps', 'runs', 'runs', 'kd-seed1');
    runFolder(folder, 0.5, 'c-old');
    const now = plan('c-new');
    expect(collectedRun(out, now.cells[0])).toBeNull();
    expect(collectedRun(out, plan('c-old').cells[0])).toBe(folder);
    expect(readTable(out, now).rows).toEqual([]); // no result of the cell: no row
    expect(readTable(out, plan('c-old')).rows[0]).toMatchObject({ values: [0.5], missing: 0 });
    expect(await restoreRuns(now, redis, out)).toBe(0);
    expect(await redis.exists(KEYS.run('c-new'), KEYS.run('c-old'))).toBe(0);

    // No result for the new cell yet: the old folder stays as it is.
    expect(await collectRuns(now, redis, out)).toBe(0);
    expect(JSON.parse(fs.readFileSync(path.join(folder, 'cell.json'), 'utf8'))).toEqual({ id: 'c-old' });

    // The new cell's result in Redis: collected in place of the old folder, whose files go with it.
    const worker = at('worker', 'runs', 'c-new');
    runFolder(worker, 0.75);
    fs.writeFileSync(path.join(folder, 'only-old.txt'), 'x');
    expect(await storeRun(redis, 'c-new', worker)).toBe(true);
    expect(await collectRuns(now, redis, out)).toBe(1);
    expect(JSON.parse(fs.readFileSync(path.join(folder, 'cell.json'), 'utf8'))).toEqual({ id: 'c-new' });
    expect(fs.existsSync(path.join(folder, 'only-old.txt'))).toBe(false);
    expect(readTable(out, now).rows[0]).toMatchObject({ values: [0.75], missing: 0 });
    // Collected again: nothing changes.
    expect(await collectRuns(now, redis, out)).toBe(1);

    // A folder without a mark (copied by hand) is no cell's either.
    fs.rmSync(path.join(folder, 'cell.json'));
    expect(readTable(out, now).rows).toEqual([]);
  });
});
