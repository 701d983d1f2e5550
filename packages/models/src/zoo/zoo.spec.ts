import type { LayersModel } from '@tensorflow/tfjs-layers';
import { isKdError, type KdError, type ModelDefinition } from '@tfkd/kd-core';
import { useCpu } from '../__fixtures__/cpu';
import { MODEL_ZOO, getModelDefinition, layerSeed } from './index';

const MNIST = { inputShape: [28, 28, 1], numClasses: 10 };

function names(m: LayersModel): string[] {
  return m.layers.map((l) => l.name);
}

function catchKd(fn: () => unknown): KdError {
  try {
    fn();
  } catch (e) {
    if (isKdError(e)) return e;
    throw e;
  }
  throw new Error('expected a KdError');
}

function def(id: string): ModelDefinition {
  return getModelDefinition(id);
}

beforeAll(useCpu);

describe('zoo layer names and parameter counts', () => {
  it('mlp-student: 784-128-128-10, exact layers and params', () => {
    const m = def('mlp-student').build({ ...MNIST, seed: 1 });
    expect(names(m)).toEqual(['input', 'flatten', 'fc1', 'fc2', 'embedding', 'logits']);
    // fc1 784*128+128 = 100480, fc2 128*128+128 = 16512, logits 128*10+10 = 1290.
    expect(m.countParams()).toBe(100480 + 16512 + 1290);
    expect(m.getLayer('fc1').getConfig().activation).toBe('relu');
    expect(m.getLayer('logits').getConfig().activation).toBe('linear');
    m.dispose();
  });

  it('mlp-teacher: 784-1200-1200-10 with dropout 0.2 on both hidden layers', () => {
    const m = def('mlp-teacher').build({ ...MNIST, seed: 1 });
    expect(names(m)).toEqual([
      'input',
      'flatten',
      'fc1',
      'dropout1',
      'fc2',
      'embedding',
      'dropout2',
      'logits',
    ]);
    expect(m.getLayer('dropout1').getConfig().rate).toBe(0.2);
    expect(m.getLayer('dropout2').getConfig().rate).toBe(0.2);
    // 784*1200+1200 = 942000, 1200*1200+1200 = 1441200, 1200*10+10 = 12010.
    expect(m.countParams()).toBe(942000 + 1441200 + 12010);
    expect(def('mlp-teacher').describe).toMatch(/dropout 0\.2/);
    m.dispose();
  });

  it('mlp honours `hidden` and `dropout`', () => {
    const m = def('mlp').build({ inputShape: [4, 4, 2], numClasses: 3, hidden: [5, 6, 7], dropout: 0.5 });
    expect(names(m)).toEqual([
      'input',
      'flatten',
      'fc1',
      'dropout1',
      'fc2',
      'dropout2',
      'fc3',
      'embedding',
      'dropout3',
      'logits',
    ]);
    // 32*5+5 = 165, 5*6+6 = 36, 6*7+7 = 49, 7*3+3 = 24.
    expect(m.countParams()).toBe(165 + 36 + 49 + 24);
    m.dispose();
  });

  it('cnn-small: exact layers, params and block shapes', () => {
    const m = def('cnn-small').build({ ...MNIST, seed: 1 });
    expect(names(m)).toEqual(['input', 'conv1', 'block1', 'conv2', 'block2', 'embedding', 'logits']);
    // conv1 3*3*1*16+16 = 160, conv2 3*3*16*32+32 = 4640, logits (7*7*32)*10+10 = 15690.
    expect(m.countParams()).toBe(160 + 4640 + 15690);
    expect(m.getLayer('block1').outputShape).toEqual([null, 14, 14, 16]);
    expect(m.getLayer('block2').outputShape).toEqual([null, 7, 7, 32]);
    expect(m.getLayer('embedding').outputShape).toEqual([null, 1568]);
    m.dispose();
  });

  it('cnn-large: exact layers and params', () => {
    const m = def('cnn-large').build({ ...MNIST, seed: 1 });
    expect(names(m)).toEqual([
      'input',
      'conv1a',
      'conv1b',
      'block1',
      'conv2a',
      'conv2b',
      'block2',
      'conv3a',
      'conv3b',
      'block3',
      'flatten',
      'embedding',
      'logits',
    ]);
    const conv = (cin: number, cout: number) => 9 * cin * cout + cout;
    // block3 is 3x3x128 = 1152 -> embedding 256 -> logits 10.
    const expected =
      conv(1, 32) +
      conv(32, 32) +
      conv(32, 64) +
      conv(64, 64) +
      conv(64, 128) +
      conv(128, 128) +
      (1152 * 256 + 256) +
      (256 * 10 + 10);
    expect(m.countParams()).toBe(expected);
    expect(m.getLayer('block3').outputShape).toEqual([null, 3, 3, 128]);
    m.dispose();
  });

  it('resnet-student: stage shapes for 28x28 and 32x32, exact params', () => {
    const m28 = def('resnet-student').build({ ...MNIST, seed: 1 });
    expect(
      ['stem', 'block1', 'block2', 'block3', 'embedding'].map((n) => m28.getLayer(n).outputShape),
    ).toEqual([
      [null, 28, 28, 16],
      [null, 28, 28, 16],
      [null, 14, 14, 32],
      [null, 7, 7, 64],
      [null, 64],
    ]);
    // Convs have no bias; each BN has 4*C weights (gamma, beta, moving mean, moving variance).
    const c = (k: number, cin: number, cout: number) => k * k * cin * cout;
    const bn = (ch: number) => 4 * ch;
    const stem = c(3, 1, 16) + bn(16);
    const s1 = c(3, 16, 16) + bn(16) + c(3, 16, 16) + bn(16);
    const s2 = c(3, 16, 32) + bn(32) + c(3, 32, 32) + bn(32) + c(1, 16, 32) + bn(32);
    const s3 = c(3, 32, 64) + bn(64) + c(3, 64, 64) + bn(64) + c(1, 32, 64) + bn(64);
    expect(m28.countParams()).toBe(stem + s1 + s2 + s3 + 64 * 10 + 10);
    const m32 = def('resnet-student').build({ inputShape: [32, 32, 3], numClasses: 100 });
    expect(m32.getLayer('block3').outputShape).toEqual([null, 8, 8, 64]);
    expect(m32.getLayer('logits').outputShape).toEqual([null, 100]);
    m28.dispose();
    m32.dispose();
  });

  it('resnet-teacher: 32/64/128 with 2 blocks per stage', () => {
    const m = def('resnet-teacher').build({ inputShape: [32, 32, 3], numClasses: 10 });
    const ln = names(m);
    expect(ln.filter((n) => /_conv\d$/.test(n))).toEqual([
      's1_b1_conv1',
      's1_b1_conv2',
      's1_b2_conv1',
      's1_b2_conv2',
      's2_b1_conv1',
      's2_b1_conv2',
      's2_b2_conv1',
      's2_b2_conv2',
      's3_b1_conv1',
      's3_b1_conv2',
      's3_b2_conv1',
      's3_b2_conv2',
    ]);
    expect(ln.filter((n) => n.endsWith('_proj'))).toEqual(['s2_b1_proj', 's3_b1_proj']);
    expect(m.getLayer('block1').outputShape).toEqual([null, 32, 32, 32]);
    expect(m.getLayer('block3').outputShape).toEqual([null, 8, 8, 128]);
    m.dispose();
  });

  it('every zoo model builds at 28x28x1 and 32x32x3, taps are real layers, output is linear logits', () => {
    for (const d of MODEL_ZOO) {
      for (const inputShape of [
        [28, 28, 1],
        [32, 32, 3],
      ]) {
        const m = d.build({ inputShape, numClasses: 7, seed: 3 });
        for (const t of d.taps) expect(names(m)).toContain(t);
        expect(d.taps).toContain('embedding');
        // byot-resnet has its early-exit heads as further outputs; the logits always come first.
        expect(m.outputs).toHaveLength(d.id === 'byot-resnet' ? 3 : 1);
        expect(m.outputs[0].shape).toEqual([null, 7]);
        expect(m.outputNames[0]).toBe('logits');
        expect(m.getLayer('logits').getConfig().activation).toBe('linear');
        if (m.outputs.length === 1) expect(m.layers[m.layers.length - 1].name).toBe('logits');
        m.dispose();
      }
    }
  });
});

describe('seeded initialisation', () => {
  async function weightsOf(id: string, seed?: number): Promise<Float32Array[]> {
    const m = def(id).build({ inputShape: [8, 8, 1], numClasses: 3, seed, hidden: [6] });
    const w = await Promise.all(m.getWeights().map((t) => t.data() as Promise<Float32Array>));
    m.dispose();
    return w;
  }

  it.each(['mlp', 'cnn-small', 'resnet'])(
    '%s: same seed gives identical weights, other seed differs',
    async (id) => {
      const a = await weightsOf(id, 5);
      const b = await weightsOf(id, 5);
      const c = await weightsOf(id, 6);
      expect(a).toEqual(b);
      expect(a[0]).not.toEqual(c[0]);
    },
  );

  it('an unseeded build is reproducible too', async () => {
    expect(await weightsOf('mlp')).toEqual(await weightsOf('mlp'));
  });

  it('layer seeds differ per layer name and per seed, and are stable', () => {
    expect(layerSeed(1, 'fc1')).not.toBe(layerSeed(1, 'fc2'));
    expect(layerSeed(1, 'fc1')).not.toBe(layerSeed(2, 'fc1'));
    expect(layerSeed(1, 'fc1')).toBe(layerSeed(1, 'fc1'));
    expect(Number.isInteger(layerSeed(-3, 'x')) && layerSeed(-3, 'x') >= 0).toBe(true);
  });
});

describe('getModelDefinition and option validation', () => {
  it('returns each zoo entry by id', () => {
    expect(MODEL_ZOO.map((d) => d.id)).toEqual([
      'mlp',
      'mlp-teacher',
      'mlp-student',
      'cnn-small',
      'cnn-large',
      'resnet',
      'resnet-student',
      'resnet-teacher',
      'byot-resnet',
    ]);
    for (const d of MODEL_ZOO) expect(getModelDefinition(d.id)).toBe(d);
  });

  it('unknown id → KD_MODEL_UNKNOWN listing the known ids with a fix', () => {
    const e = catchKd(() => getModelDefinition('cnn-smal'));
    expect(e.code).toBe('KD_MODEL_UNKNOWN');
    expect(e.message).toContain("'cnn-smal'");
    expect(e.message).toContain(
      'mlp, mlp-teacher, mlp-student, cnn-small, cnn-large, resnet, resnet-student, resnet-teacher',
    );
    expect(e.fix).toContain("did you mean 'cnn-small'?");
  });

  it('bad options → KD_SPEC_INVALID naming the option', () => {
    const bad: Array<[string, Record<string, unknown>, string]> = [
      ['mlp', { inputShape: [784], numClasses: 10 }, 'options.inputShape'],
      ['cnn-small', { inputShape: [28, 28, 1], numClasses: 0 }, 'options.numClasses'],
      ['mlp', { ...MNIST, hidden: [] }, 'options.hidden'],
      ['mlp', { ...MNIST, dropout: 1 }, 'options.dropout'],
      ['resnet', { ...MNIST, blocksPerStage: 1.5 }, 'options.blocksPerStage'],
      ['resnet', { ...MNIST, seed: 0.5 }, 'options.seed'],
    ];
    for (const [id, opts, p] of bad) {
      const e = catchKd(() => def(id).build(opts as never));
      expect([e.code, e.path]).toEqual(['KD_SPEC_INVALID', p]);
    }
  });
});
