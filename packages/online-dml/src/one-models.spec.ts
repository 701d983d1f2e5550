import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { loadModel, saveModel } from '@tfkd/models';
import fc from 'fast-check';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { buildOneCnn, buildOneMlp, oneCnnDefinition, oneMlpDefinition } from './one-models';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** The model with outputs [logits, branch0, branch1, branch2, gate]. */
function probe(m: tfl.LayersModel): tfl.LayersModel {
  const taps = ['branch0', 'branch1', 'branch2', 'gate'].map((n) => m.getLayer(n).output as tfl.SymbolicTensor);
  return tfl.model({ inputs: m.inputs, outputs: [m.outputs[0], ...taps] });
}

function forward(p: tfl.LayersModel, x: tf.Tensor): { logits: number[][]; branches: number[][][]; gate: number[][] } {
  return tf.tidy(() => {
    const out = (p.predict(x) as tf.Tensor[]).map((t) => t.arraySync() as number[][]);
    return { logits: out[0], branches: out.slice(1, 4), gate: out[4] };
  });
}

const cases = [
  { def: oneMlpDefinition, shape: [4, 4, 1], extra: { hidden: 8, branchHidden: 6 } },
  { def: oneCnnDefinition, shape: [8, 8, 1], extra: {} },
];

describe.each(cases)('$def.id', ({ def, shape, extra }) => {
  const model = def.build({ inputShape: shape, numClasses: 5, seed: 3, ...extra });
  const p = probe(model);
  const d = shape.reduce((a, b) => a * b, 1);
  afterAll(() => model.dispose());

  it('exposes its declared taps as real layers, the gate [3] and branch logits [5]', () => {
    for (const t of def.taps) expect(model.getLayer(t)).toBeDefined();
    expect(model.getLayer('gate').outputShape).toEqual([null, 3]);
    expect(model.getLayer('branch1').outputShape).toEqual([null, 5]);
    expect(model.outputs[0].shape).toEqual([null, 5]);
  });

  it('gate weights are positive and sum to 1 for any input; logits = Σ_i g_i · z_i', () => {
    fc.assert(
      fc.property(fc.array(fc.float({ min: -1000, max: 1000, noNaN: true }), { minLength: 2 * d, maxLength: 2 * d }), (xs) => {
        const x = tf.tensor(xs, [2, ...shape]);
        const f = forward(p, x);
        x.dispose();
        f.gate.forEach((g) => {
          expect(g.every((v) => v >= 0)).toBe(true);
          expect(Math.abs(g.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-5);
        });
        f.logits.forEach((row, b) =>
          row.forEach((v, k) => {
            const want = f.branches.reduce((s, z, i) => s + f.gate[b][i] * z[b][k], 0);
            expect(Math.abs(v - want)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(want)));
          }),
        );
      }),
      { numRuns: 15, seed: 42 },
    );
  });

  it('is reproducible for a seed, and its branches start different', () => {
    const again = def.build({ inputShape: shape, numClasses: 5, seed: 3, ...extra });
    const [a, b] = tf.tidy(() => [model.getLayer('branch0').getWeights()[0].dataSync(), again.getLayer('branch0').getWeights()[0].dataSync()]);
    expect(Array.from(b)).toEqual(Array.from(a));
    const c = tf.tidy(() => model.getLayer('branch1').getWeights()[0].dataSync());
    expect(Array.from(c)).not.toEqual(Array.from(a));
    again.dispose();
  });

  it('saves and loads (in memory, and through @tfkd/models saveModel/loadModel) with the same outputs', async () => {
    const x = tf.randomUniform([3, ...shape], 0, 1, 'float32', 5);
    const want = tf.tidy(() => (model.predict(x) as tf.Tensor).dataSync());
    let artifacts: tf.io.ModelArtifacts | undefined;
    await model.save(
      tf.io.withSaveHandler(async (a) => {
        artifacts = a;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    const fromMemory = await tfl.loadLayersModel(tf.io.fromMemory(artifacts as tf.io.ModelArtifacts));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'one-model-'));
    try {
      await saveModel(model, dir);
      const fromDisk = await loadModel(dir);
      for (const m of [fromMemory, fromDisk]) {
        const got = tf.tidy(() => (m.predict(x) as tf.Tensor).dataSync());
        Array.from(got).forEach((v, i) => expect(Math.abs(v - want[i])).toBeLessThan(1e-6));
        expect(m.getLayer('gate').outputShape).toEqual([null, 3]);
        m.dispose();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      x.dispose();
    }
  });
});

describe('ONE model options', () => {
  it('branches: 4 gives a 4-way gate', () => {
    const m = buildOneMlp({ inputShape: [2, 2, 1], numClasses: 3, branches: 4, hidden: 4, branchHidden: 4, seed: 2 });
    expect(m.getLayer('gate').outputShape).toEqual([null, 4]);
    expect(m.getLayer('branch3').outputShape).toEqual([null, 3]);
    // and the fourth branch counts: logits = Σ_{i<4} g_i·z_i with the four gate weights summing to 1
    const names = ['branch0', 'branch1', 'branch2', 'branch3', 'gate'];
    const p4 = tfl.model({ inputs: m.inputs, outputs: [m.outputs[0], ...names.map((n) => m.getLayer(n).output as tfl.SymbolicTensor)] });
    const out = tf.tidy(() => (p4.predict(tf.tensor4d([0.3, -1, 2, 0.5, 1, 0, -0.4, 0.8], [2, 2, 2, 1])) as tf.Tensor[]).map((t) => t.arraySync() as number[][]));
    const [logits, z, gate] = [out[0], out.slice(1, 5), out[5]];
    gate.forEach((g) => expect(g.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6));
    logits.forEach((row, b) => row.forEach((v, k) => expect(v).toBeCloseTo(z.reduce((s, zi, i) => s + gate[b][i] * zi[b][k], 0), 5)));
    // not vacuous: leaving branch3 out changes the sum
    expect(Math.abs(logits[0][0] - z.slice(0, 3).reduce((s, zi, i) => s + gate[0][i] * zi[0][0], 0))).toBeGreaterThan(1e-4);
    m.dispose();
  });

  it('rejects bad options with the option path', () => {
    expect(() => buildOneMlp({ inputShape: [2, 2, 1], numClasses: 3, branches: 1 })).toThrow("model 'one-mlp': branches must be an integer ≥ 2, got 1");
    expect(() => buildOneCnn({ inputShape: [4, 4], numClasses: 3 })).toThrow("model 'one-cnn': inputShape must be [height, width, channels]");
    expect(() => buildOneMlp({ inputShape: [2, 2, 1], numClasses: 3, hidden: 0 })).toThrow(expect.objectContaining({ code: 'KD_SPEC_INVALID', path: 'options.hidden' }));
  });
});
