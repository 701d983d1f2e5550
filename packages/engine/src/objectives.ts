import { KdError, lossObjective, type LossObjective, type RunSpec, TrainSpec } from '@tfkd/kd-core';
import type { ResolvedPlugin } from './resolve';
import type { Phase } from './phase';
import { roleSpecs } from './roles';

/**
 * Each plugin's objective by instance name (DOT's task or distillation gradient): its definition's
 * `objective`, else kd-core `lossObjective`'s default — `task` when it reads no role but (at most)
 * one student, `distill` when it reads a teacher or a peer.
 */
export function pluginObjectives(spec: RunSpec, plugins: readonly ResolvedPlugin[]): Map<string, LossObjective | 'mixed'> {
  const students = roleSpecs(spec)
    .filter((r) => r.kind === 'student')
    .map((r) => r.name);
  return new Map(plugins.map((p) => [p.name, lossObjective(p.def, p.requirements, students)]));
}

/**
 * DOT (`optimizer: { name: dot }`) steps on a task gradient and a distillation gradient, so every
 * phase in which a student trains with it needs a loss of each kind. The reference trainer reads
 * `loss_ce` and `loss_kd` from its distiller and fails without either (no fallback to follow):
 * KD_OPTIMIZER_TERMS at the spec path that chose DOT (the run's `train`, a student's or a stage's).
 */
export function checkOptimizerTerms(spec: RunSpec, plugins: readonly ResolvedPlugin[], phases: readonly Phase[]): void {
  const objectives = pluginObjectives(spec, plugins);
  for (const phase of phases) {
    const losses = plugins.filter((p) => phase.active.has(p.name) && (p.def.kind === 'loss' || p.def.kind === 'method'));
    const has = (o: LossObjective) => losses.some((p) => [o, 'mixed'].includes(objectives.get(p.name) as string));
    if (has('task') && has('distill')) continue;
    for (const s of roleSpecs(spec).filter((r) => r.kind === 'student')) {
      // The student's recipe in this phase, merged as the engine merges it (`trainHost`).
      const train = TrainSpec.safeParse({ ...spec.train, ...(s.spec.train ?? {}), ...phase.overrides });
      if (!train.success || train.data.optimizer.name !== 'dot') continue;
      const path = phase.overrides.optimizer
        ? `${phase.specPath}.train.optimizer.name`
        : s.spec.train?.optimizer
          ? `${s.specPath}.train.optimizer.name`
          : 'train.optimizer.name';
      const missing = has('task') ? 'distillation' : 'task';
      const listed = losses.map((p) => `${p.name} (${objectives.get(p.name)})`).join(', ') || 'none';
      throw new KdError(
        'KD_OPTIMIZER_TERMS',
        `optimizer 'dot' steps on a task gradient and a distillation gradient, and phase '${phase.name}' has no ${missing} loss (its losses: ${listed})`,
        {
          path,
          fix:
            missing === 'task'
              ? 'add the task loss (e.g. `- use: loss/cross-entropy`), or train this phase with `name: sgd`'
              : 'add a distillation loss (e.g. `- use: loss/hinton-kd`), or train this phase with `name: sgd` (DOT without one is SGD with momentum μ); ' +
                'a loss that reads no teacher or peer counts as a task loss unless its definition declares `objective`',
        },
      );
    }
  }
}
