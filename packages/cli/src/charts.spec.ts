import type { EpochSummary } from '@tfkd/kd-core';
import { computeCalibration } from '@tfkd/metrics-ece';
import { interval, type SweepTable } from '@tfkd/sweep';
import { TOTAL_LOSS, epochTicks, referenceName, reliabilitySvg, sweepCostSpec, trainingCurvesSvg } from './charts';
import { findAll, hasClass, parseSvg, renderSvg, textOf, type SvgNode } from './svg';

/** What a reader sees in one panel of a rendered figure. */
interface Panel {
  title: string;
  axes: { orient: 'X' | 'Y'; title: string; scale: string; labels: string[] }[];
  legend: string[];
  lines: SvgNode[];
  rules: SvgNode[];
}

function axesOf(g: SvgNode): Panel['axes'] {
  return findAll(g, (n) => n.attrs['aria-roledescription'] === 'axis').map((a) => {
    const m = /^([XY])-axis titled '(.*)' for a (\w+) scale/.exec(a.attrs['aria-label'] ?? '') as RegExpExecArray;
    expect(m).not.toBeNull();
    const labels = findAll(a, (n) => hasClass(n, 'role-axis-label')).flatMap((l) => findAll(l, (t) => t.tag === 'text').map(textOf));
    return { orient: m[1] as 'X' | 'Y', title: m[2], scale: m[3], labels };
  });
}

/** The panels of a concatenated figure (one `concat_i_concat_j_group` each), in reading order. */
function panelsOf(svg: string): Panel[] {
  const doc = parseSvg(svg);
  return findAll(doc, (n) => n.tag === 'g' && /(^|\s)concat_\d+_concat_\d+_group$/.test(n.attrs.class ?? '')).map((g) => ({
    title: findAll(g, (n) => hasClass(n, 'role-title-text')).map(textOf).join(' '),
    axes: axesOf(g),
    // legend entries laid out in two columns: compared as a set
    legend: findAll(g, (n) => hasClass(n, 'role-legend-label'))
      .flatMap((l) => findAll(l, (t) => t.tag === 'text').map(textOf))
      .sort(),
    lines: findAll(g, (n) => hasClass(n, 'mark-line') && hasClass(n, 'role-mark')).flatMap((l) => l.children.filter((c) => c.tag === 'path')),
    rules: findAll(g, (n) => hasClass(n, 'mark-rule') && hasClass(n, 'role-mark')).flatMap((l) => l.children.filter((c) => c.tag === 'line')),
  }));
}

const axis = (p: Panel, o: 'X' | 'Y') => p.axes.find((a) => a.orient === o) as Panel['axes'][number];

/** Tick labels that are numbers in increasing order, each a multiple of one 1/2/5 × 10^k step (linear) or of a power of ten (log). */
function expectNiceTicks(labels: string[], scale: 'linear' | 'log'): number[] {
  const v = labels.filter((l) => l !== '').map((l) => Number(l.replace(/,/g, '')));
  expect(v.length).toBeGreaterThanOrEqual(2);
  for (const x of v) expect(Number.isFinite(x)).toBe(true);
  for (let i = 1; i < v.length; i++) expect(v[i]).toBeGreaterThan(v[i - 1]);
  const nice = (x: number) => [1, 2, 5].some((m) => Math.abs(x / (m * 10 ** Math.floor(Math.log10(x / m) + 1e-9)) - 1) < 1e-6);
  if (scale === 'log') {
    for (const x of v) expect([x, nice(x)]).toEqual([x, true]);
  } else {
    const step = v[1] - v[0];
    expect([step, nice(step)]).toEqual([step, true]);
    for (const x of v) expect(Math.abs(x / step - Math.round(x / step))).toBeLessThan(1e-6);
  }
  return v;
}

const epoch = (e: number, train: Record<string, number>, ev: Record<string, Record<string, number>>, lr = 0.001): EpochSummary => ({ phase: 'distill', epoch: e, epochs: 12, train, eval: ev, seconds: 1, learningRate: lr });

/** Twelve epochs of a Hinton-KD run shaped like the demo's (the total from 6.48 down to 0.5). */
const kdHistory = Array.from({ length: 12 }, (_, i) => {
  const ce = 2.3 * Math.exp(-i / 4) + 0.3;
  const kd = 6.9 * Math.exp(-i / 3) + 0.35;
  return epoch(i + 1, { loss: 0.1 * ce + 0.9 * kd, 'loss/cross-entropy': ce, 'loss/hinton-kd': kd }, { student: { accuracy: 0.7 + 0.012 * i } }, 0.001 * Math.cos((Math.PI * i) / 24));
});

describe('training curves', () => {
  it('a KD run: nice loss ticks from 0, integer epoch ticks, one line per term in the legend, the teacher as a reference line', async () => {
    const svg = await trainingCurvesSvg({ title: 'demo-kd.yaml', history: kdHistory, students: ['student'], teachers: { teacher: 0.8515 } });
    const [loss, acc, lr] = panelsOf(svg);
    expect([loss.title, acc.title, lr.title]).toEqual(['training loss per term (unweighted) and total (weighted)', 'test accuracy', 'learning rate']);
    for (const p of [loss, acc, lr]) {
      expect(axis(p, 'X').title).toBe('epoch');
      const ticks = expectNiceTicks(axis(p, 'X').labels, 'linear');
      expect(ticks.every((t) => Number.isInteger(t) && t >= 1 && t <= 12)).toBe(true);
    }
    // the loss: linear here (the values span less than 1.5 decades), from 0, never below it, and not far above the data
    expect(axis(loss, 'Y')).toMatchObject({ title: 'loss', scale: 'linear' });
    const ly = expectNiceTicks(axis(loss, 'Y').labels, 'linear');
    const values = kdHistory.flatMap((h) => Object.values(h.train));
    expect(ly[0]).toBe(0);
    expect(ly[ly.length - 1]).toBeGreaterThanOrEqual(Math.max(...values) - (ly[1] - ly[0]));
    expect(ly[ly.length - 1]).toBeLessThanOrEqual(Math.max(...values) + (ly[1] - ly[0]));
    expect(loss.legend).toEqual([TOTAL_LOSS, 'loss/cross-entropy', 'loss/hinton-kd'].sort());
    expect(loss.lines).toHaveLength(3);
    // accuracy: the student's line and the teacher's dashed reference line, both in the legend
    expect(axis(acc, 'Y').title).toBe('accuracy');
    const ay = expectNiceTicks(axis(acc, 'Y').labels, 'linear');
    expect(ay[0]).toBeGreaterThanOrEqual(0);
    expect(ay[ay.length - 1]).toBeLessThanOrEqual(1);
    expect(acc.legend).toEqual(['student', referenceName('teacher')].sort());
    expect(acc.lines).toHaveLength(1);
    expect(acc.rules).toHaveLength(1);
    expect(acc.rules[0].attrs['stroke-dasharray']).toBe('6,4');
    expect(acc.rules[0].attrs['aria-label']).toContain('teacher (reference)');
    expect(axis(lr, 'Y').title).toBe('learning rate');
    expectNiceTicks(axis(lr, 'Y').labels, 'linear');
  });

  it('loss terms spanning decades go on a log axis ticked at 1, 2, 5 × 10^k inside the data', async () => {
    const h = [1, 2, 3, 4, 5].map((e) => epoch(e, { loss: 40 / e, 'self/byot:head1:feature': 400 / e, 'self/byot:head1:kl': 0.2 / e, 'self/byot:deep:ce': 1.5 / e }, { student: { accuracy: 0.3 }, 'student:head1': { accuracy: 0.2 }, 'student:deep': { accuracy: 0.3 } }));
    const [loss, acc] = panelsOf(await trainingCurvesSvg({ title: 'byot', history: h, students: ['student'], teachers: {} }));
    expect(axis(loss, 'Y')).toMatchObject({ title: 'loss (log scale)', scale: 'log' });
    const ticks = expectNiceTicks(axis(loss, 'Y').labels, 'log');
    expect(ticks[0]).toBeGreaterThanOrEqual(0.01); // the smallest value is 0.04
    expect(ticks[0]).toBeLessThanOrEqual(0.04);
    expect(ticks[ticks.length - 1]).toBeLessThanOrEqual(1000); // the largest is 400
    expect(loss.legend).toEqual([TOTAL_LOSS, 'self/byot:head1:feature', 'self/byot:head1:kl', 'self/byot:deep:ce'].sort());
    expect(loss.lines).toHaveLength(4);
    // one line per exit (BYOT), no teacher
    expect(acc.legend).toEqual(['student', 'student:head1', 'student:deep'].sort());
    expect(acc.lines).toHaveLength(3);
    expect(acc.rules).toHaveLength(0);
  });

  it('several students (DML): an overview row, then one loss and one accuracy panel per student with its own terms', async () => {
    const h = [1, 2, 3].map((e) =>
      epoch(e, { loss: 3 / e, 'online/dml:student.0:ce': 1.5 / e, 'online/dml:student.0:kl': 0.3 / e, 'online/dml:student.1:ce': 1.6 / e, 'online/dml:student.1:kl': 0.2 / e }, { 'student.0': { accuracy: 0.5 }, 'student.1': { accuracy: 0.4 }, ensemble: { accuracy: 0.55 } }),
    );
    const panels = panelsOf(await trainingCurvesSvg({ title: 'dml-2.yaml', history: h, students: ['student.0', 'student.1'], teachers: {} }));
    expect(panels.map((p) => p.title)).toEqual([
      'training loss: total and shared terms',
      'test accuracy: every student',
      'learning rate',
      'student.0: training loss per term (unweighted)',
      'student.0: test accuracy',
      'student.1: training loss per term (unweighted)',
      'student.1: test accuracy',
    ]);
    expect(panels[0].legend).toEqual([TOTAL_LOSS]);
    expect(panels[1].legend).toEqual(['student.0', 'student.1', 'ensemble'].sort());
    expect(panels[3].legend).toEqual(['online/dml:student.0:ce', 'online/dml:student.0:kl']);
    expect(panels[5].legend).toEqual(['online/dml:student.1:ce', 'online/dml:student.1:kl']);
    expect(panels[6].legend).toEqual(['student.1']);
    // a student keeps its colour from the overview to its own panel
    const colour = (p: Panel, i: number) => p.lines[i].attrs.stroke;
    expect(colour(panels[6], 0)).toBe(colour(panels[1], 1));
    expect(axis(panels[3], 'X').labels).toEqual(['1', '2', '3']);
  });

  it('epoch ticks are integers: every epoch up to 10, then multiples of 2, 5, 10 …', () => {
    expect(epochTicks(3)).toEqual([1, 2, 3]);
    expect(epochTicks(20)).toEqual([2, 4, 6, 8, 10, 12, 14, 16, 18, 20]);
    expect(epochTicks(35)).toEqual([5, 10, 15, 20, 25, 30, 35]);
    expect(epochTicks(200)).toEqual([20, 40, 60, 80, 100, 120, 140, 160, 180, 200]);
  });
});

describe('reliability diagram through vega', () => {
  it('keeps the design: axis titles, ticks 0.0 … 1.0, a bar and a gap per non-empty bin, counts, ECE/MCE/n, the legend', async () => {
    const logits = new Float32Array([3, 0, 0, 0.2, 0.1, 0, 0, 2, 0, 1, 1, 0.9]);
    const c = computeCalibration(logits, new Int32Array([0, 0, 1, 1]), { input: 'logits', numClasses: 3, bins: 10 });
    const doc = parseSvg(await reliabilitySvg(c, { title: 'student: reliability' }));
    const axes = axesOf(doc);
    expect(axes.map((a) => [a.orient, a.title])).toEqual([
      ['X', 'Confidence (max softmax)'],
      ['Y', 'Accuracy'],
    ]);
    for (const a of axes) expect(a.labels).toEqual(['0.0', '0.2', '0.4', '0.6', '0.8', '1.0']);
    const filled = c.bins.filter((b) => b.count > 0).length;
    const rects = findAll(doc, (n) => hasClass(n, 'mark-rect') && hasClass(n, 'role-mark')).map((g) => g.children.filter((p) => p.tag === 'path'));
    expect(rects.map((r) => r.length)).toEqual([filled, filled]);
    const texts = findAll(doc, (n) => n.tag === 'text').map(textOf);
    expect(texts).toEqual(expect.arrayContaining(['student: reliability', `ECE = ${(100 * c.ece).toFixed(2)}%`, `MCE = ${(100 * c.mce).toFixed(2)}%`, 'n = 4', 'Accuracy', 'Gap to confidence', 'n']));
    // one count under every bin, empty ones included, in bin order
    const counts = findAll(doc, (n) => hasClass(n, 'mark-text') && hasClass(n, 'role-mark')).map((g) => g.children.map(textOf)).find((t) => t.length === c.bins.length);
    expect(counts).toEqual(c.bins.map((b) => String(b.count)));
  });
});

describe('sweep: metric against teacher cost', () => {
  it('a point and a 95 % interval per row, axes titled', async () => {
    const row = (name: string, gflops: number, values: number[]) => ({ row: name, axes: {}, entry: 'student', seeds: [1, 2, 3], values, mean: 0, std: 0, diff: null, ece: null, nll: null, brier: null, teacherAccuracy: null, teacherMetric: null, cost: { teacherGflops: gflops, teacherImages: 0, teacherCacheHits: 0, studentImages: 0, trainSecondsPerEpoch: null, wallSeconds: null }, missing: 0 });
    const t: SweepTable = { name: 'fashion-main', metric: 'accuracy', rows: [row('scratch', 0, [0.894, 0.896, 0.893]), row('kd', 2.5, [0.888, 0.889, 0.887]), row('kd-half', 2.5, [0.892, 0.893, 0.894])] };
    const doc = parseSvg(await renderSvg(sweepCostSpec(t, interval)));
    const axes = axesOf(doc);
    expect(axes.map((a) => a.title)).toEqual(['teacher forward GFLOPs per run', 'accuracy (mean, 95 % interval over seeds)']);
    expectNiceTicks(axes[1].labels, 'linear');
    const points = findAll(doc, (n) => hasClass(n, 'mark-symbol') && hasClass(n, 'role-mark')).flatMap((g) => g.children.filter((p) => p.tag === 'path'));
    expect(points).toHaveLength(3);
    expect(findAll(doc, (n) => hasClass(n, 'mark-rule') && hasClass(n, 'role-mark')).flatMap((g) => g.children)).toHaveLength(3);
  });
});

describe('parseSvg', () => {
  it('reads nesting, attributes and text, and rejects a mismatched tag', () => {
    const d = parseSvg('<svg a="1"><g class="x y"><text>a &amp; b</text></g><path d="M0"/></svg>');
    expect(d.children[0].tag).toBe('svg');
    expect(findAll(d, (n) => hasClass(n, 'y'))).toHaveLength(1);
    expect(textOf(d)).toBe('a & b');
    expect(() => parseSvg('<svg><g></svg>')).toThrow(/closes/);
  });
});
