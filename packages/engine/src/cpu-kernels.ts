import * as tf from '@tensorflow/tfjs-core';

// Corrections to kernels of @tensorflow/tfjs-backend-cpu, registered when the engine starts the cpu
// backend (backend.ts). Each replaces the stock kernel under the same name; cpu-kernels.spec.ts pins
// the stock kernel's error by hand values, so it fails — and the correction can go — once tfjs fixes it.

type CpuBackend = {
  data: { get(id: unknown): { values: Float32Array } };
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): tf.TensorInfo;
};

/**
 * The gradient of nearest-neighbour resizing (UpSampling2D; the detectors' FPN `up4`): every dy pixel
 * added onto the source pixel it was copied from. tfjs-backend-cpu 4.22 offsets dy by
 * `b · (images' batch stride)` instead of `b · (dy's batch stride)`, so from the second image of a
 * batch on it sums the wrong part of dy. Same loop order as the stock kernel (the same float sums),
 * offset fixed. Half-pixel centres are not an attribute of this gradient in tfjs 4.22.
 */
export const resizeNearestNeighborGradCpu: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const { images, dy } = inputs as { images: tf.TensorInfo; dy: tf.TensorInfo };
  const { alignCorners } = attrs as unknown as { alignCorners: boolean };
  const cpu = backend as unknown as CpuBackend;
  const [batch, xh, xw, depth] = images.shape;
  const [, yh, yw] = dy.shape;
  const dyv = cpu.data.get(dy.dataId).values;
  const out = new Float32Array(batch * xh * xw * depth);
  const scale = (x: number, y: number) => (alignCorners && y > 1 ? x - 1 : x) / (alignCorners && y > 1 ? y - 1 : y);
  const [hs, ws] = [scale(xh, yh), scale(xw, yw)];
  const src = (i: number, s: number, n: number) => Math.min(n - 1, alignCorners ? Math.round(i * s) : Math.floor(i * s));
  for (let n = 0; n < batch; n++) {
    for (let y = 0; y < yh; y++) {
      for (let x = 0; x < yw; x++) {
        const to = ((n * xh + src(y, hs, xh)) * xw + src(x, ws, xw)) * depth;
        const from = ((n * yh + y) * yw + x) * depth;
        for (let d = 0; d < depth; d++) out[to + d] += dyv[from + d];
      }
    }
  }
  return cpu.makeTensorInfo(images.shape, 'float32', out);
};

const FIXES: Record<string, tf.KernelFunc> = { ResizeNearestNeighborGrad: resizeNearestNeighborGradCpu };

/** Replace the stock cpu kernels that have a correction here (idempotent; a no-op without the cpu backend package). */
export function fixCpuKernels(): void {
  for (const [name, kernelFunc] of Object.entries(FIXES)) {
    const stock = tf.getKernel(name, 'cpu');
    if (!stock || stock.kernelFunc === kernelFunc) continue;
    tf.unregisterKernel(name, 'cpu');
    tf.registerKernel({ ...stock, kernelFunc });
  }
}
