import * as path from 'path';
import { pathToFileURL } from 'url';
import type { PackageLoader } from '../registry';

/**
 * Loads a spec's `packages:` entry on Node: a relative path against the spec's folder, a package name
 * resolved from the spec's folder then the working folder; CommonJS `require` first (jest), ESM
 * `import()` for ESM-only packages.
 */
export const nodePackageLoader: PackageLoader = async (name, baseDir) => {
  const target = name.startsWith('.') || path.isAbsolute(name) ? path.resolve(baseDir, name) : name;
  return importModule(target, baseDir);
};

export async function importModule(target: string, baseDir: string): Promise<Record<string, unknown>> {
  // Resolve from the spec's folder first, then from here; CommonJS require keeps jest happy.
  let resolved: string;
  try {
    resolved = require.resolve(target, { paths: [baseDir, process.cwd()] });
  } catch {
    resolved = target;
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- `packages:` are loaded at run time
    return require(resolved) as Record<string, unknown>;
  } catch (e) {
    if ((e as { code?: string }).code !== 'ERR_REQUIRE_ESM') throw e;
    return (await import(pathToFileURL(resolved).href)) as Record<string, unknown>;
  }
}

