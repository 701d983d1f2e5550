// The runner's Node side: files (storage, checkpoints, saved plugin states), `packages:` loading and
// backend detection. Everything else of @tfkd/engine is platform-neutral.
import { ContainerModule } from 'inversify';
import { BACKEND_PROVIDER, STORAGE } from '@tfkd/kd-core';
import { nodeBackends } from './backends';
import { nodeStorage } from './storage';

export * from './backends';
export * from './checkpoint-files';
export * from './packages';
export * from './plugin-state-files';
export * from './storage';
export * from './teacher-checkpoints';

/** The runner on Node: files as storage (STORAGE) and the backend providers (tfjs-node detected, wasm, cpu). */
export const nodeModule = new ContainerModule((o) => {
  o.bind(STORAGE).toConstantValue(nodeStorage);
  for (const b of nodeBackends) o.bind(BACKEND_PROVIDER).toConstantValue(b);
});
export * from './teacher-worker';
