import { Container, ContainerModule } from 'inversify';
import {
  BACKEND_PROVIDER,
  DATASET_DEFINITION,
  KdError,
  didYouMean,
  MODEL_DEFINITION,
  MODEL_TOOLS,
  PLUGIN_DEFINITION,
  STORAGE,
  type BackendProvider,
  type DatasetDefinition,
  type ModelDefinition,
  type ModelTools,
  type PluginDefinition,
  type Storage,
} from '@tfkd/kd-core';
import { memoryStorage } from './storage';

/**
 * How a host turns a spec's `packages:` entry into a module object: `nodePackageLoader` from
 * `@tfkd/engine/node` (require / import, resolved from the spec's folder). A browser host bundles
 * its plugin packages and passes their modules to the Registry instead.
 */
export type PackageLoader = (name: string, baseDir: string) => Promise<{ module: Record<string, unknown>; info?: LoadedPackage }>;

/** A spec's `packages:` entry as loaded: for the run's record (`metrics.json`, `spec.resolved.yaml`). */
export interface LoadedPackage {
  /** As the spec wrote it. */
  spec: string;
  name: string;
  version: string;
  /** The file loaded (absolute). */
  path: string;
  /** sha256 (16 hex) of that file and its package.json. */
  hash: string;
  /** Coded warnings (`KD_PLUGIN_COPY`: the package brings its own kd-core or tfjs-core of another version). */
  warnings?: string[];
}

/** A package's module as the registry is given it: bare, or with the package's name (for error messages). */
export type NamedModule = ContainerModule | { name: string; module: ContainerModule };

/**
 * The plugin, model, dataset, backend and storage bindings, as one inversify container built per run
 * from the packages' ContainerModules. Nothing is global: two runs (or two tests) get two registries.
 * Two packages binding the same plugin id is an error naming both (KD_PLUGIN_DUPLICATE), not a
 * silent win of whichever loaded last.
 */
export class Registry {
  readonly container = new Container();
  private readonly loaded = new Set<string>();
  private readonly loadedInfo: LoadedPackage[] = [];
  /** Plugin id → the package that bound it, and the definition. */
  private readonly origin = new Map<string, { pkg: string; def: PluginDefinition }>();

  constructor(
    modules: readonly NamedModule[] = [],
    private readonly opts: { loadPackage?: PackageLoader } = {},
  ) {
    modules.forEach((m, i) => (m instanceof ContainerModule || !('module' in m) ? this.load(m as ContainerModule, `module #${i + 1}`) : this.load(m.module, m.name)));
  }

  /** Load one package's module; `pkg` names it in a duplicate-id error (and `specPath` points at it). */
  load(module: ContainerModule, pkg: string, specPath?: string): void {
    const before = new Set(this.plugins());
    this.container.load(module);
    for (const def of this.plugins()) {
      if (before.has(def)) continue;
      const prev = this.origin.get(def.id);
      if (prev && prev.def !== def) {
        throw new KdError('KD_PLUGIN_DUPLICATE', `plugin id '${def.id}' is bound by two packages: ${prev.pkg} and ${pkg}`, {
          ...(specPath ? { path: specPath } : {}),
          fix: `load only one of them, or rename the id in one package (ids are stable names that specs use: '${def.id}' must mean one plugin)`,
        });
      }
      this.origin.set(def.id, { pkg, def });
    }
  }

  /** Load the `packages:` of a spec: each module exports a ContainerModule as `kdModule` or default. */
  async loadPackages(names: readonly string[], baseDir: string): Promise<void> {
    for (const [i, name] of names.entries()) {
      if (this.loaded.has(name)) continue;
      const load = this.opts.loadPackage;
      if (!load) {
        throw new KdError('KD_PLUGIN_PACKAGE', `this host cannot load the package '${name}' by name`, {
          path: `packages[${i}]`,
          fix: "bind the package's ContainerModule in code (new Registry([...modules])), or give the Registry a package loader (nodePackageLoader from @tfkd/engine/node)",
        });
      }
      let mod: Record<string, unknown>;
      try {
        const got = await load(name, baseDir);
        mod = got.module;
        if (got.info) this.loadedInfo.push(got.info);
      } catch (e) {
        if (e instanceof KdError) throw new KdError(e.code, e.message, { path: `packages[${i}]`, fix: e.fix, cause: e });
        throw new KdError('KD_PLUGIN_PACKAGE', `could not load package '${name}': ${(e as Error).message}`, {
          path: `packages[${i}]`,
          fix: 'fix the error in the package (it must load and export a ContainerModule), or remove it from `packages:`',
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
      this.load(cm, name, `packages[${i}]`);
      this.loaded.add(name);
    }
  }

  /** The `packages:` loaded so far, with name, version, file and content hash. */
  loadedPackages(): readonly LoadedPackage[] {
    return this.loadedInfo;
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

  /** The bound storage port (STORAGE: `nodeModule` binds the file system), else a fresh in-memory one. */
  storage(): Storage {
    const bound = this.all<Storage>(STORAGE);
    return bound.length > 0 ? bound[bound.length - 1] : memoryStorage();
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
    const suggestion = didYouMean(id, ids);
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
