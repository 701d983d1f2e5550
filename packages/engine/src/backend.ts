import * as tf from '@tensorflow/tfjs-core';
import { type BackendProvider, KdError } from '@tfkd/kd-core';
import { fixCpuKernels } from './cpu-kernels';

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

/** Whether a tfjs backend of this name is registered (its package was imported by the host). */
function registered(name: string): boolean {
  return tf.findBackendFactory(name) !== null;
}

/**
 * Built-in providers: any backend whose package the host imported (`@tensorflow/tfjs-backend-cpu`,
 * `-wasm`, tfjs-node). On Node, `nodeBackends` from `@tfkd/engine/node` import the installed ones
 * first (tfjs-node is an optional peer, detected there); in a browser the page's bundle imports them.
 */
export const BUILTIN_BACKENDS: BackendProvider[] = [
  {
    name: 'tensorflow',
    priority: 0,
    label: 'tfjs-node',
    async init() {
      return registered('tensorflow') && (await tf.setBackend('tensorflow'));
    },
  },
  {
    name: 'wasm',
    priority: 0,
    label: 'wasm (no conv training kernels: add @tfkd/backend-wasm-train)',
    async init() {
      return registered('wasm') && (await tf.setBackend('wasm').catch(() => false));
    },
  },
  {
    name: 'cpu',
    priority: 0,
    label: 'cpu',
    async init() {
      if (!registered('cpu')) return false;
      fixCpuKernels(); // tfjs-backend-cpu kernels with a known error (cpu-kernels.ts)
      return tf.setBackend('cpu');
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
