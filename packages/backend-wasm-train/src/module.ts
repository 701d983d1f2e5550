import { BACKEND_PROVIDER, type BackendProvider } from '@tfkd/kd-core';
import { ContainerModule } from 'inversify';
import { initWasmBackend } from './init';

/** The wasm backend with the training kernels registered: what `backend: auto` prefers after tfjs-node. */
export const wasmTrainingBackend: BackendProvider = {
  name: 'wasm',
  priority: 10,
  label: 'wasm + training kernels (@tfkd/backend-wasm-train)',
  init: () => initWasmBackend(),
};

/** Binds the wasm-with-training-kernels provider to BACKEND_PROVIDER. */
export const wasmTrainModule = new ContainerModule((o) => {
  o.bind<BackendProvider>(BACKEND_PROVIDER).toConstantValue(wasmTrainingBackend);
});
export const kdModule = wasmTrainModule;
