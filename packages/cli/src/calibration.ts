import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { applyView, roleSpecs, type RunResult } from '@tfkd/engine';
import { batchTensors, firstOutput, type Dataset, type ViewSpec } from '@tfkd/kd-core';
import { computeCalibration, fitTemperature, scaleLogits } from '@tfkd/metrics-ece';
import { reliabilitySvg } from './charts';

/**
 * Test-set logits of a model, [n·K] row-major, computed in tidy batches. With the role's `view`
 * (cross-quality KD) the images are resized exactly as in training and in the engine's evaluation.
 */
export function testLogits(model: LayersModel, test: Dataset, view?: { view?: ViewSpec; name: string; specPath: string }, batchSize = 500): Float32Array {
  const n = test.labels.length;
  const k = (model.outputs[0].shape as number[])[1];
  const out = new Float32Array(n * k);
  const inputShape = (model.inputs[0].shape as number[]).slice(1);
  for (let s = 0; s < n; s += batchSize) {
    const idx = Int32Array.from({ length: Math.min(batchSize, n - s) }, (_, i) => s + i);
    const rows = tf.tidy(() => {
      const { x } = batchTensors(test, idx);
      // a multi-exit model (byot-resnet) predicts [logits, head1, …]: the logits are the first
      const input = applyView(x, view?.view, inputShape, view ?? { name: 'model', specPath: 'model' });
      const logits = firstOutput(model.predict(input) as tf.Tensor | tf.Tensor[]);
      return logits.dataSync() as Float32Array;
    });
    out.set(rows, s * k);
  }
  return out;
}

/**
 * Calibration of every role's final model on the test split, written as reliability diagrams
 * (`reliability-<role>.svg`); returns the numbers to merge into metrics.json.
 */
export async function calibrationArtifacts(
  result: RunResult,
  write: (name: string, svg: string) => void,
): Promise<Record<string, Record<string, number>>> {
  const out: Record<string, Record<string, number>> = {};
  const specs = roleSpecs(result.spec);
  for (const [role, model] of result.models) {
    // A player (an adversarial critic) scores maps, not images: no calibration.
    if (result.players?.includes(role)) continue;
    const r = specs.find((x) => x.name === role);
    const view = r && { view: r.spec.view, name: role, specPath: r.specPath };
    const k = (model.outputs[0].shape as number[])[1];
    // The engine's own final evaluation forwarded the test set; its logits serve the diagram and temperature scaling.
    const logits = result.testLogits[role] ?? testLogits(model, result.data.test, view);
    const c = computeCalibration(logits, result.data.test.labels, { input: 'logits', numClasses: k });
    write(`reliability-${role.replace(/[^a-z0-9.-]/gi, '_')}.svg`, await reliabilitySvg(c, { title: `${role}: reliability (test, ${c.n} images)` }));
    out[role] = { ece: c.ece, mce: c.mce, adaptiveEce: c.adaptiveEce, classwiseEce: c.classwiseEce, nll: c.nll, brier: c.brier };
    const held = result.data.validation;
    if (held && result.roles.find((r) => r.name === role)?.kind === 'student') {
      // Temperature scaling: T fitted on the held-out training split, applied to the test logits.
      const fit = fitTemperature(testLogits(model, held, view), held.labels, { numClasses: k });
      const scaled = scaleLogits(logits, fit.temperature, k);
      const after = computeCalibration(scaled, result.data.test.labels, { input: 'logits', numClasses: k });
      write(`reliability-${role.replace(/[^a-z0-9.-]/gi, '_')}-temperature.svg`, await reliabilitySvg(after, { title: `${role}: reliability after temperature scaling (T = ${fit.temperature.toFixed(3)})` }));
      Object.assign(out[role], { temperature: fit.temperature, eceScaled: after.ece, mceScaled: after.mce, nllScaled: after.nll, brierScaled: after.brier, heldOut: held.labels.length });
    }
  }
  return out;
}
