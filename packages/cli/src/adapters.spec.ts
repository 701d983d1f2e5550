import { prepareRun } from '@tfkd/engine';
import { loadPluginStates } from '@tfkd/engine/node';
import { parseSpec } from '@tfkd/kd-core';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { main } from './main';
import { defaultRegistry } from './modules';

jest.setTimeout(120_000);

let tmp: string;
const origErr = process.stderr.write.bind(process.stderr);
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-adapters-'));
  process.stderr.write = (() => true) as typeof process.stderr.write;
});
afterEach(() => {
  process.stderr.write = origErr;
  fs.rmSync(tmp, { recursive: true, force: true });
});

const specText = (plugins: string) => `
seed: 2
backend: cpu
data: { name: synthetic, train: 32, test: 16, numClasses: 4, shape: [6, 6, 1] }
teacher: { model: mlp, options: { hidden: [16] }, seed: 1, train: { epochs: 1, optimizer: { name: adam, lr: 0.01, weightDecay: 0 } } }
student: { model: mlp, options: { hidden: [8] } }
train: { epochs: 1, batchSize: 8, optimizer: { name: adam, lr: 0.01, weightDecay: 0 } }
plugins:
  - use: loss/cross-entropy
${plugins}
`;

describe('kd run writes adapters/ next to the student', () => {
  it('FitNets adapter and CRD heads + memory banks: written, and restorable into a fresh engine of the same spec', async () => {
    const text = specText(`  - use: loss/fitnets
    with: { pairs: [[student.fc1, teacher.fc1]] }
  - use: loss/crd
    name: crd-bank
    with: { pairs: [[student.embedding, teacher.embedding]], dim: 4 }
`);
    const file = path.join(tmp, 'spec.yaml');
    fs.writeFileSync(file, text);
    const out = path.join(tmp, 'run');
    expect(await main(['run', file, '--out', out, '--cache-dir', path.join(tmp, 'cache'), '--quiet'])).toBe(0);
    const dir = path.join(out, 'adapters');
    expect(fs.readdirSync(dir).sort()).toEqual(['crd-bank.json', 'crd-bank.weights.bin', 'index.json', 'loss_fitnets.json', 'loss_fitnets.weights.bin']);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')).plugins).toEqual([
      { name: 'loss/fitnets', id: 'loss/fitnets', file: 'loss_fitnets.json' },
      { name: 'crd-bank', id: 'loss/crd', file: 'crd-bank.json' },
    ]);
    const crd = JSON.parse(fs.readFileSync(path.join(dir, 'crd-bank.json'), 'utf8'));
    expect(crd.state.negatives).toBeGreaterThan(0);
    expect(crd.state.z[0]).toHaveLength(2);
    expect(crd.tensors.filter((t: { kind: string }) => t.kind === 'buffer').map((t: { shape: number[] }) => t.shape)).toEqual([
      [32, 4],
      [32, 4],
    ]);

    const engine = await prepareRun(parseSpec(text, file), { registry: defaultRegistry(), cacheDir: path.join(tmp, 'cache') });
    await engine.prepare();
    const fitnets = engine.pluginInstances().find((p) => p.name === 'loss/fitnets')!.plugin;
    const fresh = fitnets.variables!().map((v) => Array.from(v.dataSync()));
    expect(loadPluginStates(dir, engine.pluginInstances())).toEqual(['loss/fitnets', 'crd-bank']);
    const restored = fitnets.variables!().map((v) => Array.from(v.dataSync()));
    expect(restored).not.toEqual(fresh);
    const crdPlugin = engine.pluginInstances().find((p) => p.name === 'crd-bank')!.plugin;
    expect((crdPlugin.getState!() as { z: unknown[] }).z).toEqual(crd.state.z);
    engine.dispose();
  });

  it('a run whose plugins hold no state writes no adapters/ folder', async () => {
    const file = path.join(tmp, 'plain.yaml');
    fs.writeFileSync(file, specText('  - use: loss/hinton-kd\n'));
    const out = path.join(tmp, 'plain');
    expect(await main(['run', file, '--out', out, '--cache-dir', path.join(tmp, 'cache'), '--quiet'])).toBe(0);
    expect(fs.existsSync(path.join(out, 'adapters'))).toBe(false);
  });
});
