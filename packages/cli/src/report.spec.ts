// `kd report`: a real (tiny, cpu) KD run, its HTML report checked as text, then opened in headless
// Debian Chromium (as packages/engine/src/browser.spec.ts does): no console error, every chart drawn,
// and a full-page screenshot whose chart regions hold coloured pixels.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { type Browser, chromium } from 'playwright-core';
import type { SweepTable } from '@tfkd/sweep';
import { runMain } from './__fixtures__/run-main';
import { curvesInputOf, reportHtml } from './report';
import { findAll, hasClass, parseSvg, textOf } from './svg';

// The page's globals, for the functions evaluated in Chromium (the project's TypeScript lib has no DOM).
/* eslint-disable @typescript-eslint/no-explicit-any */
declare const document: any;
declare const window: any;
declare const Image: any;
/* eslint-enable @typescript-eslint/no-explicit-any */

const CHROMIUM = process.env.TFKD_CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/** The screenshot the browser test leaves behind, for a person to look at. */
export const SCREENSHOT = path.join(os.tmpdir(), 'tfkd-report', 'report.png');

const tiny = `
seed: 2
backend: cpu
data: { name: synthetic, train: 64, test: 32, numClasses: 4, shape: [6, 6, 1] }
teacher: { model: mlp, options: { hidden: [32] }, seed: 1, train: { epochs: 3, optimizer: { name: adam, lr: 0.01, weightDecay: 0 } } }
student: { model: mlp, options: { hidden: [8] } }
train: { epochs: 4, batchSize: 16, optimizer: { name: adam, lr: 0.01, weightDecay: 0 }, schedule: { name: cosine } }
plugins:
  - use: loss/cross-entropy
    weight: 0.1
  - use: loss/hinton-kd
    with: { temperature: 4 }
    weight: 0.9
eval: [accuracy, ece]
`;

let tmp: string;
let run: string;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tfkd-report-'));
  const spec = path.join(tmp, 'kd-tiny.yaml');
  fs.writeFileSync(spec, tiny);
  run = path.join(tmp, 'run');
  expect((await runMain(['run', spec, '--out', run, '--cache-dir', path.join(tmp, 'cache'), '--quiet'])).code).toBe(0);
}, 120_000);

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('kd report', () => {
  it('the run folder keeps training-curves.svg, now with every loss term, epoch ticks and the teacher line', () => {
    const doc = parseSvg(fs.readFileSync(path.join(run, 'training-curves.svg'), 'utf8'));
    const legend = findAll(doc, (n) => hasClass(n, 'role-legend-label')).map(textOf);
    expect(legend).toEqual(expect.arrayContaining(['total (weighted)', 'loss/cross-entropy', 'loss/hinton-kd', 'student', 'teacher (reference)']));
    const axes = findAll(doc, (n) => n.attrs['aria-roledescription'] === 'axis').map((a) => a.attrs['aria-label']);
    expect(axes.filter((a) => a.startsWith("X-axis titled 'epoch'"))).toHaveLength(3);
    expect(curvesInputOf(run)).toMatchObject({ students: ['student'], teachers: { teacher: expect.any(Number) } });
    // the reliability diagrams of the run folder are vega's now (same design)
    const rel = parseSvg(fs.readFileSync(path.join(run, 'reliability-student.svg'), 'utf8'));
    expect(findAll(rel, (n) => n.tag === 'text').map(textOf)).toEqual(expect.arrayContaining(['Confidence (max softmax)', 'Accuracy', 'Gap to confidence']));
  });

  it('writes one self-contained HTML file: spec, metrics table, cost ledger, curves, reliability diagrams', async () => {
    expect((await runMain(['report', run])).code).toBe(0);
    const html = fs.readFileSync(path.join(run, 'report.html'), 'utf8');
    for (const h of ['Metrics (test split, last epoch)', 'Cost ledger', 'Training curves', 'Reliability diagrams', 'Spec (spec.resolved.yaml)']) expect(html).toContain(`<h2>${h}</h2>`);
    expect(html).toContain('<td>teacher</td>');
    expect(html).toContain('forwardImages');
    expect(html).toContain('use: loss/hinton-kd');
    expect(html.match(/<svg /g)).toHaveLength(3); // curves + teacher + student diagrams
    // self-contained: no script to run, nothing fetched
    expect(html).not.toMatch(/<script(?![^>]*application\/json)/);
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    // inlined figures never share an id
    const ids = [...html.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1]);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('a sweep folder: the table with intervals and the metric against teacher cost; any other folder is refused', async () => {
    const sweep = path.join(tmp, 'sweep');
    fs.mkdirSync(sweep);
    const row = (name: string, g: number, values: number[]) => ({ row: name, axes: {}, entry: 'student', seeds: [1, 2, 3], values, mean: values.reduce((a, b) => a + b) / 3, std: 0.001, diff: name === 'kd' ? { baseline: 'scratch', n: 3, mean: -0.006, low: -0.009, high: -0.003 } : null, ece: 0.02, nll: null, brier: null, teacherAccuracy: g ? 0.91 : null, teacherMetric: g ? 0.91 : null, cost: { teacherGflops: g, teacherImages: 0, teacherCacheHits: 0, studentImages: 0, trainSecondsPerEpoch: 4, wallSeconds: 80 }, missing: 0 });
    const t: SweepTable = { name: 'fashion-main', metric: 'accuracy', rows: [row('scratch', 0, [0.894, 0.896, 0.893]), row('kd', 2.47, [0.888, 0.889, 0.887])] };
    fs.writeFileSync(path.join(sweep, 'table.json'), JSON.stringify(t));
    const html = await reportHtml(sweep);
    expect(html).toContain('<h2>accuracy against teacher cost</h2>');
    expect(html).toContain('-0.0060 [-0.0090, -0.0030] vs scratch (n=3)');
    expect(html).toContain('teacher forward GFLOPs per run');
    await expect(reportHtml(path.join(tmp, 'cache'))).rejects.toMatchObject({ code: 'KD_DATA_MISSING' });
  });

  it('opens in headless Chromium with no console error, and its screenshot shows non-empty charts', async () => {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: install Debian's with \`apt-get install -y chromium\`, or set TFKD_CHROMIUM`);
    const file = path.join(run, 'report.html');
    if (!fs.existsSync(file)) await runMain(['report', run]);
    let browser: Browser | null = null;
    try {
      // playwright gives the browser a fresh temporary profile (--user-data-dir) of its own.
      browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 60_000 });
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 }, deviceScaleFactor: 1 });
      const problems: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') problems.push(`[${m.type()}] ${m.text()}`);
      });
      page.on('pageerror', (e) => problems.push(`[pageerror] ${e.message}`));
      page.on('requestfailed', (r) => problems.push(`[requestfailed] ${r.url()}`));
      await page.goto(`file://${file}`, { waitUntil: 'load' });
      const figures = await page.evaluate(() =>
        [...document.querySelectorAll('figure.chart svg')].map((s: { getBoundingClientRect(): { left: number; top: number; width: number; height: number }; querySelectorAll(q: string): { length: number } }) => {
          const r = s.getBoundingClientRect();
          return { x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height, lines: s.querySelectorAll('[aria-roledescription="line mark"]').length, rects: s.querySelectorAll('.mark-rect path').length };
        }),
      );
      // what the report itself logged (before the test's own canvas work below)
      const logged = [...problems];
      expect(figures).toHaveLength(3);
      expect(figures[0].lines).toBeGreaterThanOrEqual(4); // three loss lines + the student's accuracy (+ learning rate)
      for (const f of figures.slice(1)) expect(f.rects).toBeGreaterThan(0);
      fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
      const png = await page.screenshot({ path: SCREENSHOT, fullPage: true });
      // The screenshot itself, decoded by the browser: each chart's region holds ink, in several colours.
      const ink = await page.evaluate(
        async ({ data, boxes }) => {
          const img = new Image();
          img.src = `data:image/png;base64,${data}`;
          await img.decode();
          const c = document.createElement('canvas');
          c.width = img.width;
          c.height = img.height;
          const ctx = c.getContext('2d', { willReadFrequently: true }) as { drawImage(i: unknown, x: number, y: number): void; getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } };
          ctx.drawImage(img, 0, 0);
          return boxes.map((b) => {
            const px = ctx.getImageData(Math.round(b.x), Math.round(b.y), Math.max(1, Math.round(b.width)), Math.max(1, Math.round(b.height))).data;
            let inked = 0;
            const colours = new Set<number>();
            for (let i = 0; i < px.length; i += 4) {
              if (px[i] < 235 || px[i + 1] < 235 || px[i + 2] < 235) {
                inked++;
                colours.add(((px[i] >> 4) << 8) | ((px[i + 1] >> 4) << 4) | (px[i + 2] >> 4));
              }
            }
            return { share: inked / (px.length / 4), colours: colours.size };
          });
        },
        { data: png.toString('base64'), boxes: figures },
      );
      for (const k of ink) {
        expect(k.share).toBeGreaterThan(0.02);
        expect(k.colours).toBeGreaterThanOrEqual(4);
      }
      expect(logged).toEqual([]);
      expect(problems).toEqual([]);
    } finally {
      await browser?.close();
    }
  }, 120_000);
});
