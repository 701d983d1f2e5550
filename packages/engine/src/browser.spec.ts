// The engine in a real browser: esbuild bundles __fixtures__/browser-entry.ts (kd-core, engine,
// losses-logit and the tfjs cpu backend) for `platform: 'browser'` with no externals and no shims
// of Node built-ins, so a package that still reaches for fs/path/crypto/process fails the bundle
// step. Headless Debian Chromium (driven by playwright-core) then runs a few Hinton-KD epochs from
// that bundle and the spec checks the numbers the page posts. See README.md, "Runs in the browser".
import * as esbuild from 'esbuild';
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as path from 'path';
import { type Browser, chromium } from 'playwright-core';
import type { BrowserKdResult } from './__fixtures__/browser-entry';

const ROOT = path.resolve(__dirname, '../../..');
const ENTRY = path.join(__dirname, '__fixtures__/browser-entry.ts');
/** Debian's chromium (CI installs it); TFKD_CHROMIUM points elsewhere. */
const CHROMIUM = process.env.TFKD_CHROMIUM ?? '/usr/bin/chromium';
/** Flags that keep headless Chromium quiet and local (as root, in a container). */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const RUN_TIMEOUT_MS = 100_000;

/** Workspace imports to their TypeScript sources, as jest.preset.js's moduleNameMapper does. */
const workspaceSources: esbuild.Plugin = {
  name: 'tfkd-workspace-sources',
  setup(build) {
    build.onResolve({ filter: /^@tfkd\/[a-z0-9-]+(\/(testing|node))?$/ }, (args) => {
      const [, pkg, sub] = /^@tfkd\/([a-z0-9-]+)(?:\/(testing|node))?$/.exec(args.path) as RegExpExecArray;
      const file = path.join(ROOT, 'packages', pkg, 'src', sub ?? '', 'index.ts');
      if (!fs.existsSync(file))
        return {
          errors: [{ text: `no workspace package source for '${args.path}' (${path.relative(ROOT, file)})` }],
        };
      return { path: file };
    });
  },
};

/** esbuild's messages as `file:line:col: text` (the file relative to the repository). */
function formatMessages(messages: readonly esbuild.Message[]): string {
  return messages
    .map((m) => {
      const loc = m.location;
      const where = loc ? `${loc.file}:${loc.line}:${loc.column}` : '(no location)';
      const line = loc?.lineText ? `\n    ${loc.lineText.trim()}` : '';
      return `${where}: ${m.text}${line}`;
    })
    .join('\n');
}

/** The page bundle: browser platform, IIFE, everything bundled (no externals, no Node shims). */
async function bundle(): Promise<{ js: string | null; errors: string }> {
  try {
    const r = await esbuild.build({
      entryPoints: [ENTRY],
      absWorkingDir: ROOT,
      bundle: true,
      platform: 'browser',
      format: 'iife',
      target: 'es2022',
      write: false,
      logLevel: 'silent',
      plugins: [workspaceSources],
    });
    return { js: r.outputFiles[0].text, errors: '' };
  } catch (e) {
    const failure = e as esbuild.BuildFailure;
    if (!Array.isArray(failure.errors)) throw e;
    return { js: null, errors: formatMessages(failure.errors) };
  }
}

/** A one-page server on 127.0.0.1 (an ephemeral port): `/` is the page, `/kd.js` the bundle. */
async function serve(js: string): Promise<{ server: http.Server; url: string }> {
  const html =
    '<!doctype html><html><head><meta charset="utf-8"><title>tfkd</title><link rel="icon" href="data:,"></head><body><script src="/kd.js"></script></body></html>';
  const server = http.createServer((req, res) => {
    const [type, body] =
      req.url === '/kd.js'
        ? ['text/javascript', js]
        : req.url === '/'
          ? ['text/html', html]
          : [null, 'not found'];
    res.writeHead(type ? 200 : 404, {
      'content-type': `${type ?? 'text/plain'}; charset=utf-8`,
      'cache-control': 'no-store',
    });
    res.end(body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` };
}

let browser: Browser | null = null;
let server: http.Server | null = null;
let built: { js: string | null; errors: string } | null = null;

afterAll(async () => {
  await browser?.close();
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

describe('in the browser (esbuild bundle, headless Chromium)', () => {
  it('bundles kd-core, engine and losses-logit for the browser with no Node built-ins', async () => {
    built = await bundle();
    if (!built.js) {
      throw new Error(
        `esbuild could not bundle ${path.relative(ROOT, ENTRY)} for the browser (no externals, no shims):\n${built.errors}`,
      );
    }
    expect(built.js.length).toBeGreaterThan(0);
  }, 120_000);

  it('plans and runs Hinton KD on the cpu backend (teacher trained in the page): losses fall, teacher and student learn the blobs', async () => {
    if (!fs.existsSync(CHROMIUM)) {
      throw new Error(
        `no Chromium at ${CHROMIUM}: install Debian's with \`apt-get install -y chromium\` (CI does, in .ci/run), or set TFKD_CHROMIUM`,
      );
    }
    built ??= await bundle();
    if (!built.js) throw new Error(`the browser bundle failed (see the bundling test):\n${built.errors}`);
    const served = await serve(built.js);
    server = served.server;

    // playwright gives the browser a fresh temporary profile (--user-data-dir) of its own.
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: 60_000,
    });
    const page = await browser.newPage();
    const logs: string[] = [];
    page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
    // An uncaught error (say `process is not defined` while the bundle's modules load) ends the wait.
    const pageError = new Promise<never>((_, reject) =>
      page.on('pageerror', (e) => reject(new Error(`uncaught in the page: ${e.stack ?? e.message}`))),
    );
    pageError.catch(() => undefined);

    await page.goto(served.url);
    let kd: BrowserKdResult;
    try {
      await Promise.race([
        page.waitForFunction('globalThis.__kd !== undefined', undefined, { timeout: RUN_TIMEOUT_MS }),
        pageError,
      ]);
      kd = (await page.evaluate('globalThis.__kd')) as BrowserKdResult;
    } catch (e) {
      throw new Error(`${(e as Error).message}\npage console:\n${logs.join('\n') || '(empty)'}`);
    }

    if (!kd.ok)
      throw new Error(
        `the run failed in the browser:\n${kd.error}\npage console:\n${logs.join('\n') || '(empty)'}`,
      );
    expect(kd.backend).toBe('cpu');
    expect(kd.loss).toHaveLength(6);
    expect(kd.hintonKd).toHaveLength(6);
    for (const v of [...kd.loss, ...kd.hintonKd, ...kd.crossEntropy]) expect(Number.isFinite(v)).toBe(true);
    expect(kd.loss[kd.loss.length - 1]).toBeLessThan(kd.loss[0]);
    expect(kd.hintonKd[kd.hintonKd.length - 1]).toBeLessThan(kd.hintonKd[0]);
    expect(typeof kd.accuracy).toBe('number');
    expect(kd.accuracy).toBeGreaterThanOrEqual(0);
    expect(kd.accuracy).toBeLessThanOrEqual(1);
    // blobs are separable: the teacher trained in the page and the distilled student both learn them
    // (1.0 and 1.0 on cpu, 2026-12-06; chance is 1/3)
    expect(kd.teacherAccuracy).toBeGreaterThanOrEqual(0.9);
    // distill() in the page: models built with tf.layers there, data as arrays
    expect(kd.distillKd).toHaveLength(4);
    expect(kd.distillKd[3]).toBeLessThan(kd.distillKd[0]);
    expect(kd.accuracy).toBeGreaterThanOrEqual(0.9);
    // Accuracy is a fraction of the fixture's test split: a multiple of 1/n.
    expect(Math.abs(kd.accuracy * kd.testSamples - Math.round(kd.accuracy * kd.testSamples))).toBeLessThan(
      1e-6,
    );
  }, 120_000);
});
