import { Container, ContainerModule } from 'inversify';
import * as path from 'path';
import { pathToFileURL } from 'url';
import { KdError } from './errors';
import type { PluginDefinition } from './plugin';
import {
  BACKEND_PROVIDER,
  DATASET_DEFINITION,
  MODEL_DEFINITION,
  MODEL_TOOLS,
  PLUGIN_DEFINITION,
  type BackendProvider,
  type DatasetDefinition,
  type ModelDefinition,
  type ModelTools,
} from './tokens';

/**
 * The plugin, model, dataset and backend registries, as one inversify container built per run from
 * the packages' ContainerModules. Nothing is global: two runs (or two tests) get two registries.
 */
export class Registry {
  readonly container = new Container();
  private readonly loaded = new Set<string>();

  constructor(modules: readonly ContainerModule[] = []) {
    for (const m of modules) this.container.load(m);
  }

  /** Load the `packages:` of a spec: each module exports a ContainerModule as `kdModule` or default. */
  async loadPackages(names: readonly string[], baseDir: string): Promise<void> {
    for (const [i, name] of names.entries()) {
      if (this.loaded.has(name)) continue;
      const target = name.startsWith('.') || path.isAbsolute(name) ? path.resolve(baseDir, name) : name;
      let mod: Record<string, unknown>;
      try {
        mod = await importModule(target, baseDir);
      } catch (e) {
        throw new KdError('KD_PLUGIN_PACKAGE', `could not load package '${name}': ${(e as Error).message}`, {
          path: `packages[${i}]`,
          fix: 'install it (npm install <name>) or give a path relative to the spec file; it must export a ContainerModule',
          cause: e,
        });
      }
      const cm = findContainerModule(mod);
      if (!cm) {
        throw new KdError('KD_PLUGIN_PACKAGE', `package '${name}' exports no ContainerModule`, {
          path: `packages[${i}]`,
          fix: 'export `kdModule = new ContainerModule(...)` (or a default export) binding PLUGIN_DEFINITION',
        });
      }
      this.container.load(cm);
      this.loaded.add(name);
    }
  }

  plugins(): PluginDefinition[] {
    return this.all<PluginDefinition>(PLUGIN_DEFINITION);
  }

  plugin(id: string, specPath: string): PluginDefinition {
    return this.find(this.plugins(), id, specPath, 'KD_PLUGIN_UNKNOWN', 'plugin', 'add its package to `packages:`');
  }

  models(): ModelDefinition[] {
    return this.all<ModelDefinition>(MODEL_DEFINITION);
  }

  model(id: string, specPath: string): ModelDefinition {
    return this.find(this.models(), id, specPath, 'KD_MODEL_UNKNOWN', 'model', 'or `load:` a saved model folder');
  }

  datasets(): DatasetDefinition[] {
    return this.all<DatasetDefinition>(DATASET_DEFINITION);
  }

  dataset(id: string, specPath: string): DatasetDefinition {
    return this.find(this.datasets(), id, specPath, 'KD_SPEC_INVALID', 'dataset', 'or add the package that provides it');
  }

  backends(): BackendProvider[] {
    return this.all<BackendProvider>(BACKEND_PROVIDER);
  }

  modelTools(): ModelTools {
    const tools = this.all<ModelTools>(MODEL_TOOLS);
    if (tools.length === 0) {
      throw new KdError('KD_INTERNAL', 'no ModelTools are bound', {
        fix: 'load the models package module (modelsModule from @tfkd/models) into the registry',
      });
    }
    return tools[tools.length - 1];
  }

  private all<T>(token: symbol): T[] {
    return this.container.isBound(token) ? this.container.getAll<T>(token) : [];
  }

  private find<T extends { id: string }>(
    list: T[],
    id: string,
    specPath: string,
    code: 'KD_PLUGIN_UNKNOWN' | 'KD_MODEL_UNKNOWN' | 'KD_SPEC_INVALID',
    what: string,
    hint: string,
  ): T {
    const hit = list.filter((d) => d.id === id);
    if (hit.length > 0) return hit[hit.length - 1];
    const ids = list.map((d) => d.id).sort();
    const near = ids.filter((k) => editDistance(k, id) <= Math.max(2, Math.floor(id.length / 4)));
    const suggestion = near.length ? `did you mean ${near.map((n) => `'${n}'`).join(' or ')}? ` : '';
    throw new KdError(code, `unknown ${what} '${id}'; known: ${ids.join(', ') || '(none)'}`, {
      path: specPath,
      fix: `${suggestion}use one of the known ids (\`kd list\`), ${hint}`,
    });
  }
}

function findContainerModule(mod: Record<string, unknown>): ContainerModule | undefined {
  const candidates = [mod.kdModule, mod.default, (mod.default as Record<string, unknown> | undefined)?.kdModule];
  return candidates.find(
    (c): c is ContainerModule =>
      c instanceof ContainerModule ||
      (typeof c === 'object' && c !== null && typeof (c as { load?: unknown }).load === 'function'),
  );
}

async function importModule(target: string, baseDir: string): Promise<Record<string, unknown>> {
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

export function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0];
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j];
      dp[j] = Math.min(dp[j] + 1, dp[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length];
}
