import { KdError, type ModelBuildOptions, type ModelDefinition } from '@tfkd/kd-core';
import { input, layers, model, type LayersModel, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import { checkCommonOptions, glorot, he, intListOption } from './common';

/** Options of `byot-resnet` on top of {@link ModelBuildOptions}. */
export interface ByotResnetOptions extends ModelBuildOptions {
  /** Channels of the stem and of each stage (one stage per entry), default [8, 16, 32]. */
  widths?: number[];
  /**
   * BatchNorm after every conv (the reference's layout). Default false: conv + bias + ReLU, about
   * 3× faster per step on the wasm backend (tfjs-layers' batch norm adds many small kernels).
   */
  batchNorm?: boolean;
}

const BN_MOMENTUM = 0.9;
const BN_EPSILON = 1e-5;

/** Layer builders sharing the seed and the batch-norm switch. */
class Builder {
  constructor(
    readonly seed: number,
    readonly batchNorm: boolean,
  ) {}

  /** conv (no bias when followed by BN) → [BN] → [ReLU named `name`]; returns the last tensor. */
  convUnit(name: string, x: SymbolicTensor, filters: number, kernelSize: number, strides: number, relu: boolean): SymbolicTensor {
    const convName = relu || this.batchNorm ? `${name}_conv` : name;
    let y = layers
      .conv2d({ filters, kernelSize, strides, padding: 'same', useBias: !this.batchNorm, name: convName, kernelInitializer: he(this.seed, convName), biasInitializer: 'zeros' })
      .apply(x) as SymbolicTensor;
    if (this.batchNorm) {
      y = layers.batchNormalization({ axis: -1, momentum: BN_MOMENTUM, epsilon: BN_EPSILON, name: relu ? `${name}_bn` : name }).apply(y) as SymbolicTensor;
    }
    return relu ? (layers.reLU({ name }).apply(y) as SymbolicTensor) : y;
  }

  /**
   * Basic block: conv3x3(stride)-[BN]-ReLU-conv3x3-[BN], plus the shortcut (identity, or a 1x1
   * projection when the shape changes), added and ReLU'd into `outName`.
   */
  block(prefix: string, x: SymbolicTensor, filters: number, strides: number, outName: string): SymbolicTensor {
    const cin = x.shape[x.shape.length - 1];
    const y = this.convUnit(`${prefix}_c2`, this.convUnit(`${prefix}_c1`, x, filters, 3, strides, true), filters, 3, 1, false);
    const shortcut = strides !== 1 || cin !== filters ? this.convUnit(`${prefix}_proj`, x, filters, 1, strides, false) : x;
    const sum = layers.add({ name: `${prefix}_add` }).apply([y, shortcut]) as SymbolicTensor;
    return layers.reLU({ name: outName }).apply(sum) as SymbolicTensor;
  }

  /**
   * A BYOT head on a section's output (the reference's `branchBottleNeck` + pool + fc): 1x1 conv to
   * C/4, k×k conv with stride k (k = the section's spatial size over the deepest one), 1x1 conv to
   * the deepest width C, each with [BN] and ReLU; `headI_feat` = global average pool (the head's
   * feature, the deepest feature's shape); `headI` = Dense logits.
   */
  head(i: number, x: SymbolicTensor, deepWidth: number, deepSide: number, numClasses: number): SymbolicTensor {
    const side = x.shape[1] as number;
    const k = Math.max(1, Math.ceil(side / deepSide));
    const mid = Math.max(1, Math.floor(deepWidth / 4));
    let y = this.convUnit(`head${i}_reduce`, x, mid, 1, 1, true);
    y = this.convUnit(`head${i}_down`, y, mid, k, k, true);
    y = this.convUnit(`head${i}_expand`, y, deepWidth, 1, 1, true);
    const feat = layers.globalAveragePooling2d({ name: `head${i}_feat` }).apply(y) as SymbolicTensor;
    return dense(this.seed, `head${i}`, numClasses, feat);
  }
}

function dense(seed: number, name: string, units: number, x: SymbolicTensor): SymbolicTensor {
  return layers.dense({ units, name, kernelInitializer: glorot(seed, name), biasInitializer: 'zeros' }).apply(x) as SymbolicTensor;
}

/**
 * byot-resnet, the multi-exit ResNet of "Be Your Own Teacher" (Zhang et al. 2019), small enough for
 * 28x28 images on the wasm backend: `stem` (conv3x3 widths[0] - [BN] - ReLU - maxpool 2) → one basic
 * block per stage (`block1`, `block2`, …; stride 2 into every stage after the first) → `embedding`
 * (global average pool) → `logits`. Every stage but the last carries a head (`headI`, see
 * {@link Builder.head}). The model's outputs are `[logits, head1, …, head{S−1}]`: the deepest
 * classifier first (what evaluation and a deployed model use), the early exits after it.
 */
export function buildByotResnet(opts: ModelBuildOptions): LayersModel {
  const id = 'byot-resnet';
  const c = checkCommonOptions(id, opts);
  const widths = intListOption(id, opts, 'widths', [8, 16, 32]);
  if (widths.length < 2) {
    throw new KdError('KD_SPEC_INVALID', `model '${id}': widths needs at least 2 stages (one head and the deepest classifier), got ${JSON.stringify(widths)}`, {
      path: 'options.widths',
      fix: 'pass e.g. widths: [8, 16, 32]',
    });
  }
  const batchNorm = opts.batchNorm ?? false;
  if (typeof batchNorm !== 'boolean') {
    throw new KdError('KD_SPEC_INVALID', `model '${id}': batchNorm must be true or false, got ${JSON.stringify(batchNorm)}`, {
      path: 'options.batchNorm',
      fix: 'pass batchNorm: false (default) or true',
    });
  }
  const b = new Builder(c.seed, batchNorm);
  const x0 = input({ shape: c.inputShape, name: 'input' });
  const stemAct = b.convUnit('stem_act', x0, widths[0], 3, 1, true);
  let x = layers.maxPooling2d({ poolSize: 2, strides: 2, padding: 'same', name: 'stem' }).apply(stemAct) as SymbolicTensor;
  const sections: SymbolicTensor[] = [];
  widths.forEach((filters, s) => {
    x = b.block(`s${s + 1}`, x, filters, s > 0 ? 2 : 1, `block${s + 1}`);
    sections.push(x);
  });
  const deepWidth = widths[widths.length - 1];
  const deepSide = x.shape[1] as number;
  const embedding = layers.globalAveragePooling2d({ name: 'embedding' }).apply(x) as SymbolicTensor;
  const logits = dense(c.seed, 'logits', c.numClasses, embedding);
  const heads = sections.slice(0, -1).map((sec, i) => b.head(i + 1, sec, deepWidth, deepSide, c.numClasses));
  return model({ inputs: x0, outputs: [logits, ...heads], name: id });
}

export const byotResnetDefinition: ModelDefinition = {
  id: 'byot-resnet',
  describe:
    'Multi-exit ResNet for BYOT self-distillation (Zhang et al. 2019): stem conv3x3 + pool, one basic block per stage ' +
    '(`widths`, default [8, 16, 32]; `batchNorm` default false), a head on every stage but the last (1x1 → k×k stride k → 1x1 ' +
    'convs to the deepest width, global average pool `headI_feat`, Dense `headI`), deepest classifier `embedding` → `logits`. ' +
    'Outputs [logits, head1, head2, …]. Taps stem, blockK, headI_feat, headI, embedding.',
  taps: ['stem', 'block1', 'block2', 'block3', 'head1_feat', 'head1', 'head2_feat', 'head2', 'embedding'],
  build: buildByotResnet,
};
