import type { BackendProvider } from '@tfkd/kd-core';
import { BUILTIN_BACKENDS } from '../backend';

function optionalRequire(name: string): boolean {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- optional peer, detected at run time
    require(name);
    return true;
  } catch {
    return false;
  }
}

const PACKAGES: Record<string, string[]> = {
  tensorflow: ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'],
  wasm: ['@tensorflow/tfjs-backend-wasm'],
  cpu: ['@tensorflow/tfjs-backend-cpu'],
};

/**
 * The built-in backends on Node: each first imports its package when it is installed (tfjs-node(-gpu)
 * is an optional peer that cannot be installed everywhere, so it is detected, never required), then
 * starts as in a browser. Bind them (`nodeModule`) or pass them to `selectBackend`.
 */
export const nodeBackends: BackendProvider[] = BUILTIN_BACKENDS.map((p) => ({
  ...p,
  async init() {
    const found = PACKAGES[p.name].some(optionalRequire);
    return found && p.init();
  },
}));
