import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createPlugin, kdVersions, main } from './cli';
import { pluginNames, sourceFiles, standaloneFiles, TOOL_VERSIONS } from './plugin-files';

// The standalone generator (`npm create @tfkd/plugin`). Its output is built and tested for real by
// packages/cli/src/registry.spec.ts (npm install && npm test against packages published to a local
// registry); the in-repo generator writing the same sources is packages/cli/src/generator.spec.ts.
const ROOT = path.resolve(__dirname, '..', '..', '..');
const BIN = path.join(__dirname, 'bin.ts');
const REGISTER = path.join(ROOT, 'packages', 'cli', 'src', '__fixtures__', 'register-source.js');
const readJson = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8'));

function run(argv: string[], cwd: string): { code: number; out: string; err: string } {
  let out = '';
  let err = '';
  const code = main(argv, { out: (s) => (out += s), err: (s) => (err += s), cwd });
  return { code, out, err };
}

/** The bin in a real process (from source, as jest runs it): exit code and the two streams. */
function bin(argv: string[], cwd: string) {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  delete env.FORCE_COLOR;
  return spawnSync(process.execPath, ['-r', REGISTER, BIN, ...argv], { cwd, encoding: 'utf8', env });
}

describe('create-plugin', () => {
  let tmp: string;
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-create-'));
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('--help prints the usage and exits 0, in a real process', () => {
    const r = bin(['--help'], tmp);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^usage: create-plugin <name> \[--dir <folder>\] \[--id <kind>\/<name>\]\n/);
    expect(r.stdout).toContain('npm create @tfkd/plugin <name>');
    expect(r.stderr).toBe('');
    expect(fs.readdirSync(tmp)).toEqual([]);
  });

  it('a bad name is one coded line on stderr and exit 2, no stack trace, nothing written', () => {
    const r = bin(['Cosine KD'], tmp);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      "error KD_CREATE_NAME: 'Cosine KD' is not a plugin package name: kebab-case, a letter first, then letters, digits and single dashes (optionally @scope/ before it). fix: try 'cosine-kd'\n",
    );
    expect(fs.readdirSync(tmp)).toEqual([]);
  });

  it.each([
    ['cosine_kd', 'KD_CREATE_NAME', "try 'cosine-kd'"],
    ['1cosine', 'KD_CREATE_NAME', "try 'cosine'"],
    ['cosine--kd', 'KD_CREATE_NAME', "try 'cosine-kd'"],
    ['cosine-kd-', 'KD_CREATE_NAME', "try 'cosine-kd'"],
    ['@Me/cosine-kd', 'KD_CREATE_NAME', "try 'cosine-kd'"],
    ['@me/Cosine', 'KD_CREATE_NAME', "try '@me/cosine'"],
    ['delete', 'KD_CREATE_NAME', "e.g. 'delete-loss'"],
    ['tf', 'KD_CREATE_NAME', "e.g. 'tf-loss'"],
    ['cosine-kd --id Loss/x', 'KD_CREATE_NAME', 'give --id loss/cosine-kd'],
    ['cosine-kd --dir', 'KD_CREATE_USAGE', '--dir plugins/my-loss'],
    ['cosine-kd --force', 'KD_CREATE_USAGE', 'see create-plugin --help'],
    ['cosine-kd other-kd', 'KD_CREATE_USAGE', 'give one name'],
    ['', 'KD_CREATE_USAGE', 'npm create @tfkd/plugin my-loss'],
  ])('%j: %s, exit 2', (args, code, fix) => {
    const r = run(args.split(' ').filter(Boolean), tmp);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toMatch(new RegExp(`^error ${code}: [^\\n]+ fix: [^\\n]+\\n$`));
    expect(r.err).toContain(fix);
    expect(fs.readdirSync(tmp)).toEqual([]);
  });

  it('writes a self-contained package: kd-core and tfjs-core as peers, the released tfkd versions, its tests and README', () => {
    const r = run(['cosine-kd'], tmp);
    expect([r.code, r.err]).toEqual([0, '']);
    const dir = path.join(tmp, 'cosine-kd');
    const files = (d: string): string[] => fs.readdirSync(path.join(dir, d), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(path.join(d, e.name)) : [path.join(d, e.name)]));
    expect(files('.').sort()).toEqual(
      ['.gitignore', 'README.md', 'jest.config.js', 'package.json', 'src/cosine-kd.spec.ts', 'src/cosine-kd.ts', 'src/index.ts', 'tsconfig.build.json', 'tsconfig.json'].sort(),
    );
    expect(r.out).toContain('created cosine-kd/src/cosine-kd.spec.ts\n');
    expect(r.out).toMatch(/next:\n {2}cd cosine-kd\n {2}npm install\n {2}npm test/);

    const pkg = readJson(path.join(dir, 'package.json'));
    const kdCore = readJson(path.join(ROOT, 'packages/kd-core/package.json'));
    const engine = readJson(path.join(ROOT, 'packages/engine/package.json'));
    expect(pkg.name).toBe('cosine-kd');
    expect(pkg.peerDependencies).toEqual({
      '@tfkd/kd-core': `^${kdCore.version}`,
      '@tensorflow/tfjs-core': kdCore.peerDependencies['@tensorflow/tfjs-core'],
      inversify: kdCore.dependencies.inversify,
      zod: kdCore.dependencies.zod,
    });
    expect(pkg.dependencies).toBeUndefined();
    for (const [name, range] of Object.entries(pkg.peerDependencies)) expect([name, pkg.devDependencies[name]]).toEqual([name, range]);
    expect(pkg.devDependencies['@tfkd/engine']).toBe(`^${engine.version}`);
    expect(Object.keys(pkg.devDependencies)).toEqual(expect.arrayContaining(['jest', '@swc/jest', '@swc/core', 'typescript', '@types/jest', '@tensorflow/tfjs-backend-cpu']));
    expect(pkg.scripts).toEqual({ build: 'tsc -p tsconfig.build.json', test: 'tsc -p tsconfig.json && jest', prepack: 'npm run build' });

    const loss = fs.readFileSync(path.join(dir, 'src/cosine-kd.ts'), 'utf8');
    expect(loss).toContain("id: 'loss/cosine-kd'");
    expect(loss).toContain('export function cosineKd(');
    const spec = fs.readFileSync(path.join(dir, 'src/cosine-kd.spec.ts'), 'utf8');
    expect(spec).toContain('expect(v.dataSync()[0]).toBeCloseTo(0.0625, 6);');
    expect(spec).toContain("describePluginContract({ module: kdModule, id: 'loss/cosine-kd', options: { temperature: 4 } });");
    expect(fs.readFileSync(path.join(dir, 'README.md'), 'utf8')).toMatch(/^# cosine-kd\n[\s\S]*packages: \['cosine-kd'\][\s\S]*- use: loss\/cosine-kd\n/);
  });

  it('--dir, --id and a scoped name', () => {
    const r = run(['@me/cosine-kd', '--dir', 'plugins/ck', '--id=loss/cos'], tmp);
    expect([r.code, r.err]).toEqual([0, '']);
    const dir = path.join(tmp, 'plugins/ck');
    expect(readJson(path.join(dir, 'package.json')).name).toBe('@me/cosine-kd');
    expect(fs.readFileSync(path.join(dir, 'src/cosine-kd.ts'), 'utf8')).toContain("id: 'loss/cos'");
    expect(fs.readFileSync(path.join(dir, 'src/index.ts'), 'utf8')).toContain("packages: ['@me/cosine-kd']");
    expect(r.out).toContain(`created ${path.join('plugins', 'ck', 'package.json')}\n`);
  });

  it('refuses a folder that holds files (KD_CREATE_EXISTS) and leaves it as it was; an empty one is fine', () => {
    fs.mkdirSync(path.join(tmp, 'cosine-kd'));
    fs.writeFileSync(path.join(tmp, 'cosine-kd', 'notes.txt'), 'mine');
    const r = run(['cosine-kd'], tmp);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^error KD_CREATE_EXISTS: .*cosine-kd exists and is not an empty folder\. fix: choose another name, or another folder with --dir\n$/);
    expect(fs.readdirSync(path.join(tmp, 'cosine-kd'))).toEqual(['notes.txt']);
    fs.mkdirSync(path.join(tmp, 'empty'));
    expect(createPlugin({ name: 'cosine-kd', dir: 'empty', cwd: tmp }).files).toContain('package.json');
  });

  it('starts new packages on the versions of this release: its devDependencies are the workspace kd-core and engine', () => {
    const v = kdVersions();
    expect(v.kdCore).toBe(readJson(path.join(ROOT, 'packages/kd-core/package.json')).version);
    expect(v.engine).toBe(readJson(path.join(ROOT, 'packages/engine/package.json')).version);
    // the tools a generated package tests with are the majors this repository tests with
    const rootDev = readJson(path.join(ROOT, 'package.json')).devDependencies as Record<string, string>;
    const major = (r: string) => /(\d+)/.exec(r)?.[1];
    for (const tool of ['jest', '@types/jest', '@swc/core', '@swc/jest', '@tensorflow/tfjs-layers', '@tensorflow/tfjs-backend-cpu'] as const) {
      expect([tool, major(TOOL_VERSIONS[tool])]).toEqual([tool, major(rootDev[tool])]);
    }
    expect(TOOL_VERSIONS.typescript).toBe(`~${rootDev.typescript}.0`);
  });

  it('the in-repo generator (tools/kd-plugin) writes the very same sources, and its coded errors', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- plain-JS workspace tool
    const { pluginFiles } = require(path.join(ROOT, 'tools/kd-plugin/files.js')) as { pluginFiles: (o: { name: string }) => [string, string][] };
    const ws = new Map(pluginFiles({ name: 'cosine-kd' }));
    const names = pluginNames('@tfkd/cosine-kd');
    for (const [file, content] of sourceFiles(names)) expect(ws.get(`packages/cosine-kd/${file}`)).toBe(content);
    expect(new Map(standaloneFiles(names, kdVersions())).get('src/index.ts')).toBe(ws.get('packages/cosine-kd/src/index.ts'));
    const wsPkg = JSON.parse(ws.get('packages/cosine-kd/package.json') as string);
    expect(wsPkg.peerDependencies).toEqual({ '@tfkd/kd-core': `^${kdVersions().kdCore}`, '@tensorflow/tfjs-core': TOOL_VERSIONS['@tensorflow/tfjs-core'] });
    expect(wsPkg.dependencies['@tfkd/kd-core']).toBeUndefined();
    const r = spawnSync(process.execPath, [path.join(ROOT, 'tools/kd-plugin/cli.js'), 'Cosine KD'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^error KD_CREATE_NAME: '@tfkd\/Cosine KD' is not a plugin package name: .* fix: try '@tfkd\/cosine-kd'\n$/);
  });
});
