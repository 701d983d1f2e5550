import * as tf from '@tensorflow/tfjs-core';
import type { SymbolicTensor } from '@tensorflow/tfjs-layers';
import { isKdError, type KdError } from '@tfkd/kd-core';
import { useCpu } from './__fixtures__/cpu';
import { buildTappedModel, describeTaps, tapLayerNames } from './taps';
import { getModelDefinition } from './zoo';

beforeAll(useCpu);

/** A fixed, non-random input: x[i] = ((i * 37) % 101) / 101. */
function fixedInput(shape: number[]): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(
    Float32Array.from({ length: n }, (_, i) => ((i * 37) % 101) / 101),
    shape,
  );
}

function arr(t: tf.Tensor): number[] {
  return Array.from(t.dataSync());
}

describe('tapLayerNames / describeTaps', () => {
  it('lists every non-input layer with its output shape', () => {
    const m = getModelDefinition('mlp-student').build({ inputShape: [28, 28, 1], numClasses: 10, seed: 1 });
    expect(tapLayerNames(m)).toEqual(['flatten', 'fc1', 'fc2', 'embedding', 'logits']);
    expect(describeTaps(m)).toEqual([
      { name: 'flatten', className: 'Flatten', outputShape: [null, 784] },
      { name: 'fc1', className: 'Dense', outputShape: [null, 128] },
      { name: 'fc2', className: 'Dense', outputShape: [null, 128] },
      { name: 'embedding', className: 'Activation', outputShape: [null, 128] },
      { name: 'logits', className: 'Dense', outputShape: [null, 10] },
    ]);
  });
});

describe('buildTappedModel', () => {
  it('mlp: outputs [logits, fc1, embedding] that match the original model and a hand computation', () => {
    const m = getModelDefinition('mlp').build({
      inputShape: [2, 2, 1],
      numClasses: 2,
      hidden: [3, 2],
      seed: 9,
    });
    // Hand-set weights so every output can be checked by hand.
    m.getLayer('fc1').setWeights([
      tf.tensor2d([
        [1, 0, -1],
        [0, 1, 0],
        [1, 1, 1],
        [0, -1, 2],
      ]),
      tf.tensor1d([0, 0.5, -4]),
    ]);
    m.getLayer('fc2').setWeights([
      tf.tensor2d([
        [1, 2],
        [1, 0],
        [0, -1],
      ]),
      tf.tensor1d([0, 1]),
    ]);
    m.getLayer('logits').setWeights([
      tf.tensor2d([
        [1, -1],
        [2, 0],
      ]),
      tf.tensor1d([0.25, 0]),
    ]);
    const tapped = buildTappedModel(m, ['fc1', 'embedding']);
    expect(tapped.outputs.map((o) => o.shape)).toEqual([
      [null, 2],
      [null, 3],
      [null, 2],
    ]);
    const x = tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]);
    const [logits, fc1, emb] = tapped.predict(x) as tf.Tensor[];
    // flatten = [1,2,3,4]; fc1 pre = [1+3, 2+3-4, -1+3+8] + [0,0.5,-4] = [4, 1.5, 6] (all > 0 so relu keeps them).
    expect(arr(fc1)).toEqual([4, 1.5, 6]);
    // fc2 = relu([4+1.5, 8-6] + [0,1]) = [5.5, 3]; embedding is the identity on it.
    expect(arr(emb)).toEqual([5.5, 3]);
    // logits = [5.5+6, -5.5] + [0.25, 0] = [11.75, -5.5].
    expect(arr(logits)).toEqual([11.75, -5.5]);
    expect(arr(m.predict(x) as tf.Tensor)).toEqual([11.75, -5.5]);
  });

  it('shares weights with the original model (same layer objects)', () => {
    const m = getModelDefinition('mlp-student').build({ inputShape: [28, 28, 1], numClasses: 10, seed: 2 });
    const tapped = buildTappedModel(m, ['fc2']);
    expect(tapped.getLayer('fc1')).toBe(m.getLayer('fc1'));
    expect(tapped.countParams()).toBe(m.countParams());
    const x = fixedInput([2, 28, 28, 1]);
    const before = arr((tapped.predict(x) as tf.Tensor[])[0]);
    expect(before).toEqual(arr(m.predict(x) as tf.Tensor));
    // Zero fc2 on the original: the tapped fc2 output becomes relu(0) = 0 and logits = logits bias = 0.
    const [k, b] = m.getLayer('fc2').getWeights();
    m.getLayer('fc2').setWeights([tf.zerosLike(k), tf.zerosLike(b)]);
    const [logits, fc2] = tapped.predict(x) as tf.Tensor[];
    expect(arr(fc2)).toEqual(new Array(2 * 128).fill(0));
    expect(arr(logits)).toEqual(new Array(2 * 10).fill(0));
  });

  it('cnn-small: block1 = maxpool2(conv1) and embedding = flatten(block2), exactly', () => {
    const m = getModelDefinition('cnn-small').build({ inputShape: [8, 8, 1], numClasses: 3, seed: 4 });
    const tapped = buildTappedModel(m, ['conv1', 'block1', 'block2', 'embedding']);
    const [logits, conv1, block1, block2, emb] = tapped.predict(fixedInput([1, 8, 8, 1])) as tf.Tensor[];
    expect(block1.shape).toEqual([1, 4, 4, 16]);
    expect(arr(block1)).toEqual(arr(tf.maxPool(conv1 as tf.Tensor4D, 2, 2, 'valid')));
    expect(Math.min(...arr(conv1))).toBe(0); // post-ReLU
    expect(arr(emb)).toEqual(arr(block2));
    expect(arr(logits)).toEqual(arr(m.predict(fixedInput([1, 8, 8, 1])) as tf.Tensor));
  });

  it('resnet-student: stage taps are NHWC and embedding is their global average', () => {
    const m = getModelDefinition('resnet-student').build({
      inputShape: [28, 28, 1],
      numClasses: 10,
      seed: 1,
    });
    const tapped = buildTappedModel(m, ['stem', 'block1', 'block2', 'block3', 'embedding']);
    const outs = tapped.predict(fixedInput([1, 28, 28, 1])) as tf.Tensor[];
    expect(outs.map((o) => o.shape)).toEqual([
      [1, 10],
      [1, 28, 28, 16],
      [1, 28, 28, 16],
      [1, 14, 14, 32],
      [1, 7, 7, 64],
      [1, 64],
    ]);
    const mean = arr(tf.mean(outs[4], [1, 2]));
    arr(outs[5]).forEach((v, i) => expect(v).toBeCloseTo(mean[i], 5));
  });

  it('with no taps returns a single-output model', () => {
    const m = getModelDefinition('mlp-student').build({ inputShape: [4, 4, 1], numClasses: 2 });
    const t = buildTappedModel(m, []);
    expect(t.outputs).toHaveLength(1);
    expect((t.outputs[0] as SymbolicTensor).shape).toEqual([null, 2]);
    // …computing the original's logits
    const x = fixedInput([3, 4, 4, 1]);
    expect(arr(t.predict(x) as tf.Tensor)).toEqual(arr(m.predict(x) as tf.Tensor));
  });

  it('unknown tap → KD_TAP_UNKNOWN naming the tap, the model and the layers with shapes', () => {
    const m = getModelDefinition('mlp-student').build({ inputShape: [28, 28, 1], numClasses: 10 });
    for (const bad of ['fc3', 'input']) {
      let err: KdError | undefined;
      try {
        buildTappedModel(m, ['fc1', bad]);
      } catch (e) {
        if (isKdError(e)) err = e;
      }
      expect(err?.code).toBe('KD_TAP_UNKNOWN');
      expect(err?.message).toContain(`tap '${bad}' is not a layer of model 'mlp-student'`);
      expect(err?.message).toContain(
        'flatten [N,784], fc1 [N,128], fc2 [N,128], embedding [N,128], logits [N,10]',
      );
      expect(err?.fix).toContain('mlp-student');
    }
  });
});
