import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { pathToFileURL } from 'url';
import { KdError } from '@tfkd/kd-core';
import type { LoadedPackage, PackageLoader } from '../registry';

/**
 * Loads a spec's `packages:` entry on Node: a relative path against the spec's folder, a package name
 * resolved from the spec's folder then the working folder; CommonJS `require` first (jest), ESM
 * `import()` for ESM-only packages. Says what it loaded (name, version, file, content hash) for the
 * run's record, and what to do when it cannot — without Node's require stack.
 */
export const nodePackageLoader: PackageLoader = async (name, baseDir) => {
  const isPath = name.startsWith('.') || path.isAbsolute(name);
  const target = isPath ? path.resolve(baseDir, name) : name;
  let resolved: string;
  try {
    resolved = require.resolve(target, { paths: [baseDir, process.cwd()] });
  } catch {
    throw new KdError('KD_PLUGIN_PACKAGE', isPath ? `no package at ${target} (${name} is resolved against the spec's folder ${baseDir})` : `cannot find the package '${name}' from ${baseDir}`, {
      fix: isPath
        ? `give the path of a built package (its package.json "main" must exist: run its build), relative to ${baseDir}`
        : `install it next to the spec: (cd ${baseDir} && npm install ${name}), or list it by path`,
    });
  }
  return { module: await importModule(resolved), info: describePackage(name, resolved) };
};

async function importModule(resolved: string): Promise<Record<string, unknown>> {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- `packages:` are loaded at run time
    return require(resolved) as Record<string, unknown>;
  } catch (e) {
    if ((e as { code?: string }).code !== 'ERR_REQUIRE_ESM') throw firstLine(e);
    return (await import(pathToFileURL(resolved).href)) as Record<string, unknown>;
  }
}

/** An error of the package's own code, with its message's first line only (no require stack). */
function firstLine(e: unknown): Error {
  return new Error(String((e as Error)?.message ?? e).split('\n')[0]);
}

/** Name and version from the package's package.json; sha256 of its entry file and that package.json. */
function describePackage(spec: string, file: string): LoadedPackage {
  let dir = path.dirname(file);
  while (!fs.existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  const pj = path.join(dir, 'package.json');
  const meta = fs.existsSync(pj) ? (JSON.parse(fs.readFileSync(pj, 'utf8')) as { name?: string; version?: string }) : {};
  const h = createHash('sha256').update(fs.readFileSync(file));
  if (fs.existsSync(pj)) h.update(fs.readFileSync(pj));
  return { spec, name: meta.name ?? path.basename(dir), version: meta.version ?? '0.0.0', path: file, hash: h.digest('hex').slice(0, 16), warnings: ownCopies(meta.name ?? spec, dir) };
}

/**
 * A plugin package that resolves its own copy of kd-core or tfjs-core (its own node_modules) runs
 * with two of each: tokens and tensors of one copy are not the other's. Warned, with a code, when
 * the versions differ (the host's copy is the one plugins must use: list them as peerDependencies).
 */
function ownCopies(name: string, dir: string): string[] {
  const at = (pkg: string, from: string): { file: string; version: string } | null => {
    try {
      const file = require.resolve(`${pkg}/package.json`, { paths: [from] });
      return { file, version: (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version };
    } catch {
      return null;
    }
  };
  return ['@tfkd/kd-core', '@tensorflow/tfjs-core'].flatMap((pkg) => {
    const theirs = at(pkg, dir);
    const ours = at(pkg, __dirname);
    if (!theirs || !ours || theirs.file === ours.file || theirs.version === ours.version) return [];
    return [
      `warning KD_PLUGIN_COPY: the package ${name} brings its own ${pkg} ${theirs.version} (${path.dirname(theirs.file)}); the host runs ${ours.version}. fix: make ${pkg} a peerDependency of ${name} and remove its copy, so that one copy is loaded`,
    ];
  });
}
