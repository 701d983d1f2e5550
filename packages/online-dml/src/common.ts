import { KdError, type PluginDeps, type PluginRequirements, type RoleInfo } from '@tfkd/kd-core';
import { z } from 'zod';

/** The `students` option: which roles form the cohort (empty: every student role of the run). */
export const studentsOption = z
  .array(z.string().min(1))
  .default([])
  .describe("roles of the cohort, e.g. ['student.0', 'student.1']; default [] = every student role of the run (students: list)");

/**
 * The cohort of an online method: the named roles (each must be a student role of the run) or,
 * when none are named, every student role in role order. Needs at least two.
 */
export function cohortRoles(deps: PluginDeps, named: readonly string[]): string[] {
  const students = deps.roles.filter((r: RoleInfo) => r.kind === 'student').map((r) => r.name);
  const cohort = named.length > 0 ? [...named] : students;
  for (const [i, role] of cohort.entries()) {
    if (!students.includes(role)) {
      throw new KdError('KD_PLUGIN_DEPENDENCY', `'${deps.name}': '${role}' is not a student role of this run (students: ${students.join(', ') || 'none'})`, {
        path: `${deps.specPath}.with.students[${i}]`,
        fix: 'name roles of the `students:` list (student.0, student.1, …), or omit `students` to use them all',
      });
    }
  }
  if (new Set(cohort).size !== cohort.length) {
    throw new KdError('KD_PLUGIN_OPTIONS', `'${deps.name}': a role appears twice in the cohort (${cohort.join(', ')})`, {
      path: `${deps.specPath}.with.students`,
      fix: 'list each student role once',
    });
  }
  if (cohort.length < 2) {
    throw new KdError('KD_PLUGIN_DEPENDENCY', `'${deps.name}' trains a cohort of at least 2 students; this run has ${cohort.length} (${cohort.join(', ') || 'none'})`, {
      path: named.length > 0 ? `${deps.specPath}.with.students` : 'students',
      fix: 'declare the peers with `students: [{ model: … }, { model: … }]` (roles student.0, student.1, …)',
    });
  }
  return cohort;
}

/** The cohort's roles as requirements: the named ones (none named: every student, which the run always has). */
export function cohortRequirements(o: { students: string[] }): PluginRequirements {
  return o.students.length > 0 ? { roles: [...o.students] } : {};
}
