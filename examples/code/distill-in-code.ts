// Distillation from code, the TensorFlow.js way: a teacher and a student built with tf.layers, a
// tf.data pipeline from arrays, Hinton KD through distill(), tfjs callbacks, a History back.
// Run by packages/engine/src/api-docs.spec.ts; docs/api.md shows this file.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as tfd from '@tensorflow/tfjs-data';
import { distill, type DistillHistory } from '@tfkd/engine';
import { logitLossesModule } from '@tfkd/losses-logit';

/** 3 classes of 2-D points around three centres, with noise that makes them overlap a little. */
function clusters(n: number, seed: number): { xs: number[]; ys: number }[] {
  let s = seed;
  const rand = () => (s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32;
  return Array.from({ length: n }, (_, i) => {
    const y = i % 3;
    const a = (2 * Math.PI * y) / 3;
    return { xs: [Math.cos(a) + 0.6 * (rand() - 0.5), Math.sin(a) + 0.6 * (rand() - 0.5)], ys: y };
  });
}

const batches = (rows: { xs: number[]; ys: number }[]) =>
  tfd.array(rows).map((r) => r as unknown as tf.TensorContainer).batch(32) as unknown as tfd.Dataset<{ xs: tf.Tensor; ys: tf.Tensor }>;

export async function main(log: (line: string) => void = console.log): Promise<{ teacher: tfl.LayersModel; student: tfl.LayersModel; history: DistillHistory }> {
  const train = clusters(600, 1);
  const val = clusters(300, 2);

  // The teacher: trained the ordinary tfjs way.
  const teacher = tfl.sequential({
    layers: [
      tfl.layers.dense({ inputShape: [2], units: 32, activation: 'relu', kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }) }),
      tfl.layers.dense({ units: 3, kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }) }),
    ],
  });
  teacher.compile({ optimizer: tf.train.adam(0.03), loss: 'sparseCategoricalCrossentropy', metrics: ['accuracy'] });
  await teacher.fitDataset(batches(train).map(({ xs, ys }) => ({ xs, ys: ys.cast('float32') })) as never, { epochs: 30, verbose: 0 });

  // The student: a smaller functional model, distilled from the teacher.
  const input = tfl.input({ shape: [2] });
  const hidden = tfl.layers.dense({ units: 8, activation: 'relu', kernelInitializer: tfl.initializers.glorotUniform({ seed: 3 }) }).apply(input);
  const logits = tfl.layers.dense({ units: 3, kernelInitializer: tfl.initializers.glorotUniform({ seed: 4 }) }).apply(hidden) as tfl.SymbolicTensor;
  const student = tfl.model({ inputs: input, outputs: logits });

  const history = await distill(student, {
    teachers: teacher,
    data: batches(train),
    validationData: batches(val),
    epochs: 20,
    optimizer: { name: 'adam', lr: 0.02, weightDecay: 0 },
    plugins: [
      { use: 'loss/cross-entropy', weight: 0.1 },
      { use: 'loss/hinton-kd', with: { temperature: 4 }, weight: 0.9 },
    ],
    modules: [logitLossesModule],
    callbacks: { onEpochEnd: (epoch, logs) => log(`epoch ${epoch + 1}: loss ${logs?.loss.toFixed(4)}, val_accuracy ${logs?.val_accuracy?.toFixed(3)}`) },
  });
  return { teacher, student, history };
}
