/**
 * The soak of `npm run soak` (tools/soak.js, 2,000 steps on Fashion-MNIST) in small: the same soak
 * logic (tools/soak-lib.js) and the same stack — sampler/unix + loss/attention + loss/hinton-kd +
 * loss/cross-entropy through `Engine.stepper()` on the wasm backend — for 240 steps on a tiny
 * synthetic task. The tensor count must not move after the warm-up (no RSS bound here: jest's own
 * allocations make it meaningless at this length).
 */
import * as tf from '@tensorflow/tfjs-core';
import { prepareRun } from '@tfkd/engine';
import { RunSpec } from '@tfkd/kd-core';
import { defaultRegistry } from './modules';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { soak, judge, table } = require('../../../tools/soak-lib.js') as {
  soak(o: { tf: typeof tf; stepper: { step(): { loss: number } }; steps: number; every: number }): Promise<{ samples: { step: number; numTensors: number; rssMB: number }[]; losses: number[] }>;
  judge(r: unknown, o: { warmup: number; rssBoundMB?: number | null }): { ok: boolean; failures: string[]; tensorsAtWarmup: number; tensorsAtEnd: number };
  table(s: unknown, o?: { warmup?: number; stride?: number }): string;
};

jest.setTimeout(180_000);

it('240 stacked UNIX + attention + Hinton + CE steps on wasm: numTensors flat after the warm-up, every loss finite', async () => {
  const adam = { name: 'adam' as const, lr: 0.001, weightDecay: 0 };
  const spec = RunSpec.parse({
    seed: 5,
    backend: 'wasm',
    data: { name: 'synthetic', train: 48, test: 8, numClasses: 4, shape: [8, 8, 1] },
    teacher: { model: 'cnn-small', seed: 1, train: { epochs: 1, maxBatches: 2 } },
    student: { model: 'cnn-small' },
    train: { epochs: 1, batchSize: 8, optimizer: adam },
    plugins: [
      { use: 'sampler/unix', with: { keep: 6, b: 4 } },
      { use: 'loss/attention', with: { pairs: [['student.block1', 'teacher.block2']] }, weight: 1000 },
      { use: 'loss/hinton-kd', with: { temperature: 4 }, weight: 0.9 },
      { use: 'loss/cross-entropy', weight: 0.1 },
    ],
  });
  const engine = await prepareRun(spec, { registry: defaultRegistry(), cacheDir: null });
  try {
    const stepper = await engine.stepper();
    expect(tf.getBackend()).toBe('wasm');
    const result = await soak({ tf, stepper, steps: 240, every: 20 });
    const verdict = judge(result, { warmup: 40, rssBoundMB: null });
    expect({ ok: verdict.ok, failures: verdict.failures }).toEqual({ ok: true, failures: [] });
    // the check is exact: every sample from step 40 on has the same count
    const counts = result.samples.filter((s) => s.step >= 40).map((s) => s.numTensors);
    expect(new Set(counts).size).toBe(1);
    expect(counts).toHaveLength(11);
    expect(result.losses).toHaveLength(240);
    expect(table(result.samples, { warmup: 40 })).toContain(`| 240 | ${verdict.tensorsAtEnd} |`);
  } finally {
    engine.dispose();
  }
});

it('judge: a leak of one tensor per window after the warm-up fails, and so does RSS growth past the bound', () => {
  const samples = [0, 20, 40, 60, 80].map((step, i) => ({ step, numTensors: 100 + Math.max(0, i - 2), rssMB: 200 + 10 * i, heapMB: 0, wasmMB: null, msPerStep: 1 }));
  const v = judge({ samples, losses: [1, 2, Number.NaN] }, { warmup: 40, rssBoundMB: 15 });
  expect(v.ok).toBe(false);
  expect(v.failures).toEqual([
    'numTensors changed after warm-up: 100 at step 40, 101 at step 60',
    'RSS grew 20.0 MB after step 40 (bound 15 MB)',
    '1 non-finite losses',
  ]);
  const flat = samples.map((s) => ({ ...s, numTensors: 100, rssMB: 200 }));
  expect(judge({ samples: flat, losses: [1] }, { warmup: 40, rssBoundMB: 15 }).ok).toBe(true);
});
