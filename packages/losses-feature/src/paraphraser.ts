import * as tf from '@tensorflow/tfjs-core';
import type { Scalar, Tensor, Variable } from '@tensorflow/tfjs-core';
import { fixMomentumDispose, type Rng } from '@tfkd/kd-core';
import { Adapter } from './adapters';

/** LeakyReLU slope of RepDistiller's Paraphraser / Translator. */
export const FT_LEAKY_SLOPE = 0.1;

/** A rank-2 tap [B, C] as a 1×1 map [B, 1, 1, C]; NHWC taps unchanged. */
export function asMap(x: Tensor): tf.Tensor4D {
  return (x.rank === 2 ? tf.reshape(x, [x.shape[0] as number, 1, 1, x.shape[1] as number]) : x) as tf.Tensor4D;
}

/**
 * 3×3 convolutions (stride 1, 'same' padding, bias), each followed by LeakyReLU(0.1): the blocks of
 * RepDistiller's Paraphraser and Translator (`models/util.py`) with `use_bn=False`. Initialised
 * like torch's Conv2d default, U(±1/√fan_in), from the plugin's seeded Rng.
 */
export class ConvStack {
  readonly layers: Adapter[];

  constructor(channels: number[], rng: Rng, label: string) {
    this.layers = channels.slice(1).map(
      (out, i) =>
        new Adapter({ kind: 'conv', kh: 3, kw: 3, stride: 1, padding: 'same', inChannels: channels[i], outChannels: out }, rng.fork(i), false, `${label}_${i}`),
    );
  }

  apply(x: Tensor): tf.Tensor4D {
    return tf.tidy(() => this.layers.reduce<tf.Tensor4D>((h, l) => tf.leakyRelu(l.apply(h), FT_LEAKY_SLOPE) as tf.Tensor4D, asMap(x)));
  }

  get variables(): Variable[] {
    return this.layers.flatMap((l) => l.variables);
  }
}

/** Channels of the factor: int(C_t · k), as RepDistiller (`out_channel = int(t_shape[1] * k)`). */
export function factorChannels(teacherChannels: number, rate: number): number {
  return Math.trunc(teacherChannels * rate);
}

/**
 * The paraphraser: an autoencoder on the teacher's tap. Encoder C → C → m → m, decoder m → m → C → C
 * (m = int(C·k)); the factor is the encoder's output. The reference's decoder uses stride-1
 * transposed convolutions with padding 1, which are 3×3 'same' convolutions (kernel flipped): the
 * same function class, built here as convolutions.
 */
export class Paraphraser {
  readonly encoder: ConvStack;
  readonly decoder: ConvStack;

  constructor(
    readonly channels: number,
    readonly rate: number,
    rng: Rng,
    label: string,
  ) {
    const m = factorChannels(channels, rate);
    this.encoder = new ConvStack([channels, channels, m, m], rng.fork(0), `${label}_enc`);
    this.decoder = new ConvStack([m, m, channels, channels], rng.fork(1), `${label}_dec`);
  }

  /** The factor F_t = encoder(f_t). */
  factor(x: Tensor): tf.Tensor4D {
    return this.encoder.apply(x);
  }

  /** decoder(encoder(x)). */
  reconstruct(x: Tensor): tf.Tensor4D {
    return tf.tidy(() => this.decoder.apply(this.encoder.apply(x)));
  }

  get variables(): Variable[] {
    return [...this.encoder.variables, ...this.decoder.variables];
  }
}

/** The translator on the student's tap: C_s → C_s → m → m, m = int(C_t·k) (RepDistiller Translator). */
export function translator(studentChannels: number, teacherChannels: number, rate: number, rng: Rng, label: string): ConvStack {
  const m = factorChannels(teacherChannels, rate);
  return new ConvStack([studentChannels, studentChannels, m, m], rng, label);
}

/** The paraphraser's pre-training loss: torch `MSELoss(rec, f_t)`, the mean over every element. */
export function reconstructionLoss(p: Paraphraser, x: Tensor): Scalar {
  return tf.tidy(() => tf.mean(tf.squaredDifference(p.reconstruct(x), asMap(x))) as Scalar);
}

export interface PretrainOptions {
  epochs: number;
  lr: number;
  momentum: number;
  weightDecay: number;
  /** The batches (sample indices) of epoch e, 1-based. */
  batches(epoch: number): Int32Array[];
  /** The teacher's tap on those samples (a tensor the caller's tidy scope owns). */
  features(indices: Int32Array): Tensor;
  /** After each epoch: the mean reconstruction loss over its batches (weighted by batch size). */
  onEpoch?(epoch: number, loss: number): void;
}

/**
 * Pre-train the paraphraser on reconstruction, as RepDistiller `helper/pretrain.py` `init` for
 * `factor`: SGD with momentum and weight decay (decay added to the gradient, as torch does), MSE
 * between decoder(encoder(f_t)) and f_t, `epochs` passes over the training data. Only the
 * paraphraser's variables change. Yields to the event loop between epochs. Returns the mean
 * training loss of every epoch.
 */
export async function pretrainParaphraser(p: Paraphraser, o: PretrainOptions): Promise<number[]> {
  const optimizer = o.momentum > 0 ? fixMomentumDispose(tf.train.momentum(o.lr, o.momentum)) : tf.train.sgd(o.lr);
  const vars = p.variables;
  const history: number[] = [];
  try {
    for (let epoch = 1; epoch <= o.epochs; epoch++) {
      let sum = 0;
      let count = 0;
      for (const indices of o.batches(epoch)) {
        const value = tf.tidy(() => {
          const x = o.features(indices);
          const { value: loss, grads } = tf.variableGrads(() => reconstructionLoss(p, x), vars);
          const named: tf.NamedTensorMap = {};
          for (const v of vars) named[v.name] = o.weightDecay > 0 ? tf.add(grads[v.name], tf.mul(v, o.weightDecay)) : grads[v.name];
          optimizer.applyGradients(named);
          return loss.dataSync()[0];
        });
        sum += value * indices.length;
        count += indices.length;
      }
      const mean = count > 0 ? sum / count : NaN;
      history.push(mean);
      o.onEpoch?.(epoch, mean);
      await new Promise((resolve) => setImmediate(resolve));
    }
  } finally {
    optimizer.dispose();
  }
  return history;
}
