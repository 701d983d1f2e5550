import { CalibrationAccumulator, definePlugin, KdError, type EvalBatch, type EvalReport, type PluginDeps } from '@tfkd/kd-core';
import { z } from 'zod';
import { studentsOption } from './common';

/** How the members are combined: mean of logits (default), or mean of softmax probabilities. */
export type EnsembleAverage = 'logits' | 'probs';

interface BatchSlot {
  k: number;
  labels: Int32Array;
  /** Σ over members of their logits (or probabilities), [n·K], float64. */
  sum: Float64Array;
  members: number;
}

export interface PeerEnsembleResult {
  /** The ensemble's accuracy and NLL, and its calibration (metrics-ece: 15 bins, top-label). */
  ensemble: { accuracy: number; nll: number; ece: number; mce: number; brier: number };
  peerMean: { accuracy: number };
  /** Accuracy of each member, by role. */
  members: Record<string, number>;
}

/**
 * Accumulates the test-batch outputs of several roles and combines them. `add` is called per role
 * per test batch; the engine visits the roles one after another, each over the same batches in the
 * same order, so the n-th call of a role is keyed to batch position n.
 */
export class PeerEnsembleAccumulator {
  private readonly slots: BatchSlot[] = [];
  private readonly seen = new Map<string, { batches: number; correct: number; n: number }>();

  constructor(private readonly average: EnsembleAverage = 'logits') {}

  get size(): number {
    return this.seen.size;
  }

  add(role: string, logits: ArrayLike<number>, labels: ArrayLike<number>, k: number): void {
    const stat = this.seen.get(role) ?? { batches: 0, correct: 0, n: 0 };
    const n = labels.length;
    let slot = this.slots[stat.batches];
    if (!slot) {
      slot = { k, labels: Int32Array.from(labels), sum: new Float64Array(n * k), members: 0 };
      this.slots[stat.batches] = slot;
    } else if (slot.labels.length !== n || slot.k !== k || slot.labels.some((y, b) => y !== labels[b])) {
      throw new Error(`peer-ensemble: role '${role}' saw a different test batch at position ${stat.batches} than the roles before it`);
    }
    const row = new Float64Array(k);
    for (let b = 0; b < n; b++) {
      for (let c = 0; c < k; c++) row[c] = logits[b * k + c];
      if (argmax(row) === labels[b]) stat.correct++;
      const v = this.average === 'probs' ? softmax(row) : row;
      for (let c = 0; c < k; c++) slot.sum[b * k + c] += v[c];
    }
    slot.members++;
    stat.batches++;
    stat.n += n;
    this.seen.set(role, stat);
  }

  result(): PeerEnsembleResult {
    let correct = 0;
    let nll = 0;
    let total = 0;
    const calibration = new CalibrationAccumulator({ input: this.average });
    for (const s of this.slots) {
      const row = new Float64Array(s.k);
      const mean = new Float64Array(s.labels.length * s.k);
      for (let b = 0; b < s.labels.length; b++) {
        for (let c = 0; c < s.k; c++) row[c] = mean[b * s.k + c] = s.sum[b * s.k + c] / s.members;
        const y = s.labels[b];
        if (argmax(row) === y) correct++;
        nll += this.average === 'probs' ? -Math.log(Math.max(row[y], 1e-300)) : logSumExp(row) - row[y];
      }
      total += s.labels.length;
      calibration.update(mean, s.labels);
    }
    const cal = calibration.result();
    const members = Object.fromEntries([...this.seen].map(([role, s]) => [role, s.n ? s.correct / s.n : NaN]));
    const accs = Object.values(members);
    return {
      ensemble: { accuracy: correct / total, nll: nll / total, ece: cal.ece, mce: cal.mce, brier: cal.brier },
      peerMean: { accuracy: accs.reduce((a, b) => a + b, 0) / accs.length },
      members,
    };
  }

  reset(): void {
    this.slots.length = 0;
    this.seen.clear();
  }
}

function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

function logSumExp(row: Float64Array): number {
  const m = Math.max(...row);
  let s = 0;
  for (const v of row) s += Math.exp(v - m);
  return m + Math.log(s);
}

function softmax(row: Float64Array): Float64Array {
  const lse = logSumExp(row);
  return row.map((v) => Math.exp(v - lse));
}

export const peerEnsembleSchema = z
  .object({
    average: z
      .enum(['logits', 'probs'])
      .default('logits')
      .describe("how the students are combined: 'logits' (mean logits, then softmax; default) or 'probs' (mean softmax probabilities)"),
    students: studentsOption,
  })
  .strict();

function members(deps: PluginDeps, named: readonly string[]): string[] {
  return named.length > 0 ? [...named] : deps.roles.filter((r) => r.kind === 'student').map((r) => r.name);
}

/**
 * `metric/peer-ensemble`: on every evaluation, the ensemble of all students (report entry
 * `ensemble`: accuracy, nll) and the mean of the students' accuracies (`peer-mean`: accuracy).
 */
export const peerEnsembleMetric = definePlugin({
  id: 'metric/peer-ensemble',
  kind: 'metric',
  describe:
    "ensemble of the students: report entries 'ensemble' { accuracy, nll, ece, mce, brier } (mean logits by default) and 'peer-mean' { accuracy } (mean of the students' accuracies)",
  options: peerEnsembleSchema,
  requires: (o) => (o.students.length > 0 ? { roles: [...o.students] } : {}),
  create(o, deps) {
    const roles = members(deps, o.students);
    // One model is no ensemble: its entries would repeat the student's (ONE's gated output is its student).
    if (roles.length < 2) {
      throw new KdError('KD_PLUGIN_OPTIONS', `'${deps.name}' needs at least two students to ensemble; this run has ${roles.length === 1 ? `one ('${roles[0]}')` : 'none'}`, {
        path: deps.specPath,
        fix: 'drop peer-ensemble from `eval:` (a single model is evaluated as `student`), or give the run two or more students (`students:`)',
      });
    }
    const acc = new PeerEnsembleAccumulator(o.average);
    return {
      name: deps.name,
      register(bus) {
        bus.on('evalBatch', (e: EvalBatch) => {
          if (!roles.includes(e.role)) return;
          acc.add(e.role, e.logits.dataSync(), e.labels.dataSync(), e.logits.shape[e.logits.rank - 1] as number);
        });
        bus.on('evalEnd', (report: EvalReport) => {
          // A teacher-only evaluation (before training) has no student batches.
          if (acc.size === 0) return;
          const r = acc.result();
          acc.reset();
          report.set('ensemble', r.ensemble);
          report.set('peer-mean', r.peerMean);
        });
      },
      dispose() {
        acc.reset();
      },
    };
  },
});
