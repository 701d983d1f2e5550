import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { KdError } from '@tfkd/kd-core';
import { testModule } from '@tfkd/kd-core/testing';
import { Registry } from '../registry';
import { nodePackageLoader } from './packages';

let tmp: string;
beforeEach(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-pkg-'))));
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

const failure = (p: Promise<unknown>) => p.then(() => null, (e: unknown) => e as KdError);

describe('a spec’s `packages:` on Node', () => {
  it('a package name that is not installed: one line, the folder to install it into, no require stack', async () => {
    const e = await failure(new Registry([testModule()], { loadPackage: nodePackageLoader }).loadPackages(['@acme/no-such-kd-plugin'], tmp));
    expect(e).toMatchObject({ code: 'KD_PLUGIN_PACKAGE', path: 'packages[0]', message: `cannot find the package '@acme/no-such-kd-plugin' from ${tmp}` });
    expect(e?.fix).toBe(`install it next to the spec: (cd ${tmp} && npm install @acme/no-such-kd-plugin), or list it by path`);
    expect(e?.message).not.toMatch(/Require stack/);
  });

  it('a path that holds no built package: the absolute path and the folder it was resolved against', async () => {
    const e = await failure(new Registry([], { loadPackage: nodePackageLoader }).loadPackages(['./plugins/cosine-kd'], tmp));
    expect(e?.message).toBe(`no package at ${path.join(tmp, 'plugins', 'cosine-kd')} (./plugins/cosine-kd is resolved against the spec's folder ${tmp})`);
    expect(e?.fix).toMatch(/its package\.json "main" must exist: run its build/);
  });

  it('a package that loads is recorded with its name, version and content hash', async () => {
    const dir = path.join(tmp, 'my-kd');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'my-kd', version: '1.2.3', main: 'index.js' }));
    // (inversify by its absolute path: this folder has no node_modules of its own)
    fs.writeFileSync(path.join(dir, 'index.js'), `const { ContainerModule } = require(${JSON.stringify(require.resolve('inversify'))}); exports.kdModule = new ContainerModule(() => {});\n`);
    const registry = new Registry([], { loadPackage: nodePackageLoader });
    await registry.loadPackages(['./my-kd'], tmp);
    const [info] = registry.loadedPackages();
    expect(info).toMatchObject({ spec: './my-kd', name: 'my-kd', version: '1.2.3', path: path.join(dir, 'index.js') });
    const { createHash } = await import('crypto');
    const h = createHash('sha256').update(fs.readFileSync(path.join(dir, 'index.js'))).update(fs.readFileSync(path.join(dir, 'package.json'))).digest('hex');
    expect(info.hash).toBe(h.slice(0, 16));
  });
});

describe('a plugin package with its own copy of kd-core', () => {
  it('is loaded with a coded warning naming both versions and the fix (one copy, as a peer)', async () => {
    const dir = path.join(tmp, 'their-kd');
    const copy = path.join(dir, 'node_modules', '@tfkd', 'kd-core');
    fs.mkdirSync(copy, { recursive: true });
    fs.writeFileSync(path.join(copy, 'package.json'), JSON.stringify({ name: '@tfkd/kd-core', version: '0.0.9', main: 'index.js' }));
    fs.writeFileSync(path.join(copy, 'index.js'), '');
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'their-kd', version: '2.0.0', main: 'index.js' }));
    fs.writeFileSync(path.join(dir, 'index.js'), `const { ContainerModule } = require(${JSON.stringify(require.resolve('inversify'))}); exports.kdModule = new ContainerModule(() => {});\n`);
    const registry = new Registry([], { loadPackage: nodePackageLoader });
    await registry.loadPackages(['./their-kd'], tmp);
    const host = JSON.parse(fs.readFileSync(require.resolve('@tfkd/kd-core/package.json'), 'utf8')).version;
    expect(registry.loadedPackages()[0].warnings).toEqual([
      `warning KD_PLUGIN_COPY: the package their-kd brings its own @tfkd/kd-core 0.0.9 (${copy}); the host runs ${host}. fix: make @tfkd/kd-core a peerDependency of their-kd and remove its copy, so that one copy is loaded`,
    ]);
  });
});
