import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { SweepPlan } from './plan';
import { readSweepFolder, savePlan } from './sweep';

// sweep.json keeps its paths relative to the sweep folder: a folder committed on one machine (the
// results under sweeps/) and cloned on another reads with the other machine's paths.
let tmp: string;
beforeEach(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-sweep-folder-'))));
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

function planIn(root: string): SweepPlan {
  const cell = {
    id: 'c-0123456789abcdef',
    row: 'kd',
    seed: 1,
    axes: { spec: 'kd' },
    specFile: path.join(root, 'examples', 'kd.yaml'),
    specName: 'kd',
    specText: 'seed: 1\n',
    sets: [],
    models: { 'm-0011223344556677': path.join(root, 'examples', 'teacher') },
    command: 'kd run examples/kd.yaml',
  } as unknown as SweepPlan['cells'][number];
  return { name: 'grid', file: path.join(root, 'examples', 'sweeps', 'grid.yaml'), id: 's-1', metric: 'accuracy', rows: [], cells: [cell], teachers: {} };
}

describe('sweep.json', () => {
  it('stores the sweep file, spec files and model folders relative to the sweep folder', () => {
    const repo = path.join(tmp, 'machine-a', 'repo');
    const out = path.join(repo, 'sweeps', 'grid');
    fs.mkdirSync(out, { recursive: true });
    savePlan(out, planIn(repo), 'redis://127.0.0.1:6390');
    const saved = JSON.parse(fs.readFileSync(path.join(out, 'sweep.json'), 'utf8')) as SweepPlan & { redis: string };
    expect(saved.file).toBe('../../examples/sweeps/grid.yaml');
    expect(saved.cells[0].specFile).toBe('../../examples/kd.yaml');
    expect(saved.cells[0].models).toEqual({ 'm-0011223344556677': '../../examples/teacher' });
    expect(saved.redis).toBe('redis://127.0.0.1:6390');
    expect(JSON.stringify(saved)).not.toContain(tmp);
  });

  it('reads a folder moved to another machine with that machine\'s absolute paths', () => {
    const a = path.join(tmp, 'machine-a', 'repo');
    fs.mkdirSync(path.join(a, 'sweeps', 'grid'), { recursive: true });
    savePlan(path.join(a, 'sweeps', 'grid'), planIn(a), null);
    const b = path.join(tmp, 'elsewhere', 'clone');
    fs.mkdirSync(path.dirname(b), { recursive: true });
    fs.renameSync(path.join(tmp, 'machine-a'), path.join(tmp, 'elsewhere'));
    fs.renameSync(path.join(tmp, 'elsewhere', 'repo'), b);
    const read = readSweepFolder(path.join(b, 'sweeps', 'grid'));
    expect(read).toEqual({ ...planIn(b), redis: null });
  });

  it('reads a sweep.json written with absolute paths (before they were relative) as it is', () => {
    const out = path.join(tmp, 'old');
    fs.mkdirSync(out);
    const plan = planIn('/somewhere/repo');
    fs.writeFileSync(path.join(out, 'sweep.json'), JSON.stringify({ ...plan, redis: null }));
    expect(readSweepFolder(out)).toEqual({ ...plan, redis: null });
  });

  it('reads a sweep.json from before cells shipped their loaded models (no `models`) with none', () => {
    const out = path.join(tmp, 'older');
    fs.mkdirSync(out);
    const plan = planIn('/somewhere/repo');
    const { models: _models, ...cell } = plan.cells[0];
    fs.writeFileSync(path.join(out, 'sweep.json'), JSON.stringify({ ...plan, cells: [cell], redis: null }));
    expect(readSweepFolder(out).cells[0].models).toEqual({});
  });
});
