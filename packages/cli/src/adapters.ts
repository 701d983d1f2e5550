import * as path from 'path';
import { savePluginStates, type Engine } from '@tfkd/engine';
import type { StagedFolder } from './output';

/** The run-folder folder that holds the plugins' adapters, buffers and JSON state (kd-core `savePluginStates`). */
export const ADAPTERS_DIR = 'adapters';

/**
 * Save every plugin's trainable adapters (`variables()`), buffers (`buffers()`, e.g. FT's paraphraser,
 * CRD's memory banks) and `getState()` next to the student: `adapters/index.json`, and per plugin
 * `<name>.json` (manifest) + `<name>.weights.bin` (tfjs weights). Nothing is written when no plugin
 * has state. Restore them with kd-core `loadPluginStates(dir, engine.pluginInstances())` on an
 * engine prepared from the same spec. Returns the names of the plugins saved.
 */
export async function writeAdapters(staged: StagedFolder, engine: Engine): Promise<string[]> {
  return savePluginStates(engine.pluginInstances(), (file, data) => staged.write(path.join(ADAPTERS_DIR, file), data));
}
