import * as tfl from '@tensorflow/tfjs-layers';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { KdError, parseTap } from '@tfkd/kd-core';
import type { RoleRuntime } from './roles';

/**
 * Forward FLOPs per image of the part of a role's model that computes the given layers
 * (`role.layerName`): a functional model from the role's input to those layers holds exactly the
 * layers they depend on, and `countFlops` (the models package's counter) sums them. This is what
 * `PluginDeps.tapFlops` answers: the cost of an early exit up to one head, or of several heads.
 */
export function subgraphFlops(
  taps: readonly string[],
  roles: ReadonlyMap<string, RoleRuntime>,
  specPath: string,
  countFlops: (model: LayersModel) => number,
): number {
  const roleNames = [...roles.keys()];
  const parsed = taps.map((t) => parseTap(t, roleNames, specPath));
  const role = parsed[0]?.role;
  if (!role || parsed.some((t) => t.role !== role)) {
    throw new KdError('KD_TAP_UNKNOWN', `tapFlops needs one or more layers of a single role, got ${JSON.stringify(taps)}`, {
      path: specPath,
      fix: 'ask for the layers of one role at a time (student.head1, student.head2)',
    });
  }
  const rt = roles.get(role) as RoleRuntime;
  const outputs = parsed.map(({ layer }) => {
    const l = rt.model.layers.find((x) => x.name === layer);
    if (!l) {
      throw new KdError('KD_TAP_UNKNOWN', `role '${role}' (${rt.model.name}) has no layer '${layer}'`, {
        path: specPath,
        fix: `name one of: ${rt.model.layers.map((x) => x.name).join(', ')}`,
      });
    }
    return l.output as tfl.SymbolicTensor;
  });
  return countFlops(tfl.model({ inputs: rt.model.inputs, outputs, name: `${rt.model.name}_upto` }));
}
