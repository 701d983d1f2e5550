import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { KdError } from '@tfkd/kd-core';
import { toTensors } from './tensors';

beforeAll(async () => {
  // The cpu backend advises installing tfjs-node on first use; not relevant here.
  jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  await tf.setBackend('cpu');
});

describe('toTensors', () => {
  it('reshapes x to [n, ...inputShape] and keeps y as int32', () => {
    const batch = {
      x: Float32Array.from([0, 0.25, 0.5, 0.75, 1, 0.125]),
      y: Int32Array.from([2, 0, 1]),
      n: 3,
    };
    const { x, y } = toTensors(batch, [1, 2, 1]);
    expect(x.shape).toEqual([3, 1, 2, 1]);
    expect(x.dtype).toBe('float32');
    expect(Array.from(x.dataSync())).toEqual([0, 0.25, 0.5, 0.75, 1, 0.125]);
    expect(y.shape).toEqual([3]);
    expect(y.dtype).toBe('int32');
    expect(Array.from(y.dataSync())).toEqual([2, 0, 1]);
    tf.dispose([x, y]);
  });

  it('accepts a flat input shape', () => {
    const { x, y } = toTensors({ x: Float32Array.from([1, 2, 3, 4]), y: Int32Array.from([0, 1]), n: 2 }, [2]);
    expect(x.arraySync()).toEqual([
      [1, 2],
      [3, 4],
    ]);
    tf.dispose([x, y]);
  });

  it('rejects a shape that does not fit', () => {
    try {
      toTensors({ x: new Float32Array(6), y: new Int32Array(3), n: 3 }, [28, 28, 1]);
      throw new Error('no error');
    } catch (e) {
      expect(e).toBeInstanceOf(KdError);
      expect((e as KdError).code).toBe('KD_SHAPE_MISMATCH');
      expect((e as KdError).path).toBe('inputShape');
      expect((e as KdError).message).toBe(
        'toTensors: a batch of 3 with 6 values and 3 labels does not fit inputShape [28, 28, 1] (expected 2352 values and 3 labels)',
      );
    }
  });
});
