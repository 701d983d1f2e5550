import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

// Publishing: every package packs with only dist, types, README, LICENSE (and datasets' data), and
// plugin packages peer on kd-core and tfjs-core. Installing what is published and running it is
// registry.spec.ts (a real local registry; it replaced tools/pack-smoke.sh's tarball install here).
jest.setTimeout(120_000);
const ROOT = path.resolve(__dirname, '..', '..', '..');
// Child processes get a plain environment: no colour codes, no FORCE_COLOR/NO_COLOR warnings (nx sets FORCE_COLOR).
const plainEnv: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
delete plainEnv.FORCE_COLOR;

// The repository's packages (git's index, and the generator package before its first commit), not
// whatever else is in packages/ at the moment: the generator test writes a temporary package there
// while this suite may be running.
function trackedPackages(): string[] {
  const r = spawnSync('git', ['ls-files', 'packages/*/package.json'], { cwd: ROOT, encoding: 'utf8' });
  expect(r.status).toBe(0);
  const dirs = new Set(r.stdout.split('\n').filter(Boolean).map((f) => f.split('/')[1]));
  dirs.add('create-plugin');
  expect(dirs.size).toBeGreaterThan(10);
  return [...dirs];
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

  it('plugin packages take @tfkd/kd-core and @tensorflow/tfjs-core from the host: peers, never dependencies', () => {
    // A plugin package resolving its own copy would run with two of each (tokens, tensors and errors of
    // one copy are not the other's). The contract, the runner and the hosts depend on them directly.
    const notPlugins = new Set(['kd-core', 'engine', 'cli', 'sweep', 'create-plugin']);
    const plugins = trackedPackages().filter((d) => !notPlugins.has(d));
    expect(plugins).toEqual(expect.arrayContaining(['losses-logit', 'losses-feature', 'models', 'datasets']));
    for (const dir of plugins) {
      const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'packages', dir, 'package.json'), 'utf8'));
      expect([dir, pkg.peerDependencies?.['@tfkd/kd-core'], pkg.peerDependencies?.['@tensorflow/tfjs-core']]).toEqual([dir, expect.stringMatching(/^\^\d/), expect.stringMatching(/^\^\d/)]);
      for (const field of ['dependencies', 'optionalDependencies']) {
        expect([dir, field, pkg[field]?.['@tfkd/kd-core'], pkg[field]?.['@tensorflow/tfjs-core']]).toEqual([dir, field, undefined, undefined]);
      }
    }
  });
});
