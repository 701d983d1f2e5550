import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { runMain } from './__fixtures__/run-main';

jest.setTimeout(120_000);
const EXAMPLES = path.resolve(__dirname, '..', '..', '..', 'examples');

describe('third-party plugin package (examples/third-party-plugin)', () => {
  it('computes mean Σ p log p', async () => {
    await tf.setBackend('cpu');
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- a plain CommonJS package, as a user would write
    const { negativeEntropy } = require(path.join(EXAMPLES, 'third-party-plugin'));
    // z = [0, 0] → p = [½, ½] → Σ p log p = −ln 2; z = [ln 3, 0] → p = [¾, ¼] → ¾ ln ¾ + ¼ ln ¼.
    const v = (negativeEntropy(tf.tensor2d([[0, 0], [Math.log(3), 0]])) as tf.Scalar).dataSync()[0];
    expect(v).toBeCloseTo((-Math.log(2) + (0.75 * Math.log(0.75) + 0.25 * Math.log(0.25))) / 2, 6);
  });

  it('is loaded by the spec’s `packages:` and trains through `kd run`', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-3p-'));
    try {
      const { code } = await runMain([
        'run', path.join(EXAMPLES, 'third-party.yaml'), '--out', path.join(tmp, 'run'), '--quiet', '--backend', 'cpu',
        '--set', 'data={name: synthetic, train: 64, test: 32, numClasses: 10}', '--set', 'train.epochs=1',
      ]);
      expect(code).toBe(0);
      const h = JSON.parse(fs.readFileSync(path.join(tmp, 'run', 'history.jsonl'), 'utf8').trim());
      expect(Object.keys(h.train).sort()).toEqual(['loss', 'loss/confidence-penalty', 'loss/cross-entropy']);
      // −H ≤ 0 and ≥ −ln 10 for 10 classes.
      expect(h.train['loss/confidence-penalty']).toBeLessThanOrEqual(0);
      expect(h.train['loss/confidence-penalty']).toBeGreaterThanOrEqual(-Math.log(10));
      expect(h.train.loss).toBeCloseTo(h.train['loss/cross-entropy'] + 0.1 * h.train['loss/confidence-penalty'], 5);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
