import * as tf from '@tensorflow/tfjs-core';
import { type Batch, batchTensors, type Dataset, type EvalReport, isDotOptimizer, isKdError, KdError, type LifecycleBus } from '@tfkd/kd-core';
import { StepContextImpl, viewFor, type StepHost } from './context';
import type { PlayerStep } from './players';
import type { RoleRuntime } from './roles';

export interface StepInput {
  phase: string;
  epoch: number;
  epochs: number;
  batchIndex: number;
  step: number;
  indices: Int32Array;
}

// A type, not an interface: `tf.tidy` returns it (an object type without an index signature would not be a TensorContainer).
export type StepResult = {
  loss: number;
  terms: Record<string, number>;
  images: number;
  skipped: boolean;
};

export interface TrainHost extends StepHost {
  bus: LifecycleBus;
  train: Dataset;
  /** Trainable roles with their variables (plugin variables ride with the first student). */
  trainables: { role: RoleRuntime; variables: tf.Variable[]; weightDecay: number }[];
  /** Teacher roles some loss needs: forwarded before the gradient tape so it records nothing of them. */
  prefetch: string[];
  /** Players trained in this phase (spec `players:`, their trainer active): stepped after the students. */
  players?: PlayerStep[];
  nonFinite: 'stop' | 'skip-batch';
}

/**
 * One training step, top to bottom, inside one tidy scope:
 * batchStart (samplers) → prefetch teachers → loss (inside variableGrads) → finiteness check →
 * weight decay and optimizer step per trainable role → the players' steps (spec `players:`, each on its
 * own objective and optimizer: `playerSteps`). Only numbers leave. With DOT (`name: dot`) the
 * loss is differentiated twice, its distillation terms and its task terms apart (`splitGrads`), and
 * DOT applies its own weight decay.
 */
export function trainStep(host: TrainHost, input: StepInput): StepResult {
  return tf.tidy(() => {
    // `dense`: a detection or segmentation dataset's objects / masks (absent otherwise).
    const { x, y, ...dense } = batchTensors(host.train, input.indices);
    const batch: Batch = { x, y, indices: input.indices, size: input.indices.length, ...dense };
    const ctx = new StepContextImpl(host, batch, input.phase, input.epoch, input.epochs, input.batchIndex, input.step);
    // With players, the step's outputs outlive the students' gradient scope: their objectives read them after.
    if (host.players?.length) ctx.retain();
    try {
      return studentsThenPlayers(host, input, ctx);
    } finally {
      ctx.release();
    }
  });
}

/** The step's body, in `trainStep`'s tidy scope: the students' update, then the players'. */
function studentsThenPlayers(host: TrainHost, input: StepInput, ctx: StepContextImpl): StepResult {
  const scope = (_: unknown, owner: string) => ctx.scoped(owner);

  host.bus.emit('batchStart', ctx, scope);
  for (const role of host.prefetch) ctx.outputs(role);

  const allVars = host.trainables.flatMap((t) => t.variables);
  // variableGrads disposes what its function creates, except the result: keep the terms' values.
  let packed: tf.Tensor | null = null;
  const forward = (): tf.Scalar => {
    host.bus.emit('loss', ctx, scope);
    const total = ctx.total();
    packed = tf.keep(tf.stack([total, ...ctx.terms.map((t) => t.value)]));
    return total;
  };
  let grads: tf.NamedTensorMap = {};
  // DOT: the task and the distillation gradients apart, from one forward.
  let parts: SplitGrads | null = null;
  try {
    if (host.trainables.some((t) => isDotOptimizer(t.role.optimizer))) {
      parts = splitGrads(() => {
        forward();
        return { task: ctx.totalOf('task'), distill: ctx.totalOf('distill') };
      }, allVars);
    } else {
      grads = tf.variableGrads(forward, allVars).grads;
    }
  } catch (e) {
    (packed as tf.Tensor | null)?.dispose();
    releaseTape();
    if (!isKdError(e) && /Cannot find a connection between any variable/.test((e as Error)?.message ?? '')) {
      throw new KdError('KD_PLUGIN_DEPENDENCY', `no loss term depends on a trainable weight (terms: ${ctx.terms.map((t) => t.name).join(', ')}) at ${input.phase} epoch ${input.epoch} batch ${input.batchIndex}`, {
        path: 'plugins',
        fix: "every loss must read a student's outputs (ctx.outputs('student')), not only teachers' or constants",
        cause: e,
      });
    }
    throw e;
  }
  // One read-back for the total, every term and the squared gradient norm (DOT: of both gradients).
  const gradList = parts ? [...Object.values(parts.task), ...Object.values(parts.distill)] : Object.values(grads);
  const gradNorm2 = gradList.length ? tf.addN(gradList.map((g) => tf.sum(tf.square(g)))) : tf.scalar(0);
  const values = tf.concat([packed as unknown as tf.Tensor, tf.reshape(gradNorm2, [1])]).dataSync();
  (packed as unknown as tf.Tensor).dispose();
  const terms: Record<string, number> = {};
  ctx.terms.forEach((t, i) => (terms[t.name] = (terms[t.name] ?? 0) + values[i + 1]));
  const loss = values[0];
  const gradFinite = Number.isFinite(values[values.length - 1]);
  if (!Number.isFinite(loss) || !gradFinite) {
    const bad = ctx.terms.filter((_, i) => !Number.isFinite(values[i + 1])).map((t) => t.name);
    const what = !Number.isFinite(loss)
      ? `loss is ${loss}; non-finite terms: ${bad.join(', ') || '(the weighted sum)'}`
      : `loss is finite (${loss}) but a gradient is NaN/Inf (terms: ${ctx.terms.map((t) => t.name).join(', ')})`;
    if (host.nonFinite === 'stop') {
      throw new KdError('KD_LOSS_NONFINITE', `${what} at ${input.phase} epoch ${input.epoch} batch ${input.batchIndex}`, {
        path: 'nonFinite',
        fix: 'lower the learning rate or the offending term’s weight, or set `nonFinite: skip-batch`',
      });
    }
    return { loss, terms, images: ctx.batch.size, skipped: true };
  }

  for (const t of host.trainables) {
    const opt = t.role.optimizer;
    if (parts && isDotOptimizer(opt)) {
      // DOT adds the weight decay itself (to the task gradient; a weight without one: to its distillation gradient).
      opt.applyDot(t.variables, parts.task, parts.distill);
    } else {
      const named: tf.NamedTensorMap = {};
      for (const v of t.variables) {
        const g = parts ? sumOf(parts.task[v.name], parts.distill[v.name]) : grads[v.name];
        if (!g) continue;
        named[v.name] = t.weightDecay > 0 ? tf.add(g, tf.mul(v, t.weightDecay)) : g;
      }
      if (Object.keys(named).length > 0) opt?.applyGradients(named);
    }
    // DOT back-propagates once per part (the reference's two backward calls): each pass is counted.
    host.ledger.backward(t.role.info.name, ctx.batch.size * (parts ? parts.passes : 1));
  }
  // A student loss that read a player back-propagated through it (to the student's map, not its weights).
  for (const name of ctx.playersRead) host.ledger.backward(name, ctx.batch.size);
  if (host.players?.length) Object.assign(terms, playerSteps(host, host.players, ctx, input));
  return { loss, terms, images: ctx.batch.size, skipped: false };
}

/**
 * The players' steps, after the students' update (the reference's order: irfanICMLL/
 * structure_knowledge_distillation `networks/kd_model.py` `optimize_parameters` — the student's step,
 * then the critic's on the same forward's maps, detached). Per player, `steps` times: its objective
 * (its trainer's `playerLoss` on the step's context, `outputs()` behind a stop-gradient)
 * differentiated in the player's weights only; one read-back of the value and the squared gradient
 * norm (the NaN/Inf policy: `stop` throws naming the player, `skip-batch` skips its update); weight
 * decay; its own optimizer. Returns each player's mean objective over its steps as `player:<name>`.
 */
function playerSteps(host: TrainHost, players: readonly PlayerStep[], ctx: StepContextImpl, input: StepInput): Record<string, number> {
  const view = ctx.detachedView();
  const terms: Record<string, number> = {};
  for (const p of players) {
    const name = p.player.info.name;
    let sum = 0;
    for (let k = 0; k < p.steps; k++) {
      let value = NaN;
      let applied = false;
      tf.tidy(() => {
        let out: { value: tf.Scalar; grads: tf.NamedTensorMap };
        try {
          out = tf.variableGrads(() => p.objective(view.scoped(p.player.owner)), p.variables);
        } catch (e) {
          releaseTape();
          if (!isKdError(e) && /Cannot find a connection between any variable/.test((e as Error)?.message ?? '')) {
            throw new KdError('KD_PLUGIN_DEPENDENCY', `the objective of player '${name}' ('${p.player.owner}') does not depend on its weights`, {
              path: p.player.specPath,
              fix: "a player's objective must score the step's maps with the player (ctx.player(name))",
            });
          }
          throw e;
        }
        const grads = Object.values(out.grads);
        const norm2 = grads.length ? tf.addN(grads.map((g) => tf.sum(tf.square(g)))) : tf.scalar(0);
        const [v, n2] = tf.stack([out.value, norm2]).dataSync();
        value = v;
        if (!Number.isFinite(v) || !Number.isFinite(n2)) {
          if (host.nonFinite === 'stop') {
            throw new KdError('KD_LOSS_NONFINITE', `the objective of player '${name}' is ${v}${Number.isFinite(v) ? ' but its gradient is NaN/Inf' : ''} at ${input.phase} epoch ${input.epoch} batch ${input.batchIndex}`, {
              path: `${p.player.specPath}.train.optimizer.lr`,
              fix: "lower the player's learning rate or its objective's weight, or set `nonFinite: skip-batch` (its update is then skipped)",
            });
          }
          return;
        }
        const named: tf.NamedTensorMap = {};
        for (const w of p.variables) {
          const g = out.grads[w.name];
          if (g) named[w.name] = p.weightDecay > 0 ? tf.add(g, tf.mul(w, p.weightDecay)) : g;
        }
        (p.player.optimizer as tf.Optimizer).applyGradients(named);
        applied = true;
      });
      if (applied) host.ledger.backward(name, ctx.batch.size);
      sum += value;
    }
    terms[`player:${name}`] = sum / p.steps;
  }
  return terms;
}

/** DOT's gradients by variable name: of the task terms and of the distillation terms. */
export interface SplitGrads {
  task: tf.NamedTensorMap;
  distill: tf.NamedTensorMap;
  /** Backward passes run: one per part that has terms this step. */
  passes: number;
}

/**
 * The task and the distillation gradients from ONE forward pass, as the reference does with
 * `loss_kd.backward(retain_graph=True)` and then `loss_ce.backward()`. tfjs keeps its tape while a
 * gradient scope is open (that is how it nests gradients): the loss is computed inside a scope opened
 * here, each part is differentiated on that tape (distillation first, as the reference), and the
 * tape's saved tensors are freed when the scope closes, on error too. The backward passes are recorded
 * on the open tape as well, so a DOT step's peak memory is higher than a plain step's. A part without
 * terms this step has no gradients (and no pass).
 */
export function splitGrads(loss: () => { task?: tf.Scalar; distill?: tf.Scalar }, vars: tf.Variable[]): SplitGrads {
  const engine = tf.engine() as unknown as { startTape(): void; endTape(): void };
  engine.startTape();
  try {
    // What the loss makes (activations, the terms) is freed after it: the tape holds what its gradients need.
    const parts = tf.tidy(loss);
    const gradsOf = (y: tf.Scalar | undefined): tf.NamedTensorMap => (y ? tf.variableGrads(() => y, vars).grads : {});
    const distill = gradsOf(parts.distill);
    const task = gradsOf(parts.task);
    return { task, distill, passes: (parts.task ? 1 : 0) + (parts.distill ? 1 : 0) };
  } finally {
    engine.endTape();
    releaseTape();
  }
}

/** g₁ + g₂ where both exist (a non-DOT student in a DOT step), else the one that does. */
function sumOf(a: tf.Tensor | undefined, b: tf.Tensor | undefined): tf.Tensor | undefined {
  return a && b ? tf.add(a, b) : (a ?? b);
}

/**
 * tfjs keeps a clone of every tensor a taped op saves for its gradient and frees them only after a
 * successful backward pass. When the loss (a plugin, a shape check) or its gradient throws, the
 * tape is abandoned with them still kept: every failed step leaked them. Free them here.
 */
function releaseTape(): void {
  const state = (tf.engine() as unknown as { state: { activeTape: { saved?: tf.Tensor[] }[] | null; gradientDepth: number } }).state;
  if (state.gradientDepth !== 0 || !state.activeTape) return;
  for (const node of state.activeTape) for (const t of node.saved ?? []) t.dispose();
  state.activeTape = null;
}

/** An empty evaluation report whose `set(role, values)` merges into `metrics` (classification and dense evaluation). */
export function evalReport(meta: { phase: string; epoch: number }): { report: EvalReport; metrics: Record<string, Record<string, number>> } {
  const metrics: Record<string, Record<string, number>> = {};
  const report: EvalReport = {
    phase: meta.phase,
    epoch: meta.epoch,
    metrics,
    set(role, values) {
      metrics[role] = { ...(metrics[role] ?? {}), ...values };
    },
  };
  return { report, metrics };
}

/**
 * Evaluate roles on a dataset: accuracy and mean CE computed here; `evalBatch` lets metric plugins
 * accumulate; `evalEnd` lets them write their numbers into the report.
 */
export async function evaluate(
  bus: LifecycleBus,
  roles: RoleRuntime[],
  test: Dataset,
  meta: { phase: string; epoch: number; batchSize?: number; logits?: Record<string, Float32Array> },
): Promise<EvalReport> {
  const { report } = evalReport(meta);
  const n = test.labels.length;
  const bs = meta.batchSize ?? 500;
  for (const r of roles) {
    let correct = 0;
    let nll = 0;
    // Kept for post-run analysis (calibration): the test set is forwarded once.
    let kept: Float32Array | null = null;
    for (let s = 0; s < n; s += bs) {
      const idx = Int32Array.from({ length: Math.min(bs, n - s) }, (_, i) => s + i);
      const [c, l] = tf.tidy(() => {
        const { x, y } = batchTensors(test, idx);
        // A model may have auxiliary outputs after its logits (BYOT heads): passed on by output name.
        const raw = r.model.apply(viewFor(r, x), { training: false }) as tf.Tensor | tf.Tensor[];
        const list = Array.isArray(raw) ? raw : [raw];
        const logits = list[0] as tf.Tensor2D;
        const outputs = list.length > 1 ? Object.fromEntries(r.model.outputNames.slice(1).map((name, i) => [name, list[i + 1]])) : undefined;
        bus.emit('evalBatch', { phase: meta.phase, epoch: meta.epoch, role: r.info.name, logits, labels: y, ...(outputs ? { outputs } : {}) });
        if (meta.logits) {
          const k = logits.shape[1];
          kept ??= new Float32Array(n * k);
          kept.set(logits.dataSync(), s * k);
        }
        const hit = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), y), 'float32'));
        const logp = tf.logSoftmax(logits);
        const picked = tf.sum(tf.mul(logp, tf.cast(tf.oneHot(y, logits.shape[1]), 'float32')));
        return tf.stack([hit, picked]).dataSync();
      });
      correct += c;
      nll -= l;
    }
    report.set(r.info.name, { accuracy: correct / n, nll: nll / n });
    if (meta.logits && kept) meta.logits[r.info.name] = kept;
  }
  await bus.emitAsync('evalEnd', report);
  return report;
}
