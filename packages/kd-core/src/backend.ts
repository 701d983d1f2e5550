import * as tf from '@tensorflow/tfjs-core';
import { KdError } from './errors';
import type { BackendProvider } from './tokens';

export type BackendName = 'auto' | 'wasm' | 'cpu' | 'tensorflow';

export interface SelectedBackend {
  /** The tfjs backend now active (`wasm`, `cpu`, `tensorflow`). */
  name: string;
  /** The provider's label (`wasm + training kernels`). */
  label: string;
  requested: BackendName;
  /** Why `auto` skipped a faster backend. */
  skipped: string[];
}

function optionalRequire(name: string): boolean {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- optional peer, detected at run time
    require(name);
    return true;
  } catch {
    return false;
  }
}

/** Built-in providers: tfjs-node (optional peer, detected), plain wasm (no conv training kernels), cpu. */
export const BUILTIN_BACKENDS: BackendProvider[] = [
  {
    name: 'tensorflow',
    priority: 0,
    label: 'tfjs-node',
    async init() {
      const ok = optionalRequire('@tensorflow/tfjs-node-gpu') || optionalRequire('@tensorflow/tfjs-node');
      return ok && (await tf.setBackend('tensorflow'));
    },
  },
  {
    name: 'wasm',
    priority: 0,
    label: 'wasm (no conv training kernels: add @tfkd/backend-wasm-train)',
    async init() {
      return optionalRequire('@tensorflow/tfjs-backend-wasm') && (await tf.setBackend('wasm').catch(() => false));
    },
  },
  {
    name: 'cpu',
    priority: 0,
    label: 'cpu',
    async init() {
      return optionalRequire('@tensorflow/tfjs-backend-cpu') && (await tf.setBackend('cpu'));
    },
  },
];

/**
 * `auto` picks tfjs-node(-gpu) where installed, else wasm (with the training kernels when their
 * provider is bound), else cpu. A named backend that cannot start is an error, not a fallback.
 */
export async function selectBackend(requested: BackendName, bound: readonly BackendProvider[] = []): Promise<SelectedBackend> {
  const pick = (name: string): BackendProvider[] =>
    [...bound, ...BUILTIN_BACKENDS].filter((p) => p.name === name).sort((a, b) => b.priority - a.priority);
  const order = requested === 'auto' ? ['tensorflow', 'wasm', 'cpu'] : [requested];
  const skipped: string[] = [];
  for (const name of order) {
    for (const p of pick(name)) {
      let ok = false;
      try {
        ok = await p.init();
      } catch {
        ok = false;
      }
      if (ok) {
        await tf.ready();
        return { name: tf.getBackend(), label: p.label, requested, skipped };
      }
      skipped.push(`${p.label}: not available`);
    }
  }
  throw new KdError('KD_BACKEND_UNAVAILABLE', `backend '${requested}' cannot be used here (${skipped.join('; ')})`, {
    path: 'backend',
    fix:
      requested === 'tensorflow'
        ? '@tensorflow/tfjs-node needs to download its binary at install time; use backend: auto (wasm) here'
        : 'install @tensorflow/tfjs-backend-wasm or @tensorflow/tfjs-backend-cpu, or use backend: auto',
  });
}
