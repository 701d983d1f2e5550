import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

// docs/api.md shows examples/code/distill-in-code.ts; this runs that file and checks the doc still
// shows it as it is.
const ROOT = path.resolve(__dirname, '..', '..', '..');
const EXAMPLE = path.join(ROOT, 'examples', 'code', 'distill-in-code.ts');

jest.setTimeout(120_000);

describe('docs/api.md: use it from code', () => {
  it('shows examples/code/distill-in-code.ts verbatim', () => {
    const doc = fs.readFileSync(path.join(ROOT, 'docs', 'api.md'), 'utf8');
    const shown = /```ts file=examples\/code\/distill-in-code\.ts\n([\s\S]*?)```/.exec(doc)?.[1];
    expect(shown).toBe(fs.readFileSync(EXAMPLE, 'utf8'));
  });

  it('the example runs: the distilled student learns the clusters from its teacher (the History says so, per epoch)', async () => {
    await tf.setBackend('cpu');
    const { main } = await import(EXAMPLE);
    const lines: string[] = [];
    const { teacher, student, history } = await main((l: string) => lines.push(l));
    expect(lines).toHaveLength(20);
    expect(lines[19]).toMatch(/^epoch 20: loss \d\.\d{4}, val_accuracy \d\.\d{3}$/);
    const kd = history.history['loss/hinton-kd'];
    expect(kd[19]).toBeLessThan(kd[0]);
    // teacher evaluated once before distilling, the student after every epoch: both learn the clusters
    expect(history.result.eval.teacher.accuracy).toBeGreaterThan(0.9);
    expect(history.history.val_accuracy[19]).toBeGreaterThan(0.8);
    teacher.dispose();
    student.dispose();
  });
});
