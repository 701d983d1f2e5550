/**
 * Identity for the wasm backend — a *replacement*: tfjs-backend-wasm 4.22 copies the whole buffer
 * (makeOutput + set), and the gradient tape calls Identity for every pass-through gradient (53 times
 * per cnn-large training step, ~25 ms at batch 128). Tensors are immutable, so — as the cpu backend
 * and the wasm Reshape kernel do — the output shares the input's data and takes a reference on it.
 * Strings keep the native behaviour.
 */
import { Identity, type KernelBackend, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';

export function makeIdentityWasm(native: KernelConfig): KernelConfig {
  const kernelFunc: KernelFunc = (args) => {
    const x = args.inputs.x as TensorInfo;
    if (x.dtype === 'string') return native.kernelFunc(args);
    (args.backend as KernelBackend).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape.slice(), dtype: x.dtype };
  };
  return { kernelName: Identity, backendName: 'wasm', setupFunc: native.setupFunc, disposeFunc: native.disposeFunc, kernelFunc };
}
