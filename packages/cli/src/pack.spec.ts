import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

// Publishing: every package packs with only dist, types, README, LICENSE (and datasets' data), and
// the packed tarballs, installed into an empty folder with no workspace links, run a spec through
// the installed `kd` (tools/pack-smoke.sh; builds first, installs tfjs peers from the registry).
jest.setTimeout(900_000);
const ROOT = path.resolve(__dirname, '..', '..', '..');
// Child processes get a plain environment: no colour codes, no FORCE_COLOR/NO_COLOR warnings (nx sets FORCE_COLOR).
const plainEnv: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
delete plainEnv.FORCE_COLOR;

// The repository's packages (git's index), not whatever else is in packages/ at the moment: the
// generator test writes a temporary package there while this suite may be running.
function trackedPackages(): string[] {
  const r = spawnSync('git', ['ls-files', 'packages/*/package.json'], { cwd: ROOT, encoding: 'utf8' });
  expect(r.status).toBe(0);
  const dirs = r.stdout.split('\n').filter(Boolean).map((f) => f.split('/')[1]);
  expect(dirs.length).toBeGreaterThan(10);
  return dirs;
}

describe('npm pack', () => {
  it('packs each package with only its dist, types, README and licence', () => {
    for (const dir of trackedPackages()) {
      const cwd = path.join(ROOT, 'packages', dir);
      const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd, encoding: 'utf8', env: plainEnv });
      expect(r.status).toBe(0);
      const files: string[] = JSON.parse(r.stdout)[0].files.map((f: { path: string }) => f.path);
      const stray = files.filter(
        (f) => !/^(dist\/.*\.(js|d\.ts|js\.map|d\.ts\.map)|README\.md|LICENSE|package\.json|data\/.*)$/.test(f) || /\.spec\./.test(f),
      );
      expect([dir, stray]).toEqual([dir, []]);
      expect(files).toEqual(expect.arrayContaining(['README.md', 'LICENSE', 'package.json']));
    }
  });

  it('installs from the tarballs alone and runs a spec through the installed kd', () => {
    const build = spawnSync('npx', ['nx', 'run-many', '-t', 'build', '--output-style=static'], { cwd: ROOT, encoding: 'utf8', env: plainEnv });
    expect(build.status).toBe(0);
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-pack-'));
    try {
      const r = spawnSync('bash', [path.join(ROOT, 'tools/pack-smoke.sh'), work], { cwd: ROOT, encoding: 'utf8', env: plainEnv });
      expect(r.stderr).toBe('');
      expect(r.stdout).toMatch(/^pack smoke ok: student 0\.\d+ on (wasm|cpu) from subset$/m);
      expect(r.status).toBe(0);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });
});
