// The page script of browser.spec.ts: bundled by esbuild for the browser (no externals, no shims of
// Node built-ins), it runs a few Hinton-KD epochs on the cpu backend through the engine's public API (planRun, executePlan)
// and posts the numbers on `globalThis.__kd` for the spec to read.
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { distill, executePlan, planRun, Registry } from '@tfkd/engine';
import { RunSpec } from '@tfkd/kd-core';
import { blobSplits, testModule } from '@tfkd/kd-core/testing';
import { logitLossesModule } from '@tfkd/losses-logit';

/** What the page posts: the per-epoch means, or the error that stopped the run. */
export type BrowserKdResult =
  | {
      ok: true;
      backend: string;
      /** Per epoch (of the student's run): mean total loss, and mean Hinton-KD term. */
      loss: number[];
      hintonKd: number[];
      crossEntropy: number[];
      /** The plan's runs, in order (the teacher trained from labels, then `distill`). */
      runs: string[];
      /** The student's final test accuracy, and the teacher's. */
      accuracy: number;
      teacherAccuracy: number;
      /** Test samples the blobs fixture gives (the run evaluates on them). */
      testSamples: number;
      seconds: number;
      /** distill() with a teacher and a student built in the page: its Hinton-KD term per epoch. */
      distillKd: number[];
    }
  | { ok: false; error: string };

export const SPEC = {
  seed: 1,
  backend: 'cpu',
  data: { name: 'blobs' },
  // the teacher's own recipe (its run is planned, trained and handed over in the page)
  teacher: { model: 'test-dense', seed: 11, train: { epochs: 20, batchSize: 16, optimizer: { name: 'adam', lr: 0.05, weightDecay: 0 } } },
  student: { model: 'test-dense' },
  train: { epochs: 6, batchSize: 16, optimizer: { name: 'adam', lr: 0.05, weightDecay: 0 } },
  plugins: [
    { use: 'loss/cross-entropy', weight: 0.1 },
    { use: 'loss/hinton-kd', with: { temperature: 4 }, weight: 0.9 },
  ],
  eval: ['accuracy'],
};

/** The code path: models built with tf.layers in the page, data as arrays, distill(). */
async function distillInPage(): Promise<number[]> {
  const { train } = blobSplits();
  const dense = (units: number, seed: number, activation?: 'relu') => tfl.layers.dense({ units, activation, kernelInitializer: tfl.initializers.glorotUniform({ seed }) });
  const teacher = tfl.sequential({ layers: [tfl.layers.flatten({ inputShape: [4, 4, 1] }), dense(16, 1, 'relu'), dense(3, 2)] });
  const student = tfl.sequential({ layers: [tfl.layers.flatten({ inputShape: [4, 4, 1] }), dense(3, 3)] });
  const xs = tf.tensor4d(train.images, [train.labels.length, 4, 4, 1]);
  const h = await distill(student, {
    teachers: teacher,
    data: { xs, ys: Array.from(train.labels) },
    epochs: 4,
    batchSize: 16,
    optimizer: { name: 'adam', lr: 0.05, weightDecay: 0 },
    plugins: [{ use: 'loss/hinton-kd', with: { temperature: 4 } }],
    modules: [logitLossesModule],
  });
  xs.dispose();
  return h.history['loss/hinton-kd'];
}

const page = globalThis as unknown as { __kd?: BrowserKdResult };

function post(r: BrowserKdResult): void {
  page.__kd = r;
  // The spec also prints the page's console: one line to say the run has ended.
  console.log(`__kd ${r.ok ? 'ok' : 'error'}`);
}

async function main(): Promise<void> {
  const registry = new Registry([testModule(), logitLossesModule]);
  const plan = await planRun(RunSpec.parse(SPEC), { registry, cacheDir: null, specDir: '.' });
  const { result, engine } = await executePlan(plan, { registry });
  engine?.dispose();
  const history = result.history.filter((h) => h.phase === 'distill');
  const term = (key: string): number[] => history.map((h) => h.train[key]);
  post({
    ok: true,
    backend: result.backend.name,
    runs: plan.runs.map((r) => r.name),
    loss: term('loss'),
    hintonKd: term('loss/hinton-kd'),
    crossEntropy: term('loss/cross-entropy'),
    accuracy: result.eval.student?.accuracy,
    teacherAccuracy: result.eval.teacher?.accuracy,
    testSamples: blobSplits().test.labels.length,
    seconds: result.seconds,
    distillKd: await distillInPage(),
  });
}

main().catch((e: unknown) => {
  const err = e as Error;
  post({ ok: false, error: `${err?.name ?? 'Error'}: ${err?.message ?? String(e)}\n${err?.stack ?? ''}` });
});
