import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { KdError, type RoleInfo, type RoleKind, type RoleSpec, supportedTasks, type Task, taskMismatch, type TrainSpec } from '@tfkd/kd-core';
import { graphTapped } from './graph-teacher';
import type { Registry } from './registry';
import type { Storage } from '@tfkd/kd-core';

/** A role at run time: its model, the multi-output "tapped" model, its view and its optimizer. */
export interface RoleRuntime {
  info: RoleInfo;
  specPath: string;
  spec: RoleSpec;
  model: tfl.LayersModel;
  /** Outputs [logits, ...taps]; the same weights as `model`. */
  tapped: tfl.LayersModel;
  tapNames: string[];
  /**
   * Detection and segmentation runs: the model's output names, in order (the first is `logits`, the
   * others are tapped by name); `ctx.outputs(role).heads` holds them. Absent in classification runs.
   */
  heads?: string[];
  /** Input shape of one example as the model takes it. */
  inputShape: number[];
  flopsPerImage: number;
  train?: TrainSpec;
  optimizer?: tf.Optimizer;
}

/** Role names from the spec: `teacher`, `student`, or `student.0…` for `students:`. */
export function roleSpecs(spec: {
  teacher?: RoleSpec;
  student?: RoleSpec;
  students?: RoleSpec[];
}): { name: string; kind: RoleKind; spec: RoleSpec; specPath: string }[] {
  const out: { name: string; kind: RoleKind; spec: RoleSpec; specPath: string }[] = [];
  if (spec.teacher) out.push({ name: 'teacher', kind: 'teacher', spec: spec.teacher, specPath: 'teacher' });
  if (spec.student) out.push({ name: 'student', kind: 'student', spec: spec.student, specPath: 'student' });
  spec.students?.forEach((s, i) =>
    out.push({ name: `student.${i}`, kind: 'student', spec: s, specPath: `students[${i}]` }),
  );
  return out;
}

/** Build a zoo model or load a saved one. */
export async function buildModel(
  registry: Registry,
  role: { name: string; spec: RoleSpec; specPath: string },
  ctx: { inputShape: number[]; numClasses: number; seed: number; specDir: string; storage: Storage; task?: Task },
): Promise<tfl.LayersModel> {
  if (role.spec.load) {
    const dir = ctx.storage.resolve(ctx.specDir, role.spec.load);
    return registry.modelTools().load(dir);
  }
  const def = registry.model(role.spec.model as string, `${role.specPath}.model`);
  const task = ctx.task ?? 'classification';
  if (!supportedTasks(def).includes(task)) {
    throw taskMismatch(`model '${def.id}'`, supportedTasks(def), task, `${role.specPath}.model`, registry.models().filter((m) => supportedTasks(m).includes(task)).map((m) => m.id));
  }
  let model: tfl.LayersModel;
  try {
    model = def.build({ ...role.spec.options, inputShape: ctx.inputShape, numClasses: ctx.numClasses, seed: ctx.seed });
  } catch (e) {
    if (e instanceof KdError) throw e;
    throw new KdError('KD_SPEC_INVALID', `model '${def.id}' could not be built: ${(e as Error).message}`, {
      path: `${role.specPath}.options`,
      fix: `check the options of '${def.id}' (kd list --models)`,
      cause: e,
    });
  }
  // Inputs smaller than the model's down-sampling (cnn-small on 2×2 images) give layers with an
  // empty output: the forward "works", the backward fails inside tfjs. Refuse them here.
  const empty = model.layers.find((l) => {
    const shapes = (Array.isArray(l.outputShape[0]) ? l.outputShape : [l.outputShape]) as (number | null)[][];
    return shapes.some((sh) => sh.some((d) => d === 0));
  });
  if (empty) {
    model.dispose();
    throw new KdError(
      'KD_SPEC_INVALID',
      `model '${def.id}' on ${ctx.inputShape.join('x')} inputs: layer '${empty.name}' has an empty output ${JSON.stringify(empty.outputShape)} (the inputs are too small for its down-sampling)`,
      {
        path: `${role.specPath}.model`,
        fix: 'use larger inputs (the data shape, or a view `resize` with `upsample: true`), or a model with fewer pooling stages such as mlp',
      },
    );
  }
  return model;
}

/** A model whose outputs are [logits, ...the named layers' outputs]. */
export function tappedModel(model: tfl.LayersModel, taps: readonly string[], roleName: string, specPath: string): tfl.LayersModel {
  if (taps.length === 0) return model;
  const graph = graphTapped(model, taps, roleName, specPath);
  if (graph) return graph;
  const outputs = taps.map((t) => {
    const layer = model.layers.find((l) => l.name === t);
    if (!layer) {
      const known = model.layers.map((l) => `${l.name} ${JSON.stringify(l.outputShape)}`).join(', ');
      throw new KdError('KD_TAP_UNKNOWN', `role '${roleName}' (${model.name}) has no layer '${t}'`, {
        path: specPath,
        fix: `tap one of: ${known}`,
      });
    }
    return layer.output as tfl.SymbolicTensor;
  });
  return tfl.model({ inputs: model.inputs, outputs: [model.outputs[0], ...outputs], name: `${model.name}_tapped` });
}

/** Learning rate at the start of `epoch` (1-based) of `epochs`. */
export function learningRateAt(train: TrainSpec, epoch: number): number {
  const { lr } = train.optimizer;
  const s = train.schedule;
  let rate = lr;
  if (s.name === 'step') rate = lr * Math.pow(s.gamma, s.milestones.filter((m) => epoch > m).length);
  if (s.name === 'cosine') rate = 0.5 * lr * (1 + Math.cos((Math.PI * (epoch - 1)) / train.epochs));
  if (s.warmup > 0 && epoch <= s.warmup) rate *= epoch / s.warmup;
  return rate;
}

export function trainableVariables(model: tfl.LayersModel): tf.Variable[] {
  return model.trainableWeights.map((w) => w.read() as tf.Variable);
}
