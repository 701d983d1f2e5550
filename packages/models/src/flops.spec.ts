import { input, layers, model, sequential, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import { useCpu } from './__fixtures__/cpu';
import { countFlops } from './flops';
import { basicBlock, getModelDefinition } from './zoo';

beforeAll(useCpu);

function flopsOf(byLayer: ReturnType<typeof countFlops>['byLayer']): Record<string, number> {
  return Object.fromEntries(byLayer.filter((l) => l.flops > 0).map((l) => [l.name, l.flops]));
}

describe('countFlops', () => {
  it('mlp-student at 28x28x1 (784-128-128-10)', () => {
    const m = getModelDefinition('mlp-student').build({ inputShape: [28, 28, 1], numClasses: 10 });
    const f = countFlops(m);
    // fc1: 2*784*128 = 200704; fc2: 2*128*128 = 32768; logits: 2*128*10 = 2560.
    expect(flopsOf(f.byLayer)).toEqual({ fc1: 200704, fc2: 32768, logits: 2560 });
    expect(f.perImage).toBe(200704 + 32768 + 2560); // 236032
    expect(f.perImage).toBe(236032);
    expect(f.byLayer.map((l) => [l.name, l.className, l.outputShape])).toEqual([
      ['input', 'InputLayer', [null, 28, 28, 1]],
      ['flatten', 'Flatten', [null, 784]],
      ['fc1', 'Dense', [null, 128]],
      ['fc2', 'Dense', [null, 128]],
      ['embedding', 'Activation', [null, 128]],
      ['logits', 'Dense', [null, 10]],
    ]);
  });

  it('cnn-small at 28x28x1', () => {
    const f = countFlops(getModelDefinition('cnn-small').build({ inputShape: [28, 28, 1], numClasses: 10 }));
    // conv1: 3x3, Cin 1, Cout 16, same padding -> 28x28 out: 2*3*3*1*16*28*28 = 225792.
    // block1 maxpool -> 14x14x16 (0). conv2: 2*3*3*16*32*14*14 = 1806336. block2 -> 7x7x32 (0).
    // embedding = flatten 7*7*32 = 1568 (0). logits: 2*1568*10 = 31360.
    expect(flopsOf(f.byLayer)).toEqual({ conv1: 225792, conv2: 1806336, logits: 31360 });
    expect(f.perImage).toBe(225792 + 1806336 + 31360);
    expect(f.perImage).toBe(2063488);
  });

  it('cnn-small at 32x32x3', () => {
    const f = countFlops(getModelDefinition('cnn-small').build({ inputShape: [32, 32, 3], numClasses: 10 }));
    // conv1: 2*9*3*16*32*32 = 884736; conv2: 2*9*16*32*16*16 = 2359296; logits: 2*(8*8*32)*10 = 40960.
    expect(f.perImage).toBe(884736 + 2359296 + 40960);
  });

  it('one resnet basic block with a projection shortcut', () => {
    const x = input({ shape: [8, 8, 4] });
    const y = basicBlock(1, 'b', x, 8, 2, 'out');
    const f = countFlops(model({ inputs: x, outputs: y }));
    // Stride 2, same padding: 8x8x4 -> 4x4x8.
    // b_conv1: 2*3*3*4*8*4*4 = 9216; b_conv2: 2*3*3*8*8*4*4 = 18432; b_proj (1x1): 2*1*1*4*8*4*4 = 1024.
    // BN, add and ReLU count 0.
    expect(flopsOf(f.byLayer)).toEqual({ b_conv1: 9216, b_conv2: 18432, b_proj: 1024 });
    expect(f.perImage).toBe(28672);
    expect(f.byLayer.find((l) => l.name === 'out')?.outputShape).toEqual([null, 4, 4, 8]);
  });

  it('resnet-student at 28x28x1, block by block', () => {
    const f = countFlops(
      getModelDefinition('resnet-student').build({ inputShape: [28, 28, 1], numClasses: 10 }),
    );
    const by = flopsOf(f.byLayer);
    const sum = (prefix: string) =>
      Object.entries(by)
        .filter(([n]) => n.startsWith(prefix))
        .reduce((s, [, v]) => s + v, 0);
    expect(by.stem_conv).toBe(2 * 9 * 1 * 16 * 28 * 28); // 225792
    // Identity block at 28x28x16: two convs of 2*9*16*16*784 = 3612672.
    expect(sum('s1_b1_')).toBe(2 * 3612672);
    // Down-sampling block 28x28x16 -> 14x14x32: 1806336 + 3612672 + proj 2*16*32*196 = 200704.
    expect(sum('s2_b1_')).toBe(1806336 + 3612672 + 200704);
    // 14x14x32 -> 7x7x64: 2*9*32*64*49 = 1806336, 2*9*64*64*49 = 3612672, proj 2*32*64*49 = 200704.
    expect(sum('s3_b1_')).toBe(1806336 + 3612672 + 200704);
    expect(by.logits).toBe(2 * 64 * 10);
    expect(f.perImage).toBe(225792 + 7225344 + 5619712 + 5619712 + 1280); // 18691840
  });

  it('depthwise and separable convolutions', () => {
    const x = input({ shape: [8, 8, 3] });
    const dw = layers
      .depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, name: 'dw' })
      .apply(x) as SymbolicTensor;
    const sep = layers.separableConv2d({ kernelSize: 3, filters: 4, name: 'sep' }).apply(x) as SymbolicTensor;
    const f = countFlops(model({ inputs: x, outputs: [dw, sep] }));
    // Valid padding -> 6x6. dw: 2*3*3*3*2*6*6 = 3888.
    // sep: depthwise 2*3*3*3*1*36 = 1944 + pointwise 2*3*1*4*36 = 864 = 2808.
    expect(flopsOf(f.byLayer)).toEqual({ dw: 3888, sep: 2808 });
  });

  it('counts a nested Sequential as its own FLOPs and skips calls from other models', () => {
    const inner = sequential({ layers: [layers.dense({ units: 3, inputShape: [5], name: 'd' })] });
    const x = input({ shape: [5] });
    const outer = model({ inputs: x, outputs: inner.apply(x) as SymbolicTensor });
    // d: 2*5*3 = 30, once (the inner model's own node is not part of `outer`).
    expect(countFlops(outer).perImage).toBe(30);
    expect(countFlops(inner).perImage).toBe(30);
  });
});
