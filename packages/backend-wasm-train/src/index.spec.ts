import { tf, useBackend } from './__fixtures__/harness';
import { initWasmBackend, registerWasmTrainingKernels, WASM_KERNEL_REPLACEMENTS, WASM_FUSED_KERNELS, WASM_TRAINING_KERNELS, wasmThreadsCount } from './index';
import { conv2DBackpropInputWasmConfig } from './conv2d-backprop-input';
import { capturedSharedMemory, prepareNodeThreads } from './threads';

/** Kernels we do not need for training (complex numbers, FFT, ragged, strings, drawing). */
const NOT_NEEDED = new Set([
  'Complex', 'ComplexAbs', 'Real', 'Imag', 'FFT', 'IFFT', 'RaggedGather', 'RaggedRange', 'RaggedTensorToTensor',
  'StaticRegexReplace', 'Draw',
]);

describe('registration', () => {
  it('importing the package registers every kernel, for wasm only', () => {
    for (const name of WASM_TRAINING_KERNELS) {
      expect(tf.getKernel(name, 'wasm')).toBeDefined();
    }
    expect(WASM_TRAINING_KERNELS).toEqual([
      'Conv2DBackpropFilter',
      'DepthwiseConv2dNativeBackpropFilter',
      'DepthwiseConv2dNativeBackpropInput',
      'UnsortedSegmentSum',
      'Einsum',
    ]);
  });

  it('is idempotent and returns the kernel names', () => {
    const first = registerWasmTrainingKernels();
    const second = registerWasmTrainingKernels();
    expect(first).toEqual([...WASM_TRAINING_KERNELS, ...WASM_FUSED_KERNELS, ...WASM_KERNEL_REPLACEMENTS]);
    expect(WASM_FUSED_KERNELS).toEqual(['TfkdFusedAdam', 'TfkdFusedSgd', 'TfkdReluGrad']);
    expect(second).toEqual(first);
  });

  it('replaces the slow native Conv2DBackpropInput, and can restore it', () => {
    registerWasmTrainingKernels();
    expect(tf.getKernel('Conv2DBackpropInput', 'wasm')?.kernelFunc).toBe(conv2DBackpropInputWasmConfig.kernelFunc);
    expect(registerWasmTrainingKernels({ replaceSlowKernels: false })).toEqual([...WASM_TRAINING_KERNELS, ...WASM_FUSED_KERNELS]);
    const native = tf.getKernel('Conv2DBackpropInput', 'wasm');
    expect(native?.kernelFunc).not.toBe(conv2DBackpropInputWasmConfig.kernelFunc);
    registerWasmTrainingKernels();
    expect(tf.getKernel('Conv2DBackpropInput', 'wasm')?.kernelFunc).toBe(conv2DBackpropInputWasmConfig.kernelFunc);
  });

  it('closes the gap: every cpu kernel except complex/FFT/ragged/string ones now exists on wasm', async () => {
    await useBackend('wasm');
    const wasm = new Set(tf.getKernelsForBackend('wasm').map((k) => k.kernelName));
    const missing = tf
      .getKernelsForBackend('cpu')
      .map((k) => k.kernelName)
      .filter((k) => !wasm.has(k) && !NOT_NEEDED.has(k));
    expect(missing).toEqual([]);
  });
});

describe('initWasmBackend', () => {
  it('sets the wasm backend and reports one thread by default', async () => {
    await tf.setBackend('cpu');
    await expect(initWasmBackend()).resolves.toBe(true);
    expect(tf.getBackend()).toBe('wasm');
    expect(wasmThreadsCount()).toBe(1);
  });

  it('resolves false (no throw) when tfjs-backend-wasm cannot be loaded', async () => {
    let result: boolean | undefined;
    await jest.isolateModulesAsync(async () => {
      jest.doMock('@tensorflow/tfjs-backend-wasm', () => {
        throw new Error('Cannot find module');
      });
      const { initWasmBackend: init } = await import('./init');
      result = await init();
    });
    jest.dontMock('@tensorflow/tfjs-backend-wasm');
    expect(result).toBe(false);
  });

  it('thread preparation patches only temporarily (os.cpus, URL.createObjectURL)', () => {
    // The live module object (what emscripten reads), not an import-star copy.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const os = require('os') as typeof import('os');
    const cpus = os.cpus().length;
    const create = URL.createObjectURL;
    const wa = (globalThis as unknown as { WebAssembly: { Memory: new (d: object) => object } }).WebAssembly;
    const Memory = wa.Memory;
    const calls: number[] = [];
    const restore = prepareNodeThreads({ setThreadsCount: (n) => calls.push(n) }, 3);
    expect(restore).not.toBeNull();
    expect(os.cpus()).toHaveLength(6);
    expect(calls).toEqual([3]);
    // The shared memory the threaded build creates is recorded (the SIMD loops are instantiated on it).
    const shared = new wa.Memory({ initial: 1, maximum: 2, shared: true });
    expect(shared).toBeInstanceOf(Memory);
    expect(capturedSharedMemory()).toBe(shared);
    restore?.();
    expect(os.cpus()).toHaveLength(cpus);
    expect(URL.createObjectURL).toBe(create);
    expect(wa.Memory).toBe(Memory);
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  });
});
