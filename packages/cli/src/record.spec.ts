import '@tensorflow/tfjs-backend-cpu';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseSpec } from '@tfkd/kd-core';
import { runCommand } from './run';

// spec.resolved.yaml is a complete record: plugin defaults filled in, paths absolute, packages named —
// run again from another folder, it reproduces the run bit for bit (same backend).
jest.setTimeout(120_000);
const EXAMPLES = path.resolve(__dirname, '..', '..', '..', 'examples');

let tmp: string;
beforeEach(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-record-'))));
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

it('a resolved spec, copied to another folder and run there, gives the same metrics and weights', async () => {
  const a = path.join(tmp, 'a');
  fs.mkdirSync(a);
  // a teacher saved beside the spec, a third-party package by a relative path, options left to defaults
  const { modelTools, getModelDefinition } = await import('@tfkd/models');
  const teacher = getModelDefinition('mlp').build({ inputShape: [6, 6, 1], numClasses: 4, seed: 3, hidden: [16] });
  await modelTools.save(teacher, path.join(a, 'teacher'));
  teacher.dispose();
  const plugin = path.relative(a, path.join(EXAMPLES, 'third-party-plugin'));
  fs.writeFileSync(
    path.join(a, 'spec.yaml'),
    `seed: 4
backend: cpu
data: { name: synthetic, train: 48, test: 24, numClasses: 4, shape: [6, 6, 1] }
packages: [${plugin}]
teacher: { load: ./teacher }
student: { model: mlp, options: { hidden: [8] } }
train: { epochs: 2, batchSize: 16, optimizer: { name: adam, lr: 0.01, weightDecay: 0 } }
plugins:
  - use: loss/cross-entropy
    weight: 0.5
  - use: loss/hinton-kd
  - use: loss/confidence-penalty
    weight: 0.1
`,
  );
  const first = await runCommand(path.join(a, 'spec.yaml'), { out: path.join(a, 'run'), cacheDir: path.join(tmp, 'cache'), quiet: true, signals: false });
  const text = fs.readFileSync(path.join(a, 'run', 'spec.resolved.yaml'), 'utf8');
  const resolved = parseSpec(text);
  expect(resolved.plugins[1].with).toEqual({ temperature: 4, student: 'student', teacher: 'teacher' });
  expect(resolved.packages).toEqual([path.join(EXAMPLES, 'third-party-plugin')]);
  expect(resolved.teacher?.load).toBe(path.join(a, 'teacher'));
  expect(text).toMatch(/^# package \.\.\/.*third-party-plugin: [\w@/.-]+@\d+\.\d+\.\d+ sha256:[0-9a-f]{16} \(/m);
  expect((first.metrics.packages as { spec: string; hash: string }[])[0]).toMatchObject({ spec: plugin, hash: expect.stringMatching(/^[0-9a-f]{16}$/) });

  const b = path.join(tmp, 'b', 'elsewhere');
  fs.mkdirSync(b, { recursive: true });
  fs.copyFileSync(path.join(a, 'run', 'spec.resolved.yaml'), path.join(b, 'again.yaml'));
  const again = await runCommand(path.join(b, 'again.yaml'), { out: path.join(b, 'run'), cacheDir: path.join(tmp, 'cache2'), quiet: true, signals: false });
  expect(again.metrics.eval).toEqual(first.metrics.eval);
  expect(fs.readFileSync(path.join(b, 'run', 'history.jsonl'), 'utf8').replace(/"seconds":[\d.e-]+/g, '')).toBe(
    fs.readFileSync(path.join(a, 'run', 'history.jsonl'), 'utf8').replace(/"seconds":[\d.e-]+/g, ''),
  );
  expect(fs.readFileSync(path.join(b, 'run', 'student', 'weights.bin')).equals(fs.readFileSync(path.join(a, 'run', 'student', 'weights.bin')))).toBe(true);
  // and the record of the record is the record
  expect(parseSpec(fs.readFileSync(path.join(b, 'run', 'spec.resolved.yaml'), 'utf8'))).toEqual(resolved);
});
