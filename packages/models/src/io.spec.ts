import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { loadLayersModel, type LayersModel } from '@tensorflow/tfjs-layers';
import { isKdError, type KdError } from '@tfkd/kd-core';
import { useCpu } from './__fixtures__/cpu';
import { expectedWeightBytes, loadModel, MODEL_JSON, saveModel, WEIGHTS_BIN, writeFileAtomic } from './io';
import { buildTappedModel, tapLayerNames } from './taps';
import { getModelDefinition } from './zoo';

let tmp: string;
beforeAll(useCpu);
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tfkd-models-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

function fixedInput(shape: number[]): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(
    Float32Array.from({ length: n }, (_, i) => ((i * 37) % 101) / 101),
    shape,
  );
}

/** resnet-student on a small input, with every weight (BN moving statistics too) set to seeded noise. */
function perturbedResnet(): LayersModel {
  const m = getModelDefinition('resnet-student').build({ inputShape: [12, 12, 1], numClasses: 4, seed: 3 });
  m.setWeights(m.getWeights().map((w, i) => tf.abs(tf.randomNormal(w.shape, 0.5, 0.2, 'float32', 100 + i))));
  return m;
}

async function kdErrorOf(p: Promise<unknown>): Promise<KdError> {
  try {
    await p;
  } catch (e) {
    if (isKdError(e)) return e;
    throw e;
  }
  throw new Error('expected a KdError');
}

describe('saveModel / loadModel', () => {
  it('round-trips weights exactly, predictions exactly, and layer names (so taps work)', async () => {
    const m = perturbedResnet();
    const dir = path.join(tmp, 'nested', 'model');
    await saveModel(m, dir);
    expect(fs.readdirSync(dir).sort()).toEqual([MODEL_JSON, WEIGHTS_BIN]); // no temp files left
    const loaded = await loadModel(dir);
    expect(loaded.name).toBe('resnet-student');
    expect(tapLayerNames(loaded)).toEqual(tapLayerNames(m));
    const a = m.getWeights();
    const b = loaded.getWeights();
    expect(b.map((w) => w.shape)).toEqual(a.map((w) => w.shape));
    a.forEach((w, i) => expect(Array.from(b[i].dataSync())).toEqual(Array.from(w.dataSync())));
    const x = fixedInput([2, 12, 12, 1]);
    expect(Array.from((loaded.predict(x) as tf.Tensor).dataSync())).toEqual(
      Array.from((m.predict(x) as tf.Tensor).dataSync()),
    );
    const tapped = buildTappedModel(loaded, ['block3', 'embedding']);
    const [, block3, embedding] = tapped.predict(x) as tf.Tensor[];
    expect(block3.shape).toEqual([2, 3, 3, 64]);
    // the taps of the loaded model read the same values as the original's
    const [, block3Before, embeddingBefore] = buildTappedModel(m, ['block3', 'embedding']).predict(x) as tf.Tensor[];
    expect(Array.from(block3.dataSync())).toEqual(Array.from(block3Before.dataSync()));
    expect(Array.from(embedding.dataSync())).toEqual(Array.from(embeddingBefore.dataSync()));
  });

  it('writes the standard tfjs layers-model format', async () => {
    const m = getModelDefinition('mlp-student').build({ inputShape: [4, 4, 1], numClasses: 3, seed: 5 });
    await saveModel(m, tmp);
    const json = JSON.parse(fs.readFileSync(path.join(tmp, MODEL_JSON), 'utf8'));
    expect(json.format).toBe('layers-model');
    expect(json.generatedBy).toMatch(/^TensorFlow\.js tfjs-layers v4\./);
    expect(json.modelTopology.class_name).toBe('Model');
    expect(json.weightsManifest).toHaveLength(1);
    expect(json.weightsManifest[0].paths).toEqual(['weights.bin']);
    expect(
      json.weightsManifest[0].weights.map((w: { name: string; shape: number[] }) => [w.name, w.shape]),
    ).toEqual([
      ['fc1/kernel', [16, 128]],
      ['fc1/bias', [128]],
      ['fc2/kernel', [128, 128]],
      ['fc2/bias', [128]],
      ['logits/kernel', [128, 3]],
      ['logits/bias', [3]],
    ]);
    // float32 weights: (16*128 + 128 + 128*128 + 128 + 128*3 + 3) * 4 bytes.
    const bytes = (2048 + 128 + 16384 + 128 + 384 + 3) * 4;
    expect(fs.statSync(path.join(tmp, WEIGHTS_BIN)).size).toBe(bytes);
    expect(expectedWeightBytes(json.weightsManifest[0].weights)).toBe(bytes);
    // Readable by plain tfjs (fromMemory) too, not only by our own loader.
    const w = fs.readFileSync(path.join(tmp, WEIGHTS_BIN));
    const viaTf = await loadLayersModel(
      tf.io.fromMemory({
        modelTopology: json.modelTopology,
        weightSpecs: json.weightsManifest[0].weights,
        weightData: w.buffer.slice(w.byteOffset, w.byteOffset + w.byteLength),
      }),
    );
    expect(Array.from(viaTf.getLayer('fc2').getWeights()[0].dataSync())).toEqual(
      Array.from(m.getLayer('fc2').getWeights()[0].dataSync()),
    );
  });

  it('overwrites an existing save atomically', async () => {
    const a = getModelDefinition('mlp-student').build({ inputShape: [4, 4, 1], numClasses: 3, seed: 1 });
    const b = getModelDefinition('mlp-student').build({ inputShape: [4, 4, 1], numClasses: 3, seed: 2 });
    await saveModel(a, tmp);
    await saveModel(b, tmp);
    expect(fs.readdirSync(tmp).sort()).toEqual([MODEL_JSON, WEIGHTS_BIN]);
    const loaded = await loadModel(tmp);
    expect(Array.from(loaded.getWeights()[0].dataSync())).toEqual(Array.from(b.getWeights()[0].dataSync()));
  });

  it('truncated weights.bin → KD_MODEL_LOAD naming weights.bin', async () => {
    await saveModel(getModelDefinition('mlp-student').build({ inputShape: [4, 4, 1], numClasses: 3 }), tmp);
    const file = path.join(tmp, WEIGHTS_BIN);
    fs.truncateSync(file, 1000);
    const e = await kdErrorOf(loadModel(tmp));
    expect(e.code).toBe('KD_MODEL_LOAD');
    expect(e.message).toBe(
      `${file}: holds 1000 bytes but model.json declares 76300 bytes of weights (truncated)`,
    );
    expect(e.path).toBe(file);
    expect(e.fix).toMatch(/re-save/);
  });

  it('missing or garbled files → KD_MODEL_LOAD naming the file', async () => {
    const missing = await kdErrorOf(loadModel(path.join(tmp, 'nope')));
    expect([missing.code, missing.path]).toEqual(['KD_MODEL_LOAD', path.join(tmp, 'nope', MODEL_JSON)]);
    expect(missing.message).toContain('file does not exist');

    await saveModel(getModelDefinition('mlp-student').build({ inputShape: [4, 4, 1], numClasses: 3 }), tmp);
    fs.rmSync(path.join(tmp, WEIGHTS_BIN));
    const noWeights = await kdErrorOf(loadModel(tmp));
    expect([noWeights.code, noWeights.path]).toEqual(['KD_MODEL_LOAD', path.join(tmp, WEIGHTS_BIN)]);

    fs.writeFileSync(path.join(tmp, MODEL_JSON), '{"modelTopology": {');
    const garbled = await kdErrorOf(loadModel(tmp));
    expect([garbled.code, garbled.path]).toEqual(['KD_MODEL_LOAD', path.join(tmp, MODEL_JSON)]);
    expect(garbled.message).toContain('is not valid JSON');

    fs.writeFileSync(path.join(tmp, MODEL_JSON), '{"hello": 1}');
    const notModel = await kdErrorOf(loadModel(tmp));
    expect(notModel.message).toContain('is not a tfjs layers model.json');

    fs.writeFileSync(
      path.join(tmp, MODEL_JSON),
      JSON.stringify({ modelTopology: { class_name: 'Nope', config: {} }, weightsManifest: [] }),
    );
    const badTopology = await kdErrorOf(loadModel(tmp));
    expect([badTopology.code, badTopology.path]).toEqual(['KD_MODEL_LOAD', path.join(tmp, MODEL_JSON)]);
  });

  it('writeFileAtomic failure → KD_OUTPUT_WRITE naming the file, no temp file left', async () => {
    fs.writeFileSync(path.join(tmp, 'blocker'), 'x');
    const target = path.join(tmp, 'blocker', 'model.json'); // parent is a file
    const e = await kdErrorOf(writeFileAtomic(target, 'data'));
    expect([e.code, e.path]).toEqual(['KD_OUTPUT_WRITE', target]);
    expect(fs.readdirSync(tmp)).toEqual(['blocker']);
  });
});
