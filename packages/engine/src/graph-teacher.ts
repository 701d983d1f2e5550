import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { KdError } from '@tfkd/kd-core';

/**
 * What of a `tf.GraphModel` (a converted TensorFlow model) the runner uses. Duck-typed, so that
 * `@tensorflow/tfjs-converter` is the user's dependency, not ours.
 */
export interface GraphModelLike {
  inputs: { name: string; shape?: number[] }[];
  outputs: { name: string; shape?: number[] }[];
  execute(inputs: tf.Tensor, outputs?: string | string[]): tf.Tensor | tf.Tensor[];
  weights?: Record<string, tf.Tensor[]>;
}

const TAP = Symbol.for('kd.GraphTeacher.tap');

interface GraphAdapter {
  [TAP]: (taps: readonly string[], role: string, specPath: string) => LayersModel;
}

export function isGraphModel(m: unknown): m is GraphModelLike {
  return typeof (m as GraphModelLike)?.execute === 'function' && Array.isArray((m as GraphModelLike).inputs) && !('layers' in (m as object));
}

/** The graph's node names, where the converter exposes them (for error messages). */
function nodeNames(g: GraphModelLike): string[] {
  const nodes = (g as unknown as { executor?: { graph?: { nodes?: Record<string, unknown> } } }).executor?.graph?.nodes;
  return nodes ? Object.keys(nodes) : [];
}

/** Output shapes (with a null batch) of `names`, from one forward of a zero batch of one. */
function probe(g: GraphModelLike, inputShape: (number | null)[], names: string[]): (number | null)[][] {
  let shapes: (number | null)[][] = [];
  tf.tidy(() => {
    const out = g.execute(tf.zeros([1, ...inputShape.map((d) => d ?? 1)]), names);
    shapes = (Array.isArray(out) ? out : [out]).map((t) => [null, ...t.shape.slice(1)]);
  });
  return shapes;
}

/**
 * A frozen teacher from a `tf.GraphModel`: the engine sees it as a model whose `apply` runs the graph
 * (inference only) and whose taps are graph node names (`teacher.<node name>`). It owns nothing: the
 * graph stays the caller's to dispose.
 */
export function graphTeacher(graph: GraphModelLike, opts: { name?: string; output?: string } = {}): LayersModel {
  const inputShape = (graph.inputs[0]?.shape ?? []).slice(1).map((d) => (d === undefined || d < 0 ? null : d));
  const output = opts.output ?? graph.outputs[0]?.name;
  if (!output) throw new KdError('KD_MODEL_LOAD', 'the graph model names no output', { path: 'teacher', fix: 'give graphTeacher(graph, { output: "<node name>" })' });
  const weights = Object.entries(graph.weights ?? {}).flatMap(([name, ts]) => ts.map((t) => ({ name, read: () => t })));
  const make = (outputs: string[]): LayersModel => {
    const shapes = probe(graph, inputShape, outputs);
    const run = (x: tf.Tensor) => {
      const out = graph.execute(x, outputs.length === 1 ? outputs[0] : outputs);
      return Array.isArray(out) ? out : [out];
    };
    const adapter = {
      name: opts.name ?? 'graph-teacher',
      inputs: [{ shape: [null, ...inputShape] }],
      outputs: shapes.map((shape) => ({ shape })),
      outputNames: outputs,
      layers: [],
      outputLayers: [],
      weights,
      trainableWeights: [],
      trainable: false,
      apply: (x: tf.Tensor) => (outputs.length === 1 ? run(x)[0] : run(x)),
      predict: (x: tf.Tensor) => run(x)[0],
      getWeights: () => weights.map((w) => w.read()),
      dispose: () => undefined,
      [TAP]: (taps: readonly string[], role: string, specPath: string) => {
        const known = new Set(nodeNames(graph));
        const missing = taps.find((t) => known.size > 0 && !known.has(t));
        if (missing) {
          throw new KdError('KD_TAP_UNKNOWN', `role '${role}' (a graph model) has no node '${missing}'`, {
            path: specPath,
            fix: `tap a node of the graph by its name (${[...known].slice(0, 40).join(', ')}${known.size > 40 ? ', …' : ''})`,
          });
        }
        try {
          return make([output, ...taps]);
        } catch (e) {
          throw new KdError('KD_TAP_UNKNOWN', `role '${role}' (a graph model): ${(e as Error).message}`, { path: specPath, fix: 'tap a node of the graph by its name', cause: e });
        }
      },
    };
    return adapter as unknown as LayersModel;
  };
  return make([output]);
}

/** A graph teacher's model with outputs [logits, ...taps] (the engine's tapped model), or null for a layers model. */
export function graphTapped(model: LayersModel, taps: readonly string[], role: string, specPath: string): LayersModel | null {
  const tap = (model as unknown as Partial<GraphAdapter>)[TAP];
  return tap ? tap(taps, role, specPath) : null;
}
