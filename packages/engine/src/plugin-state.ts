import * as tf from '@tensorflow/tfjs-core';
import { KdError, type Plugin } from '@tfkd/kd-core';

/**
 * A plugin's saved state, next to the student in a run folder (`adapters/`): its trainable
 * variables (adapters, heads), its buffers (frozen paraphraser, memory bank) as one tfjs weights
 * file, and its JSON `getState()`. Like torch's `state_dict` for the modules a loss owns.
 *
 * ```
 * adapters/index.json                          { format, version, plugins: [{ name, id, file }] }
 * adapters/<file>.json                         PluginStateManifest
 * adapters/<file>.weights.bin                  tfjs weights (tf.io.encodeWeights)
 * ```
 */
export const PLUGIN_STATE_FORMAT = 'tfkd-plugin-state';
export const PLUGIN_STATE_VERSION = 1;

export interface PluginStateTensor {
  /** `variables/<i>` or `buffers/<i>`: position in `variables()` / `buffers()`. */
  key: string;
  kind: 'variable' | 'buffer';
  /** The tfjs variable name at save time (informative: names carry per-process counters). */
  name: string;
  shape: number[];
}

export interface PluginStateManifest {
  format: typeof PLUGIN_STATE_FORMAT;
  version: number;
  name: string;
  id: string;
  options: unknown;
  state: unknown;
  tensors: PluginStateTensor[];
  weightsManifest: tf.io.WeightsManifestConfig;
}

export interface PluginStateEntry {
  name: string;
  id: string;
  options?: unknown;
  plugin: Plugin;
}

export interface IndexFile {
  format: 'tfkd-adapters';
  version: number;
  plugins: { name: string; id: string; file: string }[];
}

const tensorsOf = (p: Plugin): { kind: 'variable' | 'buffer'; v: tf.Variable; i: number }[] => [
  ...(p.variables?.() ?? []).map((v, i) => ({ kind: 'variable' as const, v, i })),
  ...(p.buffers?.() ?? []).map((v, i) => ({ kind: 'buffer' as const, v, i })),
];

/** A file-system-safe stem for a plugin name (`loss/crd` → `loss_crd`), unique within `taken`. */
function fileStem(name: string, taken: Set<string>): string {
  const base = name.replace(/[^A-Za-z0-9._-]/g, '_');
  let stem = base;
  for (let k = 2; taken.has(stem); k++) stem = `${base}-${k}`;
  taken.add(stem);
  return stem;
}

/** The manifest and weights of one plugin, or null when it has no variables, buffers or state. */
export async function encodePluginState(
  entry: PluginStateEntry,
  weightsFile: string,
): Promise<{ manifest: PluginStateManifest; weights: Uint8Array } | null> {
  const list = tensorsOf(entry.plugin);
  const state = entry.plugin.getState?.();
  if (list.length === 0 && state === undefined) return null;
  const named = list.map(({ kind, v, i }) => ({ name: `${kind}s/${i}`, tensor: v as tf.Tensor }));
  const { data, specs } = await tf.io.encodeWeights(named);
  return {
    manifest: {
      format: PLUGIN_STATE_FORMAT,
      version: PLUGIN_STATE_VERSION,
      name: entry.name,
      id: entry.id,
      options: entry.options ?? null,
      state: state ?? null,
      tensors: list.map(({ kind, v, i }) => ({ key: `${kind}s/${i}`, kind, name: v.name, shape: [...v.shape] })),
      weightsManifest: [{ paths: [weightsFile], weights: specs }],
    },
    weights: new Uint8Array(data),
  };
}

/**
 * Save every plugin that has state through `write(relativePath, data)` (the CLI's staged run
 * folder; paths relative to the adapters folder). Writes nothing when no plugin has state.
 * Returns the names of the plugins saved.
 */
export async function savePluginStates(entries: readonly PluginStateEntry[], write: (file: string, data: string | Uint8Array) => void): Promise<string[]> {
  const taken = new Set<string>(['index']);
  const index: IndexFile = { format: 'tfkd-adapters', version: PLUGIN_STATE_VERSION, plugins: [] };
  for (const entry of entries) {
    const stem = fileStem(entry.name, taken);
    const encoded = await encodePluginState(entry, `${stem}.weights.bin`);
    if (!encoded) continue;
    write(`${stem}.weights.bin`, encoded.weights);
    write(`${stem}.json`, JSON.stringify(encoded.manifest, null, 2) + '\n');
    index.plugins.push({ name: entry.name, id: entry.id, file: `${stem}.json` });
  }
  if (index.plugins.length > 0) write('index.json', JSON.stringify(index, null, 2) + '\n');
  return index.plugins.map((p) => p.name);
}

/**
 * Restore a saved state into a plugin instance built from the same spec entry (same options, same
 * tap shapes): every variable and buffer by position, shapes checked, then `setState`.
 */
export function restorePluginState(plugin: Plugin, manifest: PluginStateManifest, weights: ArrayBuffer | Uint8Array, where = manifest.name): void {
  if (manifest.format !== PLUGIN_STATE_FORMAT || manifest.version > PLUGIN_STATE_VERSION) {
    throw new KdError('KD_MODEL_LOAD', `${where} is not a tfkd plugin state (format ${manifest.format} v${manifest.version})`, {
      path: where,
      fix: `point at an adapters/ folder written by kd run (format ${PLUGIN_STATE_FORMAT} v${PLUGIN_STATE_VERSION})`,
    });
  }
  const list = tensorsOf(plugin);
  const have = list.map(({ kind, v, i }) => `${kind}s/${i} [${v.shape}]`);
  const want = manifest.tensors.map((t) => `${t.key} [${t.shape}]`);
  if (have.join(';') !== want.join(';')) {
    throw new KdError('KD_SHAPE_MISMATCH', `plugin '${plugin.name}' holds ${have.join(', ') || 'no tensors'}, the saved state ${want.join(', ') || 'none'}`, {
      path: where,
      fix: 'build the plugin from the same spec entry (same options, same tap shapes) as the run that saved it',
    });
  }
  const buf = weights instanceof Uint8Array ? weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength) : weights;
  const specs = manifest.weightsManifest.flatMap((g) => g.weights);
  const decoded = tf.io.decodeWeights(buf as ArrayBuffer, specs);
  for (const { kind, v, i } of list) {
    const t = decoded[`${kind}s/${i}`];
    v.assign(t);
  }
  Object.values(decoded).forEach((t) => t.dispose());
  if (manifest.state !== null && manifest.state !== undefined) plugin.setState?.(manifest.state);
}
