/**
 * A run gives the event loop a turn at least every 100 ms even when nobody asks it to stop: a host
 * that trains in its own process (a `kd worker` training a teacher, a page) keeps its timers — a
 * BullMQ worker renews its job's lock on one. Without it the step loop never leaves the microtask queue.
 */
import '@tensorflow/tfjs-backend-cpu';
import { ContainerModule } from 'inversify';
import { DATASET_DEFINITION, definePlugin, PLUGIN_DEFINITION, RunSpec } from '@tfkd/kd-core';
import { testCrossEntropy, testDataset } from '@tfkd/kd-core/testing';
import { datasetsModule } from '@tfkd/datasets';
import { modelsModule } from '@tfkd/models';
import { executePlan } from './execute';
import { planRun } from './plan';
import { Registry } from './registry';

const registry = () =>
  new Registry([
    { name: '@tfkd/datasets', module: datasetsModule },
    { name: '@tfkd/models', module: modelsModule },
    {
      name: 'test',
      module: new ContainerModule((o) => {
        o.bind(PLUGIN_DEFINITION).toConstantValue(definePlugin({ ...testCrossEntropy, id: 'loss/cross-entropy' }));
        o.bind(DATASET_DEFINITION).toConstantValue(testDataset);
      }),
    },
  ]);

// 12 steps, each made to last 40 ms (a busy wait after it): about 480 ms of training in one go.
const SPEC = RunSpec.parse({
  seed: 1,
  backend: 'cpu',
  data: { name: 'synthetic', train: 96, test: 8, numClasses: 3, shape: [4, 4, 1] },
  student: { model: 'mlp', options: { hidden: [4] } },
  train: { epochs: 1, batchSize: 8 },
  plugins: [{ use: 'loss/cross-entropy' }],
});

describe('the step loop and the event loop', () => {
  it('lets a timer run during training without a stop check (at least every 100 ms)', async () => {
    const reg = registry();
    const plan = await planRun(SPEC, { registry: reg });
    let ticks = 0;
    let steps = 0;
    let stepsAtFirstTick = -1;
    const timer = setInterval(() => {
      if (ticks++ === 0) stepsAtFirstTick = steps;
    }, 1);
    try {
      const { engine, result } = await executePlan(plan, {
        registry: reg,
        observe: (bus) =>
          bus.events$.subscribe((e) => {
            if (e.hook !== 'batchEnd') return;
            steps++;
            const until = Date.now() + 40;
            while (Date.now() < until);
          }),
      });
      engine?.dispose();
      expect(result.status).toBe('completed');
    } finally {
      clearInterval(timer);
    }
    expect(steps).toBe(12);
    // 480 ms of steps: a turn after at most 100 ms (the 4th step at the latest) and about every 3 steps after.
    expect(stepsAtFirstTick).toBeGreaterThan(0);
    expect(stepsAtFirstTick).toBeLessThanOrEqual(4);
    expect(ticks).toBeGreaterThanOrEqual(3);
  });
});
