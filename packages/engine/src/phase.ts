import type { StageSpec, TrainSpec } from '@tfkd/kd-core';

/**
 * Declared stages (spec `stages:`): phases that run, in order, before the main distillation phase.
 *
 * - One plugin instance per name over the whole run. A stage entry whose name (its `name:`, else its
 *   `use:` id) is a plugin of the main list, or of an earlier stage, selects that instance (adapters
 *   trained in the stage carry over); any other entry creates a new instance, active only where listed.
 * - A phase's active plugins are the ones it lists (the main phase: the main `plugins:` list) plus the
 *   `eval:` metrics; the others receive no epoch, batch or loss hooks in it (they do get runStart,
 *   runEnd and the evaluation hooks).
 * - Each stage has a fresh optimizer per student (its `train:` overrides of the run's `train`), its
 *   own learning-rate schedule over its own epochs; the main phase then starts with fresh optimizers
 *   as a run without stages does.
 */
export interface Phase {
  name: string;
  /** Index in `stages:`, or -1 for the main phase. */
  stage: number;
  /** `stages[0]`, or '' for the main phase. */
  specPath: string;
  /** Run-level training settings of the phase (batch size, max batches, epochs, optimizer, schedule). */
  train: TrainSpec;
  /** Stage overrides merged into every student's train (main phase: none, the roles' own apply). */
  overrides: StageSpec['train'] & { epochs?: number };
  /** Active plugin names → their weight in this phase. */
  active: Map<string, number>;
  /** `trainUpTo` layer (stages only). */
  trainUpTo?: string;
}
