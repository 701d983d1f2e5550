import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { runSpec } from '@tfkd/engine';
import { RunSpec } from '@tfkd/kd-core';
import { calibrationArtifacts, testLogits } from './calibration';
import { defaultRegistry } from './modules';

// Evaluation happens once: the engine keeps the test logits of its last evaluation, and the run
// folder's calibration (reliability diagrams, temperature scaling) reads them instead of forwarding
// the test set again.
describe('calibration reuses the engine evaluation', () => {
  it('RunResult.testLogits equal a fresh forward of each final model, and calibrationArtifacts forwards the test set no more', async () => {
    await tf.setBackend('cpu');
    const spec = RunSpec.parse({
      seed: 3,
      backend: 'cpu',
      data: { name: 'synthetic', train: 48, test: 20, numClasses: 3, shape: [4, 4, 1] },
      teacher: { model: 'mlp', options: { hidden: [8] }, seed: 1, train: { epochs: 2, batchSize: 16 } },
      student: { model: 'mlp', options: { hidden: [4] }, view: { resize: [2, 2], upsample: true } },
      train: { epochs: 2, batchSize: 16, optimizer: { name: 'adam', lr: 0.01, weightDecay: 0 } },
      plugins: [{ use: 'loss/cross-entropy', weight: 0.5 }, { use: 'loss/hinton-kd', weight: 0.5 }],
      eval: ['accuracy', 'ece'],
    });
    const result = await runSpec(spec, { registry: defaultRegistry(), cacheDir: null });
    try {
      for (const role of ['teacher', 'student']) {
        const model = result.models.get(role)!;
        const view = role === 'student' ? { view: spec.student?.view, name: role, specPath: role } : undefined;
        expect(Array.from(result.testLogits[role])).toEqual(Array.from(testLogits(model, result.data.test, view)));
      }
      const calls: string[] = [];
      result.models.forEach((m, role) => {
        const predict = m.predict.bind(m);
        m.predict = ((...a: Parameters<typeof predict>) => (calls.push(role), predict(...a))) as typeof m.predict;
      });
      const svgs: string[] = [];
      const numbers = await calibrationArtifacts(result, (name) => void svgs.push(name));
      expect(calls).toEqual([]);
      expect(svgs.sort()).toEqual(['reliability-student.svg', 'reliability-teacher.svg']);
      // the ECE the metric plugin computed during the run is the one the diagrams report
      expect(numbers.student.ece).toBeCloseTo(result.eval.student.ece, 6);
    } finally {
      result.models.forEach((m) => m.dispose());
    }
  });
});
