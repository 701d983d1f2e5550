import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { selectBackend } from './backend';
import { fixCpuKernels, resizeNearestNeighborGradCpu } from './cpu-kernels';

/** d/dx Σ dy·up×2(x) for x [2, 1, 1, 1] and dy = 1…8 [2, 2, 2, 1]: per image the sum of its four dy. */
function upsamplingGrad(): number[] {
  return tf.tidy(() => {
    const dy = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2, 1]);
    const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [2, 2]), dy)))(tf.zeros([2, 1, 1, 1]));
    return Array.from(g.dataSync());
  });
}

describe('cpu kernel corrections', () => {
  it('ResizeNearestNeighborGrad: stock tfjs-backend-cpu sums dy 2+3+4+5 = 14 for the second image (wrong); corrected 1+2+3+4 = 10, 5+6+7+8 = 26', async () => {
    await tf.setBackend('cpu');
    const stock = tf.getKernel('ResizeNearestNeighborGrad', 'cpu');
    expect(stock?.kernelFunc).not.toBe(resizeNearestNeighborGradCpu);
    // When this fails, tfjs has fixed its kernel: drop the correction (cpu-kernels.ts).
    expect(upsamplingGrad()).toEqual([10, 14]);
    const b = await selectBackend('cpu');
    expect(b.name).toBe('cpu');
    expect(tf.getKernel('ResizeNearestNeighborGrad', 'cpu')?.kernelFunc).toBe(resizeNearestNeighborGradCpu);
    expect(upsamplingGrad()).toEqual([10, 26]);
    fixCpuKernels(); // idempotent
    expect(upsamplingGrad()).toEqual([10, 26]);
  });

  it('ResizeNearestNeighborGrad (corrected) passes a finite-difference check: batch 3, 2×3 → 5×7, 2 channels, with and without alignCorners', async () => {
    await selectBackend('cpu');
    for (const alignCorners of [false, true]) {
      const w = tf.randomNormal([3, 5, 7, 2], 0, 1, 'float32', 4);
      const x0 = Array.from(tf.randomNormal([3, 2, 3, 2], 0, 1, 'float32', 5).dataSync());
      const r = finiteDifferenceCheck((x) => tf.sum(tf.mul(tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [5, 7], alignCorners), w)) as tf.Scalar, x0, [3, 2, 3, 2]);
      expect(r.maxRelError).toBeLessThan(1e-2);
      w.dispose();
    }
  });
});
