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
    // The steps done when each timer tick ran.
    const at: number[] = [];
    let steps = 0;
    const timer = setInterval(() => at.push(steps), 1);
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
    // Steps of at least 40 ms: a yield after at most 3 of them. A timer runs at the yield after the one
    // that let it fall due (the loop resumes inside the yield's own turn), so within 6 steps of the start
    // and of each other — never 12 steps (the whole run) without one, as before.
    const during = [...new Set(at.filter((s) => s > 0 && s < 12))];
    expect(during.length).toBeGreaterThanOrEqual(2);
    expect(during[0]).toBeLessThanOrEqual(6);
    for (let i = 1; i < during.length; i++) expect(during[i] - during[i - 1]).toBeLessThanOrEqual(6);
  });
});
