import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { docBlocks, REGISTRY_STEPS, type DocBlock } from './__fixtures__/doc-blocks';
import { runMain } from './__fixtures__/run-main';

// The code blocks of docs/writing-a-plugin.md and README.md run, so the docs cannot drift from the
// code (the convention is in __fixtures__/doc-blocks.ts): the TypeScript blocks are one package —
// type-checked by tsc, its spec run by jest (the hand-computed value, the gradient check, the plugin
// contract); YAML specs are planned by `kd run --plan`, the plugin package loaded through `packages:`;
// shell blocks run in bash, `kd` from the sources (no build). Blocks marked `registry` run in
// registry.spec.ts against packages published to a local registry; `skip` blocks say why.
jest.setTimeout(300_000);

const ROOT = path.resolve(__dirname, '..', '..', '..');
const PLUGIN_DOC = path.join(ROOT, 'docs', 'writing-a-plugin.md');
const README = path.join(ROOT, 'README.md');
const FROM_SOURCE = path.join(__dirname, '__fixtures__', 'from-source.js');
const RUNNABLE = new Set(['ts', 'typescript', 'yaml', 'yml', 'bash', 'sh']);
// Child processes get a plain environment: no colour codes (nx sets FORCE_COLOR), no cache folder of the caller's.
const plainEnv: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
delete plainEnv.FORCE_COLOR;
delete plainEnv.KD_CACHE_DIR;

const where = (file: string, b: DocBlock) => `${path.relative(ROOT, file)}:${b.line}`;
const isTs = (b: DocBlock) => b.lang === 'ts' || b.lang === 'typescript';
const isYaml = (b: DocBlock) => b.lang === 'yaml' || b.lang === 'yml';
const isShell = (b: DocBlock) => b.lang === 'bash' || b.lang === 'sh';

/** What is wrong with the blocks' markers: a block nobody runs, a skip without a reason, an unknown registry step. */
function markerProblems(file: string): string[] {
  return docBlocks(file).flatMap((b) => {
    const at = where(file, b);
    if (b.marker?.kind === 'skip') return b.marker.arg.length >= 10 ? [] : [`${at}: a skipped block must say why (docs-test: skip — <why>)`];
    if (b.marker?.kind === 'registry') return (REGISTRY_STEPS as readonly string[]).includes(b.marker.arg.split(/\s/)[0]) ? [] : [`${at}: unknown registry step '${b.marker.arg}'`];
    if (!RUNNABLE.has(b.lang)) return [`${at}: a '${b.lang || '(no language)'}' block is neither run nor marked docs-test: skip`];
    if (isTs(b) && !b.file) return [`${at}: a TypeScript block names its file (\`\`\`ts file=src/…) or is marked docs-test: skip`];
    return [];
  });
}

/** `kd run SPEC --plan` in this process (the CLI from source): exit code and what it printed. */
async function plan(spec: string, cacheDir: string): Promise<{ code: number; out: string; err: string }> {
  return runMain(['run', spec, '--plan', '--cache-dir', cacheDir]);
}

describe('docs/writing-a-plugin.md', () => {
  const blocks = docBlocks(PLUGIN_DOC);
  let tmp: string;
  let pkg: string;
  let runs: string;

  // tmp/node_modules → the repository's; tmp/cosine-kd: the TypeScript blocks by file (its main is
  // the source, which jest and the from-source `kd` load); tmp/my-runs: the YAML blocks by file, with
  // node_modules/cosine-kd → the package, installed as a spec's `packages: [cosine-kd]` finds it.
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-docs-'));
    pkg = path.join(tmp, 'cosine-kd');
    runs = path.join(tmp, 'my-runs');
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(tmp, 'node_modules'), 'dir');
    const files = new Map<string, string>();
    for (const b of blocks.filter((x) => isTs(x) && x.file && !x.marker)) files.set(b.file as string, (files.get(b.file as string) ?? '') + b.code);
    for (const [file, code] of files) {
      fs.mkdirSync(path.dirname(path.join(pkg, file)), { recursive: true });
      fs.writeFileSync(path.join(pkg, file), code);
    }
    fs.writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ name: 'cosine-kd', version: '0.1.0', main: 'src/index.ts' }));
    fs.writeFileSync(
      path.join(pkg, 'tsconfig.json'),
      JSON.stringify({ extends: path.join(ROOT, 'tsconfig.base.json'), compilerOptions: { noEmit: true, types: ['node', 'jest'] }, include: ['src/**/*.ts'] }),
    );
    fs.writeFileSync(path.join(pkg, 'jest.config.js'), `module.exports = { ...require(${JSON.stringify(path.join(ROOT, 'jest.preset.js'))}), rootDir: __dirname };\n`);
    fs.mkdirSync(path.join(runs, 'node_modules'), { recursive: true });
    fs.symlinkSync(pkg, path.join(runs, 'node_modules', 'cosine-kd'), 'dir');
    for (const b of blocks.filter((x) => isYaml(x) && !x.marker)) fs.writeFileSync(path.join(runs, b.file ?? `block-${b.line}.yaml`), b.code);
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('every block is run here, run by registry.spec.ts, or marked illustrative with a reason', () => {
    expect(markerProblems(PLUGIN_DOC)).toEqual([]);
    const steps = blocks.filter((b) => b.marker?.kind === 'registry').map((b) => b.marker?.arg.split(/\s/)[0]);
    expect(steps.sort()).toEqual([...REGISTRY_STEPS].sort());
    // what the page is about: its package has the loss, the module and the tests
    expect(fs.readdirSync(path.join(pkg, 'src')).sort()).toEqual(['cosine-kd.spec.ts', 'cosine-kd.ts', 'index.ts']);
  });

  it('the TypeScript blocks type-check as one package (tsc, strict)', () => {
    const r = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(pkg, 'tsconfig.json')], { encoding: 'utf8', env: plainEnv });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it("the package's tests pass: the hand-computed value, the gradient check and the plugin contract", () => {
    const r = spawnSync(process.execPath, [require.resolve('jest/bin/jest'), '-c', path.join(pkg, 'jest.config.js'), '--ci'], { cwd: pkg, encoding: 'utf8', env: plainEnv });
    expect(r.stderr).toMatch(/✓ is 1 − the mean cosine on a hand-computed pair of rows/);
    expect(r.stderr).toMatch(/Tests:\s+6 passed, 6 total/);
    expect(r.status).toBe(0);
  });

  it('its spec plans, the package loaded through `packages: [cosine-kd]`', async () => {
    const yaml = blocks.filter((b) => isYaml(b) && !b.marker);
    expect(yaml.map((b) => b.file)).toEqual(['cosine.yaml']);
    const r = await plan(path.join(runs, 'cosine.yaml'), path.join(tmp, 'plan-cache'));
    expect([r.code, r.err]).toEqual([0, '']);
    expect(r.out).toMatch(/^plan: 2 runs, data fashion-mnist subset \(512 train \/ 256 test\)/);
    expect(r.out).toMatch(/^2\. distill: teacher mlp, student mlp-student; plugins loss\/cross-entropy, loss\/cosine-kd;/m);
  });

  it('its shell blocks run (from my-runs/, `kd` from the sources)', () => {
    const shell = blocks.filter((b) => isShell(b) && !b.marker);
    expect(shell.length).toBeGreaterThan(0);
    for (const b of shell) {
      const prelude = `kd() { ${JSON.stringify(process.execPath)} ${JSON.stringify(FROM_SOURCE)} "$@"; }\nnpx() { if [ "$1" = kd ]; then shift; kd "$@"; else command npx "$@"; fi; }\n`;
      const r = spawnSync('bash', ['-euo', 'pipefail', '-c', prelude + b.code], { cwd: runs, encoding: 'utf8', env: plainEnv });
      expect({ block: where(PLUGIN_DOC, b), status: r.status, stderr: r.status === 0 ? '' : r.stderr }).toEqual({ block: where(PLUGIN_DOC, b), status: 0, stderr: '' });
      // the cache block: the moved teacher is found where it went
      if (b.code.includes('moved-teachers')) expect(r.stdout).toContain(`cached, loaded from ${path.join(runs, 'moved-teachers', 'teachers')}`);
    }
  });
});

describe('README.md', () => {
  it('every block is checked here or marked illustrative with a reason', () => {
    expect(markerProblems(README)).toEqual([]);
    expect(docBlocks(README).filter((b) => b.marker?.kind === 'registry')).toEqual([]);
    // README's blocks are specs and commands that build, train for minutes or need Redis: only the specs run here
    expect(docBlocks(README).filter((b) => isShell(b) && !b.marker).map((b) => where(README, b))).toEqual([]);
  });

  it('its YAML specs plan (`kd run --plan`: every run checked, nothing trained)', async () => {
    const yaml = docBlocks(README).filter((b) => isYaml(b) && !b.marker);
    expect(yaml.length).toBeGreaterThan(0);
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-readme-'));
    try {
      for (const b of yaml) {
        const spec = path.join(tmp, `readme-${b.line}.yaml`);
        fs.writeFileSync(spec, b.code);
        const r = await plan(spec, path.join(tmp, 'cache'));
        expect({ block: where(README, b), code: r.code, err: r.err }).toEqual({ block: where(README, b), code: 0, err: '' });
        expect(r.out).toMatch(/^plan: \d+ runs?, data /);
      }
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
