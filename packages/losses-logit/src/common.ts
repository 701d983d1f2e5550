import type { Tensor, Tensor1D } from '@tensorflow/tfjs-core';
import { KdError, assertSameShape, stopGradient, type PluginDefinition, type StepContext } from '@tfkd/kd-core';
export { klRows, klBatchMean } from '@tfkd/kd-core';
import { z } from 'zod';

/** The `student` option every loss shares: the role whose logits receive the gradient. */
export const studentOption = z
  .string()
  .min(1)
  .default('student')
  .describe("role whose logits are trained: 'student', or 'student.0', 'student.1', … in a `students:` (DML) run");

/** The `teacher` option of every distillation loss: the role whose logits are the target. */
export const teacherOption = z
  .string()
  .min(1)
  .default('teacher')
  .describe("role whose logits are the target: 'teacher', or a peer student ('student.1') in DML, whose logits are then gradient-stopped");

export function temperatureOption(def: number, where: string): z.ZodDefault<z.ZodNumber> {
  return z.number().positive().default(def).describe(`softmax temperature T (logits divided by T); default ${def}: ${where}`);
}

/** Logits of the trained role `[B, K]`. */
export function studentLogits(ctx: StepContext, role: string): Tensor {
  return ctx.outputs(role).logits;
}

/**
 * Logits of the target role `[B, K]`, always without gradient. The engine already stops the
 * gradient of teacher roles; a peer student used as the target (DML) is stopped here.
 */
export function targetLogits(ctx: StepContext, role: string): Tensor {
  const { logits } = ctx.outputs(role);
  const info = ctx.roles.find((r) => r.name === role);
  return info && info.kind === 'student' ? stopGradient(logits) : logits;
}

/** Integer labels of the current batch `[B]`. */
export function batchLabels(ctx: StepContext): Tensor1D {
  return ctx.batch.y as Tensor1D;
}

/** Check that the student and target logits are `[B, K]` with the same shape. */
export function assertLogitPair(zs: Tensor, zt: Tensor, what: string): void {
  if (zs.rank !== 2) {
    throw new KdError('KD_SHAPE_MISMATCH', `${what}: logits must be [batch, classes], got shape [${zs.shape}]`);
  }
  assertSameShape(zs, zt, `${what}: student and target logits`);
}

/**
 * Wrap a loss definition so that the roles named in its options are checked against the run's
 * roles when the plugin is created (start-up), not at the first step. kd-core's own `requires()`
 * check matches a role by name *or kind*, so `student: student` passes in a `students:` run that has
 * only `student.0`/`student.1`; this check needs the exact name.
 */
export function withRoleCheck<S extends z.ZodType>(
  def: PluginDefinition<S>,
  roleOptions: (o: z.output<S>) => Record<string, string>,
): PluginDefinition<S> {
  return {
    ...def,
    create(options, deps) {
      const named = roleOptions(options);
      const names = deps.roles.map((r) => r.name);
      for (const [key, role] of Object.entries(named)) {
        if (!names.includes(role)) {
          throw new KdError('KD_PLUGIN_DEPENDENCY', `'${deps.name}' reads the logits of role '${role}' (option \`${key}\`), and the run has no such role`, {
            path: `${deps.specPath}.with.${key}`,
            fix: `set \`${key}:\` to one of the run's roles: ${names.join(', ')}`,
          });
        }
      }
      const values = Object.values(named);
      if (values.length === 2 && values[0] === values[1]) {
        throw new KdError('KD_PLUGIN_OPTIONS', `'${deps.name}': the student and teacher roles are both '${values[0]}'`, {
          path: `${deps.specPath}.with`,
          fix: 'distil from a different role (`teacher: teacher`, or a peer `student.1`)',
        });
      }
      return def.create(options, deps);
    },
  };
}
