import { KdError } from './errors';

/** Split `student.0.block2` into a role and a layer, given the run's role names. */
export function parseTap(tap: string, roleNames: readonly string[], specPath: string): { role: string; layer: string } {
  const role = [...roleNames].sort((a, b) => b.length - a.length).find((r) => tap.startsWith(`${r}.`));
  if (!role) {
    throw new KdError('KD_TAP_UNKNOWN', `tap '${tap}' names no role of this run (roles: ${roleNames.join(', ')})`, {
      path: specPath,
      fix: 'write taps as <role>.<layerName>, e.g. student.block2 or teacher.block3',
    });
  }
  return { role, layer: tap.slice(role.length + 1) };
}
