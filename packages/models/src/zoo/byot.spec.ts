import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { model as functionalModel, type LayersModel, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import { isKdError } from '@tfkd/kd-core';
import { useCpu } from '../__fixtures__/cpu';
import { countFlops } from '../flops';
import { loadModel, saveModel } from '../io';
import { getModelDefinition } from './index';

beforeAll(useCpu);

const MNIST = { inputShape: [28, 28, 1], numClasses: 10, seed: 1 };

function build(o: Record<string, unknown> = {}): LayersModel {
  return getModelDefinition('byot-resnet').build({ ...MNIST, ...o });
}

/** FLOPs of the part of `m` that computes these layers. */
function flopsUpTo(m: LayersModel, names: string[]): number {
  return countFlops(functionalModel({ inputs: m.inputs, outputs: names.map((n) => m.getLayer(n).output as SymbolicTensor) })).perImage;
}

describe('byot-resnet', () => {
  it('outputs [logits, head1, head2]; stage and head shapes at 28x28 (default widths 8/16/32)', () => {
    const m = build();
    expect(m.outputNames).toEqual(['logits', 'head1', 'head2']);
    expect(m.outputs.map((o) => o.shape)).toEqual([
      [null, 10],
      [null, 10],
      [null, 10],
    ]);
    const shape = (n: string) => m.getLayer(n).outputShape;
    expect(shape('stem')).toEqual([null, 14, 14, 8]);
    expect(shape('block1')).toEqual([null, 14, 14, 8]);
    expect(shape('block2')).toEqual([null, 7, 7, 16]);
    expect(shape('block3')).toEqual([null, 4, 4, 32]);
    // head k×k stride k: 14 → 4 needs k = 4; 7 → 4 needs k = 2 (same padding)
    expect(m.getLayer('head1_down_conv').getConfig()).toMatchObject({ kernelSize: [4, 4], strides: [4, 4] });
    expect(m.getLayer('head2_down_conv').getConfig()).toMatchObject({ kernelSize: [2, 2], strides: [2, 2] });
    expect(shape('head1_down')).toEqual([null, 4, 4, 8]);
    expect(shape('head1_feat')).toEqual([null, 32]);
    expect(shape('head2_feat')).toEqual([null, 32]);
    expect(shape('embedding')).toEqual([null, 32]);
    m.dispose();
  });

  it('parameters and FLOPs, counted by hand (no batch norm)', () => {
    const m = build();
    // trunk: stem 3·3·1·8+8 = 80; s1 two 3·3·8·8+8 = 584; s2 3·3·8·16+16 = 1168, 3·3·16·16+16 = 2320,
    // proj 8·16+16 = 144; s3 3·3·16·32+32 = 4640, 3·3·32·32+32 = 9248, proj 16·32+32 = 544; logits 330.
    // head1: 8·8+8 = 72, 4·4·8·8+8 = 1032, 8·32+32 = 288, 330; head2: 16·8+8 = 136, 2·2·8·8+8 = 264, 288, 330.
    expect(m.countParams()).toBe(80 + 584 * 2 + 1168 + 2320 + 144 + 4640 + 9248 + 544 + 330 + (72 + 1032 + 288 + 330) + (136 + 264 + 288 + 330));
    // deepest classifier: stem 2·9·1·8·784 = 112896; s1 2 × 2·9·8·8·196 = 451584; s2 2·9·8·16·49 = 112896,
    // 2·9·16·16·49 = 225792, proj 2·8·16·49 = 12544; s3 2·9·16·32·16 = 147456, 2·9·32·32·16 = 294912,
    // proj 2·16·32·16 = 16384; logits 2·32·10 = 640.
    const deep = 112896 + 451584 + 112896 + 225792 + 12544 + 147456 + 294912 + 16384 + 640;
    expect(deep).toBe(1375104);
    // head1 branch: 2·8·8·196 = 25088, 2·16·8·8·16 = 32768, 2·8·32·16 = 8192, 640 → 66688
    // head2 branch: 2·16·8·49 = 12544, 2·4·8·8·16 = 8192, 8192, 640 → 29568
    expect(flopsUpTo(m, ['logits'])).toBe(deep);
    expect(flopsUpTo(m, ['head1'])).toBe(112896 + 451584 + 66688);
    expect(flopsUpTo(m, ['head2'])).toBe(112896 + 451584 + 112896 + 225792 + 12544 + 29568);
    expect(countFlops(m).perImage).toBe(deep + 66688 + 29568);
    m.dispose();
  });

  it('batchNorm: true puts BN after every conv (the reference layout)', () => {
    const m = build({ batchNorm: true });
    const bn = m.layers.filter((l) => l.getClassName() === 'BatchNormalization').map((l) => l.name);
    // stem, s1 (2), s2 (3 with the projection), s3 (3), head1 (3), head2 (3)
    expect(bn).toHaveLength(15);
    expect(bn).toContain('s2_proj');
    expect(m.getLayer('s2_c1_conv').getConfig().useBias).toBe(false);
    m.dispose();
  });

  it('saves and loads with every output; predictions match exactly', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfkd-byot-'));
    const m = build({ inputShape: [12, 12, 1], numClasses: 3, widths: [4, 6, 8], batchNorm: true });
    try {
      await saveModel(m, dir);
      const loaded = await loadModel(dir);
      expect(loaded.outputNames).toEqual(['logits', 'head1', 'head2']);
      const x = tf.tensor4d(Float32Array.from({ length: 2 * 144 }, (_, i) => ((i * 37) % 101) / 101), [2, 12, 12, 1]);
      const a = m.predict(x) as tf.Tensor[];
      const b = loaded.predict(x) as tf.Tensor[];
      expect(b).toHaveLength(3);
      a.forEach((t, i) => expect(Array.from(b[i].dataSync())).toEqual(Array.from(t.dataSync())));
      tf.dispose([x, ...a, ...b]);
      loaded.dispose();
    } finally {
      m.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects a single stage and a non-boolean batchNorm with KD_SPEC_INVALID at the option', () => {
    for (const [o, where] of [
      [{ widths: [8] }, 'options.widths'],
      [{ batchNorm: 'yes' }, 'options.batchNorm'],
    ] as const) {
      let err: unknown;
      try {
        build(o);
      } catch (e) {
        err = e;
      }
      expect(isKdError(err) ? [err.code, err.path] : err).toEqual(['KD_SPEC_INVALID', where]);
    }
  });
});
