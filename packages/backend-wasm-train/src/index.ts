/**
 * @tfkd/backend-wasm-train — the gradient kernels tfjs-backend-wasm 4.22 lacks, so that CNNs (and
 * embeddings, einsum) train on the wasm backend. Importing the package registers them.
 */
import { registerWasmTrainingKernels } from './register';

export { registerWasmTrainingKernels, WASM_KERNEL_REPLACEMENTS, WASM_FUSED_KERNELS, WASM_TRAINING_KERNELS } from './register';
export type { RegisterOptions } from './register';
export { initWasmBackend, wasmThreadsCount } from './init';
export { fusedReluGradient, RELU_GRAD_KERNEL } from './relu-grad';
export type { InitWasmOptions } from './init';
export { conv2DBackpropFilterComposed, conv2DBackpropFilterWasm } from './conv2d-backprop-filter';
export type { Conv2DBackpropFilterWasmAttrs } from './conv2d-backprop-filter';
export { conv2DBackpropInputWasm } from './conv2d-backprop-input';
export type { Conv2DBackpropInputWasmAttrs } from './conv2d-backprop-input';

registerWasmTrainingKernels();
export { wasmTrainModule, wasmTrainingBackend, kdModule } from './module';
