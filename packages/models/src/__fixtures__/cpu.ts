import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';

/** Selects the cpu backend for a spec, without its one-off "install tfjs-node" console banner. */
export async function useCpu(): Promise<void> {
  await tf.setBackend('cpu');
  (tf.backend() as unknown as { firstUse: boolean }).firstUse = false;
}
