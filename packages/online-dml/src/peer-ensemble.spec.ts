import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { computeCalibration, KdError, type EvalBatch, type EvalReport } from '@tfkd/kd-core';
import { fakePluginDeps, tidyValue } from '@tfkd/kd-core/testing';
import { studentRoles } from './__fixtures__/harness';
import { PeerEnsembleAccumulator, peerEnsembleMetric } from './peer-ensemble';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// Two students A, B; test batches of 2 and 1 samples, K = 3, labels [0, 2] and [1].
const BATCHES = [
  { labels: [0, 2], a: [2, 0, 0, 0, 1, 0], b: [0, 1, 0, 0, 0, 3] },
  { labels: [1], a: [1, 0, 0], b: [0, 2, 0] },
];

function feed(acc: PeerEnsembleAccumulator): void {
  // the engine's order: every batch of A, then every batch of B
  for (const role of ['a', 'b'] as const) for (const bt of BATCHES) acc.add(role, bt[role], bt.labels, 3);
}

describe('PeerEnsembleAccumulator (hand values)', () => {
  it('logit averaging: ensemble accuracy 3/3, nll = mean(lse(z̄) − z̄_y) = 0.608303; peer-mean (1/3 + 2/3)/2', () => {
    const acc = new PeerEnsembleAccumulator('logits');
    feed(acc);
    const r = acc.result();
    // z̄ = [1, .5, 0] (y 0), [0, .5, 1.5] (y 2), [.5, 1, 0] (y 1): nll 0.680270, 0.464369, 0.680270
    expect(r.ensemble.accuracy).toBe(1);
    expect(r.ensemble.nll).toBeCloseTo(0.6083027, 6);
    // A: right on sample 0 only; B: right on samples 1 and 2
    expect(r.members).toEqual({ a: 1 / 3, b: 2 / 3 });
    expect(r.peerMean.accuracy).toBeCloseTo(0.5, 12);
  });

  it('probability averaging: nll = −mean log p̄_y = 0.655674', () => {
    const acc = new PeerEnsembleAccumulator('probs');
    feed(acc);
    // p̄_y = 0.499464, 0.560692, 0.499464
    expect(acc.result().ensemble.nll).toBeCloseTo(0.6556745, 6);
    expect(acc.result().ensemble.accuracy).toBe(1);
  });

  it("ensemble calibration = metrics-ece on the averaged logits (hand: ECE over 3 samples)", () => {
    const acc = new PeerEnsembleAccumulator('logits');
    feed(acc);
    const r = acc.result();
    const zbar = [1, 0.5, 0, 0, 0.5, 1.5, 0.5, 1, 0];
    const direct = computeCalibration(zbar, [0, 2, 1], { input: 'logits' });
    expect(r.ensemble.ece).toBe(direct.ece);
    expect(r.ensemble.brier).toBe(direct.brier);
    // all three right; confidences softmax max: 0.506480, 0.628532, 0.506480 → ECE = 1 − mean conf
    const conf = [0.5064804, 0.6285317, 0.5064804];
    expect(r.ensemble.ece).toBeCloseTo(1 - conf.reduce((a, b) => a + b) / 3, 6);
  });

  it('rejects a role whose n-th batch has other labels than the n-th batch of the roles before', () => {
    const acc = new PeerEnsembleAccumulator();
    acc.add('a', [1, 0, 0], [0], 3);
    expect(() => acc.add('b', [1, 0, 0], [1], 3)).toThrow("role 'b' saw a different test batch at position 0");
  });
});

describe('metric/peer-ensemble plugin', () => {
  function run(roles = studentRoles(2), options: Record<string, unknown> = {}) {
    const plugin = peerEnsembleMetric.create(peerEnsembleMetric.options.parse(options), fakePluginDeps('metric/peer-ensemble', roles));
    const handlers: Record<string, (p: unknown) => unknown> = {};
    plugin.register({ on: (hook: string, h: (p: unknown) => unknown) => void (handlers[hook] = h) } as never);
    const metrics: Record<string, Record<string, number>> = {};
    const report: EvalReport = { phase: 'distill', epoch: 1, metrics, set: (role, v) => void (metrics[role] = { ...(metrics[role] ?? {}), ...v }) };
    return { handlers, report, metrics };
  }

  it('sets ensemble { accuracy, nll } and peer-mean { accuracy } on evalEnd, then starts over', () => {
    const { handlers, report, metrics } = run();
    for (let round = 0; round < 2; round++) {
      for (const [role, key] of [['student.0', 'a'], ['student.1', 'b']] as const) {
        for (const bt of BATCHES) {
          tf.tidy(() => {
            const e: EvalBatch = { phase: 'distill', epoch: 1, role, logits: tf.tensor2d(bt[key], [bt.labels.length, 3]), labels: tf.tensor1d(bt.labels, 'int32') };
            handlers.evalBatch(e);
          });
        }
      }
      handlers.evalEnd(report);
      expect(metrics.ensemble.accuracy).toBe(1);
      expect(metrics.ensemble.nll).toBeCloseTo(0.6083027, 6);
      expect(metrics['peer-mean']).toEqual({ accuracy: expect.closeTo(0.5, 12) });
    }
  });

  it('ignores roles outside the cohort and a teacher-only evaluation', () => {
    const roles = [{ name: 'teacher', kind: 'teacher' as const, trainable: false }, ...studentRoles(2)];
    const { handlers, report, metrics } = run(roles);
    tidyValue(() => handlers.evalBatch({ phase: 'distill', epoch: 0, role: 'teacher', logits: tf.tensor2d([[1, 0, 0]]), labels: tf.tensor1d([0], 'int32') }));
    handlers.evalEnd(report);
    expect(metrics).toEqual({});
  });

  it('one student (ONE\'s single model, a plain run) or none: KD_PLUGIN_OPTIONS at its spec path, with the fix', () => {
    for (const [roles, what] of [[studentRoles(1), "one ('student.0')"], [[{ name: 'teacher', kind: 'teacher' as const, trainable: false }], 'none']] as const) {
      let error: unknown = null;
      try {
        run([...roles]);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(KdError);
      expect((error as KdError).code).toBe('KD_PLUGIN_OPTIONS');
      expect((error as KdError).message).toBe(`'metric/peer-ensemble' needs at least two students to ensemble; this run has ${what}`);
      expect((error as KdError).fix).toMatch(/^drop peer-ensemble from `eval:`/);
    }
  });
});
