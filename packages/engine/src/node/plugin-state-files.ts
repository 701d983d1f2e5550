import * as fs from 'fs';
import * as path from 'path';
import { KdError } from '@tfkd/kd-core';
import { restorePluginState, type IndexFile, type PluginStateEntry, type PluginStateManifest } from '../plugin-state';

/**
 * Restore the plugins saved in an `adapters/` folder (`kd run` output) into fresh instances, matched
 * by name (e.g. `engine.pluginInstances()` of an engine prepared from the same spec). Plugins
 * without a saved state are left as they are; a saved plugin with no instance is an error.
 * Returns the names restored.
 */
export function loadPluginStates(dir: string, entries: readonly PluginStateEntry[]): string[] {
  const indexFile = path.join(dir, 'index.json');
  if (!fs.existsSync(indexFile)) {
    throw new KdError('KD_DATA_MISSING', `no saved plugin state in ${dir} (index.json is missing)`, {
      path: dir,
      fix: 'give the adapters/ folder of a run whose plugins have adapters or buffers',
    });
  }
  const index = JSON.parse(fs.readFileSync(indexFile, 'utf8')) as IndexFile;
  const restored: string[] = [];
  for (const saved of index.plugins) {
    const entry = entries.find((e) => e.name === saved.name);
    if (!entry) {
      throw new KdError('KD_PLUGIN_DEPENDENCY', `${dir} holds the state of plugin '${saved.name}' (${saved.id}), which this run does not have`, {
        path: path.join(dir, saved.file),
        fix: `add the plugin to the spec (with the same name:), or remove ${saved.file} from index.json`,
      });
    }
    if (entry.id !== saved.id) {
      throw new KdError('KD_PLUGIN_DEPENDENCY', `plugin '${saved.name}' is ${entry.id} here but was saved as ${saved.id}`, {
        path: path.join(dir, saved.file),
        fix: 'restore into a run built from the same spec',
      });
    }
    const file = path.join(dir, saved.file);
    const manifest = JSON.parse(fs.readFileSync(file, 'utf8')) as PluginStateManifest;
    const weights = manifest.weightsManifest.flatMap((g) => g.paths).map((p) => fs.readFileSync(path.join(dir, p)));
    restorePluginState(entry.plugin, manifest, new Uint8Array(Buffer.concat(weights)), file);
    restored.push(saved.name);
  }
  return restored;
}
