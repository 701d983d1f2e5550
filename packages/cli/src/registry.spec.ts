import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { docBlocks, registryBlock, type REGISTRY_STEPS } from './__fixtures__/doc-blocks';

// Issue #22, plugin authors outside the monorepo: a release through a real registry. The test builds
// every package, starts verdaccio on a free loopback port (config and storage in a temporary folder;
// @tfkd/* has no uplink, so only what was published here resolves), publishes with the repository's
// release command (`changeset publish`, registry from npm's environment, no git tags) and then, in
// empty folders outside the repository, with @tfkd/* resolved from that registry and everything else
// from the npm registry:
//   - a host installs @tfkd/cli and @tfkd/losses-logit (+ the tfjs peers) and runs a spec through the
//     installed `kd` (what tools/pack-smoke.sh checked with tarballs);
//   - docs/writing-a-plugin.md's commands, as written there (blocks marked `docs-test: registry`):
//     `npm create @tfkd/plugin cosine-kd`, `npm install && npm test` in the new package (its value test,
//     gradient check and plugin contract against the published engine), then `npm pack`, the tarball
//     installed into the host, `kd list --package`, a run with the plugin — with exactly one copy of
//     @tfkd/kd-core and of @tensorflow/tfjs-core in the host's tree.
// One registry, one host install and one generated package serve every test; the two installs run side
// by side. The build (nx's cache: only what changed) and the npm installs are most of its time: about
// four minutes on a busy 2-core machine with every package rebuilt, about 90 s of it after the build.
jest.setTimeout(600_000);

const ROOT = path.resolve(__dirname, '..', '..', '..');
const DOC = path.join(ROOT, 'docs', 'writing-a-plugin.md');
const VERDACCIO = path.join(ROOT, 'node_modules', 'verdaccio', 'bin', 'verdaccio');
const CHANGESET = path.join(ROOT, 'node_modules', '@changesets', 'cli', 'bin.js');
/** Packages that are not plugin packages: the contract, the runner, the hosts, the generator. */
const NOT_PLUGINS = new Set(['@tfkd/kd-core', '@tfkd/engine', '@tfkd/cli', '@tfkd/sweep', '@tfkd/create-plugin']);

interface Pkg {
  dir: string;
  name: string;
  version: string;
  files: string[];
}
interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/**
 * A child's environment: ours without what an enclosing `npm test` exported about the repository
 * (npm_package_*, npm_lifecycle_*, the local prefix), the caller's teacher cache or colour codes.
 */
function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_(package_|lifecycle_)|^npm_config_local_prefix$|^INIT_CWD$|^FORCE_COLOR$|^KD_CACHE_DIR$/.test(k)) continue;
    e[k] = v;
  }
  return { ...e, NO_COLOR: '1', ...extra };
}

/** A command's exit code and output; never rejects (a failed step is asserted on, not thrown). */
function sh(cmd: string, args: string[], opts: SpawnOptions): Promise<Result> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d) => (stdout += d));
    child.stderr?.on('data', (d) => (stderr += d));
    child.on('error', (e) => resolve({ code: -1, stdout, stderr: `${stderr}${e.message}`, seconds: (Date.now() - t0) / 1000 }));
    child.on('close', (code) => resolve({ code, stdout, stderr, seconds: (Date.now() - t0) / 1000 }));
  });
}

/** The outcome as one comparable value, with the output's tail when it failed. */
const outcome = (r: Result) => ({ code: r.code, ...(r.code === 0 ? {} : { tail: `${r.stdout}\n${r.stderr}`.slice(-4000) }) });

/**
 * What is released: every package of packages/* in the repository (git's index; the generator package
 * before its first commit) and every workspace package they depend on (a new one, not committed yet).
 * Not whatever else is in packages/: the generator test writes a temporary package there meanwhile.
 */
function releasePackages(): Pkg[] {
  const all = new Map<string, Pkg & { private?: boolean; deps: string[] }>();
  for (const d of fs.readdirSync(path.join(ROOT, 'packages'))) {
    const file = path.join(ROOT, 'packages', d, 'package.json');
    if (!fs.existsSync(file)) continue;
    const j = JSON.parse(fs.readFileSync(file, 'utf8'));
    const deps = ['dependencies', 'peerDependencies', 'optionalDependencies'].flatMap((f) => Object.keys(j[f] ?? {}));
    all.set(j.name, { dir: path.dirname(file), name: j.name, version: j.version, files: j.files ?? [], private: j.private, deps });
  }
  const r = spawnSync('git', ['ls-files', 'packages/*/package.json'], { cwd: ROOT, encoding: 'utf8' });
  const tracked = new Set(r.stdout.split('\n').filter(Boolean).map((f) => path.join(ROOT, path.dirname(f))));
  const keep = new Set([...all.values()].filter((p) => tracked.has(p.dir) || p.name === '@tfkd/create-plugin').map((p) => p.name));
  for (const name of keep) for (const dep of all.get(name)?.deps ?? []) if (all.has(dep)) keep.add(dep);
  return [...keep]
    .map((name) => all.get(name) as Pkg & { private?: boolean })
    .filter((p) => !p.private)
    .map(({ dir, name, version, files }) => ({ dir, name, version, files }));
}

/**
 * The release tree `changeset publish` runs in: the root manifest (its workspaces), .changeset/config.json
 * and each package's publishable files (`files`; npm applies the negations) — a copy, so that a
 * temporary package another test writes into packages/ meanwhile is not published.
 */
function stageRelease(dest: string, pkgs: Pkg[]): void {
  fs.mkdirSync(path.join(dest, '.changeset'), { recursive: true });
  fs.copyFileSync(path.join(ROOT, '.changeset', 'config.json'), path.join(dest, '.changeset', 'config.json'));
  fs.writeFileSync(path.join(dest, 'package.json'), JSON.stringify({ name: 'tfkd-release', private: true, workspaces: ['packages/*'] }));
  for (const p of pkgs) {
    const to = path.join(dest, 'packages', path.basename(p.dir));
    for (const entry of ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md', ...p.files.filter((f) => !f.startsWith('!'))]) {
      if (fs.existsSync(path.join(p.dir, entry))) fs.cpSync(path.join(p.dir, entry), path.join(to, entry), { recursive: true });
    }
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** verdaccio on a free loopback port, its config, storage, users and log in `dir`. */
async function startVerdaccio(dir: string): Promise<{ url: string; child: ChildProcess }> {
  fs.mkdirSync(dir, { recursive: true });
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const config = path.join(dir, 'config.yaml');
    fs.writeFileSync(
      config,
      `storage: ${JSON.stringify(path.join(dir, 'storage'))}
auth:
  htpasswd:
    file: ${JSON.stringify(path.join(dir, 'htpasswd'))}
    max_users: 10
uplinks:
  npmjs:
    url: https://registry.npmjs.org/
packages:
  '@tfkd/*':
    access: $all
    publish: $authenticated
  '**':
    access: $all
    publish: $authenticated
    proxy: npmjs
log: { type: stdout, format: pretty, level: warn }
`,
    );
    const log = fs.openSync(path.join(dir, `verdaccio-${attempt}.log`), 'w');
    const child = spawn(process.execPath, [VERDACCIO, '--config', config, '--listen', `127.0.0.1:${port}`], { stdio: ['ignore', log, log], env: env() });
    fs.closeSync(log);
    const url = `http://127.0.0.1:${port}/`;
    for (let i = 0; i < 150 && child.exitCode === null; i++) {
      const up = await fetch(`${url}-/ping`).then((r) => r.ok, () => false);
      if (up) return { url, child };
      await new Promise((r) => setTimeout(r, 200));
    }
    child.kill('SIGKILL');
    if (attempt === 3) throw new Error(`verdaccio did not start: ${fs.readFileSync(path.join(dir, `verdaccio-${attempt}.log`), 'utf8')}`);
  }
}

async function stopVerdaccio(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** Where `pkg` is installed under `dir`'s node_modules, following real folders (a link is not a copy). */
function copiesOf(dir: string, pkg: string): string[] {
  const found: string[] = [];
  const walk = (nm: string) => {
    if (!fs.existsSync(nm)) return;
    for (const e of fs.readdirSync(nm, { withFileTypes: true })) {
      if (!e.isDirectory() || e.name === '.bin') continue;
      const full = path.join(nm, e.name);
      if (e.name.startsWith('@')) {
        for (const s of fs.readdirSync(full, { withFileTypes: true })) {
          if (!s.isDirectory()) continue;
          if (`${e.name}/${s.name}` === pkg) found.push(path.join(full, s.name));
          walk(path.join(full, s.name, 'node_modules'));
        }
      } else {
        if (e.name === pkg) found.push(full);
        walk(path.join(full, 'node_modules'));
      }
    }
  };
  walk(path.join(dir, 'node_modules'));
  return found;
}

const readJson = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8'));

describe('a release through a local registry (verdaccio), used from folders outside the repository', () => {
  const pkgs = releasePackages();
  const version = (name: string) => pkgs.find((p) => p.name === name)?.version;
  let tmp: string;
  let work: string;
  let host: string;
  let registry: { url: string; child: ChildProcess } | undefined;
  let published: Result;
  let userEnv: NodeJS.ProcessEnv;
  let hostInstall: Promise<Result>;
  let authorFlow: Promise<Result>;
  const block = (step: (typeof REGISTRY_STEPS)[number]) => sh('bash', ['-euo', 'pipefail', '-c', registryBlock(DOC, step).code], { cwd: work, env: userEnv });

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-registry-'));
    work = path.join(tmp, 'work');
    host = path.join(work, 'my-runs');
    fs.mkdirSync(work);
    // 1. build what is published (nx's cache: only what changed is rebuilt)
    const build = await sh('npx', ['nx', 'run-many', '-t', 'build', '--output-style=static', '-p', pkgs.map((p) => p.name).join(',')], { cwd: ROOT, env: env() });
    if (build.code !== 0) throw new Error(`build failed:\n${build.stdout.slice(-3000)}\n${build.stderr.slice(-3000)}`);
    // 2. the registry, and a user allowed to publish
    registry = await startVerdaccio(path.join(tmp, 'verdaccio'));
    const user = await fetch(`${registry.url}-/user/org.couchdb.user:kd-release`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'kd-release', password: 'kd-release-test' }),
    }).then((r) => r.json() as Promise<{ token?: string }>);
    if (!user.token) throw new Error(`no token from verdaccio: ${JSON.stringify(user)}`);
    const npmrc = path.join(tmp, 'publish.npmrc');
    fs.writeFileSync(npmrc, `//${new URL(registry.url).host}/:_authToken=${user.token}\n`);
    // 3. the release: `changeset publish` (docs/publishing.md), the registry from npm's environment
    const release = path.join(tmp, 'release');
    stageRelease(release, pkgs);
    published = await sh(process.execPath, [CHANGESET, 'publish', '--no-git-tag'], { cwd: release, env: env({ npm_config_registry: registry.url, npm_config_userconfig: npmrc }) });
    // 4. a user's machine: @tfkd/* from this registry, the rest from npm's; the host's install and the
    //    plugin author's flow side by side
    userEnv = env({ 'npm_config_@tfkd:registry': registry.url, npm_config_yes: 'true', npm_config_fund: 'false', npm_config_audit: 'false', npm_config_update_notifier: 'false' });
    const notRun: Result = { code: -1, stdout: '', stderr: 'not run: the release failed', seconds: 0 };
    hostInstall = published.code === 0 ? block('host') : Promise.resolve(notRun);
    authorFlow = published.code === 0 ? block('author') : Promise.resolve(notRun);
  }, 600_000);

  afterAll(async () => {
    await Promise.allSettled([hostInstall, authorFlow]);
    await stopVerdaccio(registry?.child);
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  }, 120_000);

  it('`changeset publish` puts every package of packages/* on it; plugin packages peer on kd-core and tfjs-core', async () => {
    expect(outcome(published)).toEqual({ code: 0 });
    expect(pkgs.map((p) => p.name)).toEqual(expect.arrayContaining(['@tfkd/kd-core', '@tfkd/engine', '@tfkd/cli', '@tfkd/losses-logit', '@tfkd/create-plugin']));
    for (const p of pkgs) {
      expect(`${published.stdout}${published.stderr}`).toContain(`${p.name}@${p.version}`);
      const doc = (await fetch(`${registry?.url}${p.name.replace('/', '%2f')}`).then((r) => r.json())) as {
        'dist-tags': Record<string, string>;
        versions: Record<string, { dependencies?: Record<string, string>; peerDependencies?: Record<string, string>; bin?: Record<string, string> }>;
      };
      expect([p.name, doc['dist-tags']?.latest]).toEqual([p.name, p.version]);
      const m = doc.versions[p.version];
      if (!NOT_PLUGINS.has(p.name)) {
        expect([p.name, Object.keys(m.peerDependencies ?? {})]).toEqual([p.name, expect.arrayContaining(['@tfkd/kd-core', '@tensorflow/tfjs-core'])]);
        expect([p.name, m.dependencies?.['@tfkd/kd-core'], m.dependencies?.['@tensorflow/tfjs-core']]).toEqual([p.name, undefined, undefined]);
      }
    }
    const gen = (await fetch(`${registry?.url}@tfkd%2fcreate-plugin`).then((r) => r.json())) as { versions: Record<string, { bin?: Record<string, string>; dependencies?: object }> };
    expect(gen.versions[version('@tfkd/create-plugin') as string].bin).toEqual({ 'create-plugin': 'dist/bin.js' });
    expect(gen.versions[version('@tfkd/create-plugin') as string].dependencies).toBeUndefined();
  });

  it('a host installs @tfkd/cli and @tfkd/losses-logit (+ the tfjs peers) from it and runs a spec through the installed kd', async () => {
    const install = await hostInstall;
    expect(outcome(install)).toEqual({ code: 0 });
    for (const name of ['@tfkd/cli', '@tfkd/losses-logit', '@tfkd/kd-core', '@tfkd/engine']) {
      const dir = path.join(host, 'node_modules', name);
      expect([name, fs.lstatSync(dir).isSymbolicLink(), readJson(path.join(dir, 'package.json')).version]).toEqual([name, false, version(name)]);
    }
    expect(fs.realpathSync(path.join(host, 'node_modules', '.bin', 'kd'))).toBe(path.join(host, 'node_modules', '@tfkd', 'cli', 'dist', 'bin.js'));
    fs.writeFileSync(
      path.join(host, 'spec.yaml'),
      `seed: 1
data: { name: fashion-mnist, subset: true, limit: { train: 512, test: 256 } }
teacher: { model: mlp, options: { hidden: [64] }, seed: 1, train: { epochs: 1 } }
student: { model: mlp-student }
train: { epochs: 1, batchSize: 64, optimizer: { name: adam, lr: 0.001, weightDecay: 0 } }
plugins:
  - use: loss/cross-entropy
    weight: 0.1
  - use: loss/hinton-kd
    weight: 0.9
eval: [accuracy, ece]
`,
    );
    const run = await sh('npx', ['kd', 'run', 'spec.yaml', '--out', 'run', '--quiet'], { cwd: host, env: userEnv });
    expect(outcome(run)).toEqual({ code: 0 });
    const m = readJson(path.join(host, 'run', 'metrics.json'));
    expect(m.status).toBe('completed');
    expect(m.dataset.source).toBe('subset');
    expect(['wasm', 'cpu']).toContain(m.backend.name);
    expect(m.eval.student.accuracy).toBeGreaterThan(0.3);
  });

  it('`npm create @tfkd/plugin cosine-kd`, then `npm install && npm test` there: the generated tests pass against the published packages', async () => {
    const r = await authorFlow;
    expect(outcome(r)).toEqual({ code: 0 });
    expect(`${r.stdout}${r.stderr}`).toMatch(/Tests:\s+6 passed, 6 total/);
    const dir = path.join(work, 'cosine-kd');
    const pkg = readJson(path.join(dir, 'package.json'));
    expect(pkg.peerDependencies['@tfkd/kd-core']).toBe(`^${version('@tfkd/kd-core')}`);
    for (const name of ['@tfkd/kd-core', '@tfkd/engine']) {
      expect([name, readJson(path.join(dir, 'node_modules', name, 'package.json')).version]).toEqual([name, version(name)]);
    }
  });

  it('the plugin, packed and installed into the host, loads with one copy of kd-core and of tfjs-core, and trains in a run', async () => {
    expect(outcome(await hostInstall)).toEqual({ code: 0 });
    expect(outcome(await authorFlow)).toEqual({ code: 0 });
    const spec = docBlocks(DOC).find((b) => b.file === 'cosine.yaml');
    fs.writeFileSync(path.join(host, 'cosine.yaml'), spec?.code ?? '');
    const r = await block('install');
    expect(outcome(r)).toEqual({ code: 0 });
    expect(r.stdout).toContain('loss/cosine-kd  (loss)');
    expect(`${r.stdout}${r.stderr}`).not.toContain('KD_PLUGIN_COPY');
    const installed = path.join(host, 'node_modules', 'cosine-kd');
    expect(fs.lstatSync(installed).isSymbolicLink()).toBe(false);
    expect(fs.existsSync(path.join(installed, 'node_modules'))).toBe(false);
    expect(fs.readdirSync(path.join(installed, 'dist'))).toEqual(expect.arrayContaining(['index.js', 'index.d.ts', 'cosine-kd.js']));
    // exactly one copy of each in the host's tree: on disk, and as npm sees it
    expect(copiesOf(host, '@tfkd/kd-core')).toEqual([path.join(host, 'node_modules', '@tfkd', 'kd-core')]);
    expect(copiesOf(host, '@tensorflow/tfjs-core')).toEqual([path.join(host, 'node_modules', '@tensorflow', 'tfjs-core')]);
    const ls = await sh('npm', ['ls', '--all', '--parseable'], { cwd: host, env: userEnv });
    const lines = ls.stdout.split('\n');
    expect(lines.filter((l) => l.endsWith(`${path.sep}@tfkd${path.sep}kd-core`))).toHaveLength(1);
    expect(lines.filter((l) => l.endsWith(`${path.sep}@tensorflow${path.sep}tfjs-core`))).toHaveLength(1);
    expect(lines).toContain(installed);
    // the run: completed, the plugin's term logged, the package named in the resolved spec
    const out = path.join(host, 'runs', 'cosine');
    expect(readJson(path.join(out, 'metrics.json')).status).toBe('completed');
    const epoch = JSON.parse(fs.readFileSync(path.join(out, 'history.jsonl'), 'utf8').trim().split('\n')[0]) as { train: Record<string, number> };
    expect(Number.isFinite(epoch.train['loss/cosine-kd'])).toBe(true);
    expect(fs.readFileSync(path.join(out, 'spec.resolved.yaml'), 'utf8')).toMatch(/cosine-kd/);
  });
});
