import type { Tensor } from '@tensorflow/tfjs-core';
import { z } from 'zod';
import type { StepContext } from './hooks';
import { stopGradient } from './ops';

/** The `student` option of a loss: the role whose outputs receive the gradient. */
export const studentOption = z
  .string()
  .min(1)
  .default('student')
  .describe("role whose logits are trained: 'student', or 'student.0', 'student.1', … in a `students:` (DML) run");

/** The `teacher` option of a distillation loss: the role whose outputs are the target. */
export const teacherOption = z
  .string()
  .min(1)
  .default('teacher')
  .describe("role whose logits are the target: 'teacher', or a peer student ('student.1') in DML, whose logits are then gradient-stopped");

/** A softmax temperature option with its default and where the default comes from. */
export function temperatureOption(def: number, where: string): z.ZodDefault<z.ZodNumber> {
  return z.number().positive().default(def).describe(`softmax temperature T (logits divided by T); default ${def}: ${where}`);
}

/**
 * A target-side tensor of `role` (its logits, a tap): gradient-stopped when the role is a student
 * (a DML peer used as the target); a teacher's passes through, the engine already stopped it.
 */
export function asTarget(ctx: Pick<StepContext, 'roles'>, role: string, t: Tensor): Tensor {
  const info = ctx.roles.find((r) => r.name === role);
  return info && info.kind === 'student' ? stopGradient(t) : t;
}

/** Logits of the target role `[B, K]`, always without gradient (`asTarget`). */
export function targetLogits(ctx: StepContext, role: string): Tensor {
  return asTarget(ctx, role, ctx.outputs(role).logits);
}
