import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadSweepFile, randomSamples } from './sweep-file';
import { interval, mean, std, sweepTable, tableCsv, tableMarkdown, tableSvg, t975, type CellMetrics } from './table';

describe('sweep statistics', () => {
  it('mean, sample std and the 95 % t-interval by hand', () => {
    expect(mean([1, 2, 3, 6])).toBe(3);
    expect(std([1, 2, 3, 6])).toBeCloseTo(Math.sqrt(14 / 3), 12);
    expect(Number.isNaN(std([4]))).toBe(true);
    // n = 3: t(0.975, 2) = 4.303; sd = 1; half-width 4.303 / √3 = 2.4843
    const ci = interval([1, 2, 3]);
    expect(ci.mean).toBe(2);
    expect(ci.high - ci.mean).toBeCloseTo(4.303 / Math.sqrt(3), 10);
    expect(t975(1)).toBe(12.706);
    expect(t975(100)).toBe(1.96);
  });

  it('pairs each row with its baseline row seed by seed', () => {
    const acc: Record<string, number> = { 'a-1': 0.8, 'a-2': 0.82, 'a-3': 0.81, 'b-1': 0.85, 'b-2': 0.86, 'b-3': 0.83 };
    const metrics = (id: string): CellMetrics => ({
      eval: { student: { accuracy: acc[id], ece: 0.02 }, teacher: { accuracy: 0.9 } },
      ledger: { roles: { teacher: { flopsPerImage: 1e6, forwardImages: 1000, backwardImages: 0, cacheHits: 0, forwardFlops: 2e9, backwardFlops: 0, totalFlops: 2e9 } }, phases: { distill: { seconds: 10, steps: 5 } }, totalFlops: 2e9 },
      epochs: 2,
      wallSeconds: 12,
    });
    const t = sweepTable(
      {
        name: 't',
        metric: 'accuracy',
        rows: [
          { label: 'a', axes: { stack: 'a' }, baseline: 'a' },
          { label: 'b', axes: { stack: 'b' }, baseline: 'a' },
        ],
        cells: [1, 2, 3].flatMap((s) => [{ row: 'a', seed: s, id: `a-${s}` }, { row: 'b', seed: s, id: `b-${s}` }]),
      },
      metrics,
    );
    expect(t.rows.map((r) => [r.row, r.entry])).toEqual([['a', 'student'], ['b', 'student']]);
    const b = t.rows[1];
    expect(b.values).toEqual([0.85, 0.86, 0.83]);
    // differences 0.05, 0.04, 0.02: mean 0.03667, sd 0.015275, half-width 4.303 · sd / √3
    expect(b.diff?.mean).toBeCloseTo(0.036667, 5);
    expect((b.diff?.high as number) - (b.diff?.mean as number)).toBeCloseTo((4.303 * 0.0152753) / Math.sqrt(3), 5);
    expect(t.rows[0].diff).toBeNull();
    expect(b.cost).toMatchObject({ teacherGflops: 2, teacherImages: 1000, trainSecondsPerEpoch: 5, wallSeconds: 12 });
    expect(tableMarkdown(t)).toContain('| b | student | 1,2,3 | 84.67 ± 1.53 | 85.00, 86.00, 83.00 | +3.67 [-0.13, 7.46] vs a |');
    expect(tableCsv(t).split('\n')[2]).toMatch(/^b,student,1 2 3,3,0\.846666/);
    expect(tableSvg(t)).toContain('<circle');
  });
});

describe('sweep table: the teacher column follows the sweep\'s metric', () => {
  it('a detection sweep shows the teacher\'s mAP (evaluated before training), not its accuracy', () => {
    const m = (student: number, teacher?: number): CellMetrics => ({ eval: { student: { map: student }, ...(teacher === undefined ? {} : { teacher: { map: teacher } }) }, epochs: 1, wallSeconds: 1 });
    const runs: Record<string, CellMetrics> = { 's-1': m(0.31), 's-2': m(0.32), 'k-1': m(0.33, 0.41), 'k-2': m(0.34, 0.43) };
    const t = sweepTable(
      {
        name: 'det',
        metric: 'map',
        rows: [
          { label: 'student', axes: { spec: 'student' }, baseline: 'student' },
          { label: 'kd', axes: { spec: 'kd' }, baseline: 'student' },
        ],
        cells: [1, 2].flatMap((s) => [{ row: 'student', seed: s, id: `s-${s}` }, { row: 'kd', seed: s, id: `k-${s}` }]),
      },
      (id) => runs[id] ?? null,
    );
    expect(t.rows[0].teacherMetric).toBeNull();
    expect(t.rows[1].teacherMetric).toBeCloseTo(0.42, 12);
    expect(t.rows[1].teacherAccuracy).toBeNull();
    const md = tableMarkdown(t).split('\n');
    expect(md[0]).toContain('| Brier | teacher map | teacher GFLOPs |');
    expect(md[3]).toContain('| – | – | – | 0.4200 | 0.0 |');
    const csv = tableCsv(t).split('\n');
    expect(csv[0]).toContain(',teacher_accuracy,teacher_map,teacher_gflops,');
    expect(csv[2].split(',')[csv[0].split(',').indexOf('teacher_map')]).toBe('0.42');
  });
});

describe('sweep table: rows whose entries the baseline lacks', () => {
  it('pairs DML peers and their ensemble with the baseline row\'s student, seed by seed', () => {
    const m = (entries: Record<string, number>): CellMetrics => ({ eval: Object.fromEntries(Object.entries(entries).map(([k, v]) => [k, { accuracy: v }])), epochs: 1, wallSeconds: 1 });
    const runs: Record<string, CellMetrics> = {
      's-1': m({ student: 0.8 }),
      's-2': m({ student: 0.82 }),
      'd-1': m({ 'student.0': 0.81, 'student.1': 0.83, ensemble: 0.84 }),
      'd-2': m({ 'student.0': 0.83, 'student.1': 0.82, ensemble: 0.85 }),
    };
    const t = sweepTable(
      {
        name: 't',
        metric: 'accuracy',
        rows: [
          { label: 'scratch', axes: { spec: 'scratch' }, baseline: 'scratch' },
          { label: 'dml', axes: { spec: 'dml' }, baseline: 'scratch' },
        ],
        cells: [1, 2].flatMap((s) => [{ row: 'scratch', seed: s, id: `s-${s}` }, { row: 'dml', seed: s, id: `d-${s}` }]),
      },
      (id) => runs[id] ?? null,
    );
    const row = (entry: string) => t.rows.find((r) => r.row === 'dml' && r.entry === entry);
    // student.0: +0.01, +0.01; student.1: +0.03, 0.00; ensemble: +0.04, +0.03 — each against scratch's student
    expect(row('student.0')?.diff).toMatchObject({ baseline: 'scratch student', n: 2 });
    expect(row('student.0')?.diff?.mean).toBeCloseTo(0.01, 12);
    expect(row('student.1')?.diff?.mean).toBeCloseTo(0.015, 12);
    expect(row('ensemble')?.diff?.mean).toBeCloseTo(0.035, 12);
    // n = 2: t(0.975, 1) = 12.706, sd of (0.04, 0.03) = 0.0070711, half-width 12.706 · sd / √2 = 0.06353
    expect((row('ensemble')?.diff?.high as number) - 0.035).toBeCloseTo(0.06353, 4);
    expect(tableMarkdown(t)).toContain('vs scratch student |');
  });
});

describe('sweep files', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-sweepfile-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('expands stacks × set groups × random samples × seeds into cells with their --set overrides', () => {
    fs.writeFileSync(path.join(tmp, 's.yaml'), 'seed: 1\n');
    fs.writeFileSync(
      path.join(tmp, 'g.yaml'),
      `spec: s.yaml
set: [train.epochs=2]
axes:
  stack: { ce: [{ use: loss/cross-entropy }] }
  set: { t2: 'plugins[0].weight=2', t4: ['plugins[0].weight=4', train.batchSize=32] }
  seed: [1, 2]
random: { samples: 2, seed: 3, ranges: { train.optimizer.lr: { min: 0.0001, max: 0.01, log: true }, train.batchSize: { choice: [16, 32] } } }
baseline: { set: t2 }
`,
    );
    const s = loadSweepFile(path.join(tmp, 'g.yaml'));
    expect(s.cells).toHaveLength(1 * 2 * 2 * 2);
    expect(s.rows.map((r) => r.label)).toEqual(['ce-t2-r1', 'ce-t2-r2', 'ce-t4-r1', 'ce-t4-r2']);
    const [r1, r2] = randomSamples({ samples: 2, seed: 3, ranges: { 'train.optimizer.lr': { min: 0.0001, max: 0.01, log: true, integer: false }, 'train.batchSize': { choice: [16, 32] } } });
    expect(s.cells[0].sets).toEqual(['train.epochs=2', 'plugins=[{"use":"loss/cross-entropy"}]', 'plugins[0].weight=2', ...r1, 'seed=1']);
    expect(s.cells[7].sets).toEqual(['train.epochs=2', 'plugins=[{"use":"loss/cross-entropy"}]', 'plugins[0].weight=4', 'train.batchSize=32', ...r2, 'seed=2']);
    const lr = Number(r1[0].split('=')[1]);
    expect(lr).toBeGreaterThanOrEqual(0.0001);
    expect(lr).toBeLessThanOrEqual(0.01);
    // Same seed, same samples.
    expect(randomSamples({ samples: 2, seed: 3, ranges: { x: { min: 0, max: 1, log: false, integer: false } } })).toEqual(randomSamples({ samples: 2, seed: 3, ranges: { x: { min: 0, max: 1, log: false, integer: false } } }));
  });

  it('rejects a baseline naming no axis value, with the values that exist', () => {
    fs.writeFileSync(path.join(tmp, 'b.yaml'), 'spec: s.yaml\naxes: { stack: { ce: [] }, seed: [1] }\nbaseline: { stack: scratch }\n');
    expect(() => loadSweepFile(path.join(tmp, 'b.yaml'))).toThrow(expect.objectContaining({ code: 'KD_SWEEP_INVALID', path: 'baseline.stack', fix: 'name one of: ce' }));
  });
});

describe('the sweep files in examples/sweeps', () => {
  const dir = path.resolve(__dirname, '..', '..', '..', 'examples', 'sweeps');
  it.each(fs.readdirSync(dir).filter((f) => f.endsWith('.yaml')))('%s names existing specs and a baseline row', (f) => {
    const s = loadSweepFile(path.join(dir, f));
    expect(s.cells.length).toBeGreaterThan(0);
    for (const c of s.cells) expect(fs.existsSync(c.specFile)).toBe(true);
    if (s.def.baseline) expect(s.rows.some((r) => Object.entries(s.def.baseline ?? {}).every(([k, v]) => r.axes[k] === v))).toBe(true);
  });
});
