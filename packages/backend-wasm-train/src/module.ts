import { BACKEND_PROVIDER, type BackendProvider } from '@tfkd/kd-core';
import { ContainerModule } from 'inversify';
import { initWasmBackend } from './init';

/**
 * The wasm backend with the training kernels registered: what `backend: auto` prefers after tfjs-node.
 * It also switches on the one-kernel ReLU gradient (same values bit for bit as tfjs's Step → Cast →
 * Multiply; see relu-grad.ts), which plain `initWasmBackend()` leaves off.
 */
export const wasmTrainingBackend: BackendProvider = {
  name: 'wasm',
  priority: 10,
  label: 'wasm + training kernels (@tfkd/backend-wasm-train)',
  init: () => initWasmBackend({ fusedReluGradient: true }),
};

/** Binds the wasm-with-training-kernels provider to BACKEND_PROVIDER. */
export const wasmTrainModule = new ContainerModule((o) => {
  o.bind<BackendProvider>(BACKEND_PROVIDER).toConstantValue(wasmTrainingBackend);
});
export const kdModule = wasmTrainModule;
