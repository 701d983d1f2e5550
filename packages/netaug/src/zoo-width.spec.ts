import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { isKdError, type KdError } from '@tfkd/kd-core';
import { getModelDefinition, scaleByWidth } from '@tfkd/models';

// The zoo's `width` option (packages/models/src/zoo/mlp.ts, cnn.ts), tested here beside its user.
beforeAll(async () => {
  await tf.setBackend('cpu');
});

const MNIST = { inputShape: [28, 28, 1], numClasses: 10, seed: 3 };
const build = (id: string, o: Record<string, unknown> = {}): LayersModel => getModelDefinition(id).build({ ...MNIST, ...o });
const units = (m: LayersModel) =>
  m.layers.filter((l) => ['Dense', 'Conv2D'].includes(l.getClassName())).map((l) => (l.getConfig().units ?? l.getConfig().filters) as number);

describe('zoo option `width`', () => {
  it('absent or 1: today’s models exactly (layers, sizes and seeded initial weights)', () => {
    for (const id of ['mlp', 'mlp-student', 'mlp-teacher', 'cnn-small', 'cnn-large']) {
      const a = build(id);
      const b = build(id, { width: 1 });
      expect(b.layers.map((l) => l.name)).toEqual(a.layers.map((l) => l.name));
      expect(b.countParams()).toBe(a.countParams());
      const [wa, wb] = [a, b].map((m) => m.getWeights().map((t) => Array.from(t.dataSync())));
      expect(wb).toEqual(wa);
      a.dispose();
      b.dispose();
    }
  });

  it('mlp / mlp-student: hidden sizes × width; mlp-student at 0.25 is 784-32-32-10', () => {
    const s = build('mlp-student', { width: 0.25 });
    expect(units(s)).toEqual([32, 32, 10]);
    expect(s.countParams()).toBe(784 * 32 + 32 + 32 * 32 + 32 + 32 * 10 + 10);
    const m = build('mlp', { hidden: [100, 30], width: 1.5 });
    expect(units(m)).toEqual([150, 45, 10]);
    [s, m].forEach((x) => x.dispose());
  });

  it('cnn-small / cnn-large: convolution channels × width (cnn-large’s embeddingSize is its own option)', () => {
    const s = build('cnn-small', { width: 0.25 });
    expect(units(s)).toEqual([4, 8, 10]);
    const l = build('cnn-large', { width: 0.5 });
    expect(units(l)).toEqual([16, 16, 32, 32, 64, 64, 256, 10]);
    [s, l].forEach((x) => x.dispose());
  });

  it('rounds as the NetAug reference rounds widths, never below 1', () => {
    expect([scaleByWidth(16, 0.3), scaleByWidth(128, 0.1), scaleByWidth(1, 0.01), scaleByWidth(32, 1.8)]).toEqual([5, 13, 1, 58]);
  });

  it('a bad width → KD_SPEC_INVALID at options.width', () => {
    for (const width of [0, -1, 'half']) {
      let e: KdError | null = null;
      try {
        build('cnn-small', { width });
      } catch (x) {
        if (isKdError(x)) e = x;
      }
      expect([e?.code, e?.path]).toEqual(['KD_SPEC_INVALID', 'options.width']);
    }
  });
});
