/// <reference types="jest" />
import * as tf from '@tensorflow/tfjs-core';
import type { ContainerModule } from 'inversify';
import { z } from 'zod';
import { Engine } from '../engine';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { definePlugin, isKdError, type KdError, PLUGIN_DEFINITION, type PluginDefinition, RunSpec, type RunSpecInput, type Task, TASKS } from '@tfkd/kd-core';
import { Registry } from '../registry';
import { denseModel, testModelTools, testModule } from '@tfkd/kd-core/testing';

/** A sampler for contract tests: keeps the first half of every batch (untransformed), a dense task's objects and masks with it. */
export const halfBatchSampler = definePlugin({
  id: 'test/half-batch',
  kind: 'sampler',
  describe: 'keeps the first half of each batch (test fixture)',
  options: z.object({}).strict(),
  tasks: TASKS,
  create: (_o, deps) => ({
    name: deps.name,
    register(bus) {
      bus.on('batchStart', (ctx) => {
        const k = Math.max(1, Math.floor(ctx.batch.size / 2));
        const { objects, masks } = ctx.batch;
        ctx.replaceBatch(
          {
            x: tf.slice(ctx.batch.x, 0, k), y: tf.slice(ctx.batch.y, 0, k), indices: ctx.batch.indices?.slice(0, k) ?? null,
            ...(objects ? { objects: objects.slice(0, k) } : {}), ...(masks ? { masks: tf.slice(masks, 0, k) } : {}),
          },
          { transformed: false },
        );
      });
    },
  }),
});

export interface PluginContractOptions {
  /** The package's ContainerModule (what a spec's `packages:` loads). */
  module: ContainerModule;
  /** The plugin id to check. */
  id: string;
  /** Valid `with:` options for a run (default `{}`). */
  options?: Record<string, unknown>;
  /** Options that must be rejected with KD_PLUGIN_OPTIONS (default: an unknown key). */
  invalidOptions?: Record<string, unknown>;
  /** Whether the plugin reads a teacher (default true for losses): the contract adds one. */
  needsTeacher?: boolean;
  /** Other plugins in the run (default: `test/ce`, a cross-entropy fixture), e.g. when the plugin adds no loss. */
  stack?: { use: string; with?: Record<string, unknown>; weight?: number }[];
  /** The student role (default `{ model: 'test-dense' }`), e.g. a multi-head model the plugin needs. */
  student?: Record<string, unknown>;
  /** More modules for the run's registry, e.g. one binding the student's model definition. */
  modules?: ContainerModule[];
  /** The run's task (default classification); `data`, `student` and `teacher` must fit it. */
  task?: Task;
  /** The run's `data:` for a training set of `train` and a test set of `test` samples (default: the `blobs` fixture of kd-core). */
  data?: (size: { train: number; test: number }) => { name: string } & Record<string, unknown>;
  /** The teacher the run loads (default: a test-dense model on 4×4×1 images, 3 classes), e.g. a detector. */
  teacher?: () => LayersModel;
  /** More keys of the run's spec, e.g. the `players:` a plugin with a player objective trains. */
  spec?: Partial<RunSpecInput>;
}

const TEACHER_DIR = '/kd-contract/teacher';

/**
 * The contract every plugin package can run in one line inside a jest spec:
 * `describePluginContract({ module: kdModule, id: 'loss/my-loss' })`. It checks that the module
 * binds the id; that the options schema has defaults for every field it does not require; that bad
 * options fail with KD_PLUGIN_OPTIONS naming the path; that a run with the plugin registers,
 * steps and evaluates; that `tf.memory().numTensors` is equal after step 5 and step 30; and that the
 * plugin stacks with a sampler that shrinks the batch.
 */
export function describePluginContract(o: PluginContractOptions): void {
  const registry = () => new Registry([testModule(halfBatchSampler), ...(o.modules ?? []), o.module]);
  const baseSpec = (plugins: RunSpecInput['plugins'], over: Partial<RunSpecInput> = {}): RunSpec =>
    RunSpec.parse({
      seed: 1,
      backend: 'cpu',
      data: data({ train: 16, test: 8 }),
      ...(o.task ? { task: o.task } : {}),
      student: o.student ?? { model: 'test-dense' },
      ...((o.needsTeacher ?? true) ? { teacher: { load: TEACHER_DIR } } : {}),
      train: { epochs: 1, batchSize: 4, optimizer: { name: 'sgd', lr: 0.05, momentum: 0, weightDecay: 0 } },
      plugins,
      ...o.spec,
      ...over,
    });
  const data = o.data ?? ((size: { train: number; test: number }) => ({ name: 'blobs', ...size }));
  const stack = o.stack ?? [{ use: 'test/ce' }];
  const entry = { use: o.id, with: o.options ?? {} };

  describe(`plugin contract: ${o.id}`, () => {
    beforeAll(async () => {
      await tf.setBackend('cpu');
      const teacher = o.teacher?.() ?? denseModel({ inputShape: [4, 4, 1], numClasses: 3, seed: 99, hidden: 8 });
      await testModelTools.save(teacher, TEACHER_DIR);
      teacher.dispose();
    });

    it('is bound by the module, with a description and a valid options schema', () => {
      const r = new Registry([o.module]);
      expect(r.container.isBound(PLUGIN_DEFINITION)).toBe(true);
      const def: PluginDefinition = r.plugin(o.id, 'contract');
      expect(def.describe.length).toBeGreaterThan(0);
      expect(def.options.safeParse(o.options ?? {}).success).toBe(true);
    });

    it('rejects bad options with KD_PLUGIN_OPTIONS and the option path', async () => {
      const bad = o.invalidOptions ?? { ...(o.options ?? {}), notAnOption__: 1 };
      const engine = new Engine(baseSpec([...stack, { use: o.id, with: bad }]), { registry: registry() });
      const e = (await engine.prepare().then(() => null, (x: unknown) => x)) as KdError | null;
      expect(e && isKdError(e) ? e.code : e).toBe('KD_PLUGIN_OPTIONS');
      expect(e?.path).toMatch(new RegExp(`^plugins\\[${stack.length}\\]\\.with`));
    });

    it('runs, and leaks no tensor: numTensors after step 5 equals numTensors after step 30', async () => {
      const engine = new Engine(baseSpec([...stack, entry], { data: data({ train: 120, test: 8 }) }), { registry: registry() });
      const stepper = await engine.stepper();
      const counts: number[] = [];
      for (let i = 0; i < 30; i++) {
        const r = stepper.step();
        expect(Number.isFinite(r.loss)).toBe(true);
        counts.push(tf.memory().numTensors);
      }
      engine.dispose();
      expect(counts[29]).toBe(counts[4]);
    });

    it('stacks with a sampler that halves the batch', async () => {
      // one engine run of the plugin (a multi-generation plugin's first generation, as written)
      const engine = new Engine(baseSpec([{ use: 'test/half-batch' }, ...stack, entry]), { registry: registry() });
      try {
        const r = await engine.run();
        expect(r.ledger.roles.student.backwardImages).toBe(8);
        expect(Number.isFinite(r.history[0].train.loss)).toBe(true);
      } finally {
        engine.dispose();
      }
    });
  });
}
