import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { Engine, prepareRun, Registry, savePluginStates } from '@tfkd/engine';
import { loadPluginStates } from '@tfkd/engine/node';
import { Rng, RunSpec, type LossTerm, type Plugin, type RunSpecInput, type StepContext } from '@tfkd/kd-core';
import { testModule } from '@tfkd/kd-core/testing';
import { logitLossesModule } from '@tfkd/losses-logit';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { testConvModule } from './__fixtures__/models';
import { values } from './__fixtures__/reference';
import { featureLossesModule } from './module';

jest.setTimeout(120_000);

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const spec = (seed: number, over: Partial<RunSpecInput> = {}): RunSpec =>
  RunSpec.parse({
    seed,
    backend: 'cpu',
    data: { name: 'blobs', train: 24, test: 4 },
    teacher: { model: 'test-conv', seed: 11, train: { epochs: 1 } },
    student: { model: 'test-conv' },
    train: { epochs: 2, batchSize: 4, optimizer: { name: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 0 } },
    evalEvery: 100,
    plugins: [
      { use: 'loss/cross-entropy' },
      { use: 'loss/factor-transfer', with: { pairs: [['student.c1', 'teacher.c2']], paraphraserEpochs: 2 }, weight: 10 },
      { use: 'loss/crd', with: { pairs: [['student.c2', 'teacher.c2']], dim: 4 } },
      { use: 'loss/fitnets', with: { pairs: [['student.c1', 'teacher.c2']] } },
      { use: 'loss/attention', with: { pairs: [['student.c2', 'teacher.c2']] } },
    ],
    ...over,
  });

/** Fixed tap tensors for both roles (test-conv on 4×4 blobs: c1 [4,4,2], c2 [2,2,4]). */
const taps = () => ({
  student: { c1: tf.tensor4d(values(4 * 4 * 4 * 2, 301, 0, 1), [4, 4, 4, 2]), c2: tf.tensor4d(values(4 * 2 * 2 * 4, 302, 0, 1), [4, 2, 2, 4]) },
  teacher: { c2: tf.tensor4d(values(4 * 2 * 2 * 4, 303, 0, 1), [4, 2, 2, 4]) },
});

/** The plugin's loss on one fixed batch (samples 0–3), through its `loss` handler, with a fixed Rng. */
function lossOn(plugin: Plugin): number {
  let handler: ((ctx: StepContext) => void) | undefined;
  plugin.register({ on: (hook: string, h: unknown) => void (hook === 'loss' ? (handler = h as (ctx: StepContext) => void) : undefined) } as never);
  let total = 0;
  tf.tidy(() => {
    const t = taps() as Record<string, Record<string, tf.Tensor>>;
    const ctx = {
      roles: [
        { name: 'teacher', kind: 'teacher', trainable: false },
        { name: 'student', kind: 'student', trainable: true },
      ],
      rng: new Rng(77),
      batch: { x: tf.zeros([4, 4, 4, 1]), y: tf.tensor1d([0, 1, 2, 0], 'int32'), indices: Int32Array.from([0, 1, 2, 3]), size: 4 },
      outputs: (role: string) => ({ logits: tf.zeros([4, 3]), taps: t[role] }),
      addLoss: (term: LossTerm) => void (total += term.value.dataSync()[0] * (term.weight ?? 1)),
    } as unknown as StepContext;
    (handler as (ctx: StepContext) => void)(ctx);
  });
  return total;
}

describe('adapters saved with the student (kd-core savePluginStates / loadPluginStates)', () => {
  it('round trip: save after a run → load into fresh instances → identical loss on the same batch', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-adapters-'));
    const registry = () => new Registry([testModule(), testConvModule, logitLossesModule, featureLossesModule]);
    const a = await prepareRun(spec(5), { registry: registry(), cacheDir: null });
    await a.run();
    const saved = await savePluginStates(a.pluginInstances(), (file, data) => fs.writeFileSync(path.join(dir, file), data));
    // attention has no state; cross-entropy neither
    expect(saved).toEqual(['loss/factor-transfer', 'loss/crd', 'loss/fitnets']);
    expect(fs.readdirSync(dir).sort()).toEqual([
      'index.json',
      'loss_crd.json',
      'loss_crd.weights.bin',
      'loss_factor-transfer.json',
      'loss_factor-transfer.weights.bin',
      'loss_fitnets.json',
      'loss_fitnets.weights.bin',
    ]);
    const ftManifest = JSON.parse(fs.readFileSync(path.join(dir, 'loss_factor-transfer.json'), 'utf8'));
    expect(ftManifest).toMatchObject({ format: 'tfkd-plugin-state', version: 1, id: 'loss/factor-transfer', state: { pretrained: true } });
    expect(ftManifest.tensors.filter((t: { kind: string }) => t.kind === 'variable')).toHaveLength(6); // translator: 3 convs
    expect(ftManifest.tensors.filter((t: { kind: string }) => t.kind === 'buffer')).toHaveLength(12); // paraphraser: 6 convs
    const crdManifest = JSON.parse(fs.readFileSync(path.join(dir, 'loss_crd.json'), 'utf8'));
    expect(crdManifest.tensors.map((t: { kind: string; shape: number[] }) => `${t.kind} ${t.shape}`)).toEqual([
      'variable 16,4', 'variable 4', 'variable 16,4', 'variable 4', 'buffer 24,4', 'buffer 24,4',
    ]);
    // bytes: every tensor once, float32
    const floats = crdManifest.tensors.reduce((s: number, t: { shape: number[] }) => s + t.shape.reduce((x, y) => x * y, 1), 0);
    expect(fs.statSync(path.join(dir, 'loss_crd.weights.bin')).size).toBe(4 * floats);

    const ids = ['loss/factor-transfer', 'loss/crd', 'loss/fitnets'];
    const pluginOf = (e: Engine, id: string) => (e.pluginInstances().find((p) => p.id === id) as { plugin: Plugin }).plugin;
    const reference = ids.map((id) => lossOn(pluginOf(a, id)));
    a.dispose();

    // a fresh run prepared from the same entries (another seed: other initial adapters)
    const b = await prepareRun(spec(6), { registry: registry(), cacheDir: null });
    await b.prepare();
    const fresh = ids.map((id) => lossOn(pluginOf(b, id)));
    fresh.forEach((v, i) => expect(Math.abs(v - reference[i])).toBeGreaterThan(1e-4));
    expect(loadPluginStates(dir, b.pluginInstances())).toEqual(saved);
    const restored = ids.map((id) => lossOn(pluginOf(b, id)));
    restored.forEach((v, i) => expect(v).toBeCloseTo(reference[i], 6));
    expect((pluginOf(b, 'loss/factor-transfer').getState?.() as { pretrained: boolean }).pretrained).toBe(true);
    b.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('restoring into a plugin of another shape fails with KD_SHAPE_MISMATCH naming both', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-adapters-'));
    const registry = () => new Registry([testModule(), testConvModule, logitLossesModule, featureLossesModule]);
    const one = (dim: number) => spec(5, { plugins: [{ use: 'loss/crd', with: { pairs: [['student.c2', 'teacher.c2']], dim, mode: 'in-batch' } }] });
    const a = await prepareRun(one(4), { registry: registry(), cacheDir: null });
    await a.prepare();
    await savePluginStates(a.pluginInstances(), (file, data) => fs.writeFileSync(path.join(dir, file), data));
    a.dispose();
    const b = await prepareRun(one(3), { registry: registry(), cacheDir: null });
    await b.prepare();
    expect(() => loadPluginStates(dir, b.pluginInstances())).toThrow(
      expect.objectContaining({ code: 'KD_SHAPE_MISMATCH', message: expect.stringContaining('variables/0 [16,3]') }),
    );
    expect(() => loadPluginStates(path.join(dir, 'nothing'), b.pluginInstances())).toThrow(expect.objectContaining({ code: 'KD_DATA_MISSING' }));
    b.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
