import { KdError } from '@tfkd/kd-core';
import { model as functionalModel, type LayersModel, type SymbolicTensor } from '@tensorflow/tfjs-layers';

/** A layer that can be tapped, with its output shape (batch dimension `null`). */
export interface TapInfo {
  name: string;
  className: string;
  outputShape: Array<number | null> | Array<Array<number | null>>;
}

type AnyLayer = LayersModel['layers'][number];

function isInputLayer(layer: AnyLayer): boolean {
  return layer.getClassName() === 'InputLayer';
}

function outputShapeOf(layer: AnyLayer): TapInfo['outputShape'] {
  try {
    return layer.outputShape as TapInfo['outputShape'];
  } catch {
    return (layer.getOutputAt(0) as SymbolicTensor).shape;
  }
}

/** Every tappable layer of `model` (all but input layers), shallow to deep, with output shapes. */
export function describeTaps(model: LayersModel): TapInfo[] {
  return model.layers
    .filter((l) => !isInputLayer(l))
    .map((l) => ({ name: l.name, className: l.getClassName(), outputShape: outputShapeOf(l) }));
}

/** Names of every tappable layer of `model` (all but input layers), shallow to deep. */
export function tapLayerNames(model: LayersModel): string[] {
  return describeTaps(model).map((t) => t.name);
}

function formatShape(shape: TapInfo['outputShape']): string {
  return JSON.stringify(shape).replace(/null/g, 'N');
}

/** The symbolic output of one layer, or KD_TAP_UNKNOWN listing what is there. */
export function tapOutput(model: LayersModel, tap: string): SymbolicTensor {
  const layer = model.layers.find((l) => l.name === tap);
  if (!layer || isInputLayer(layer)) {
    const available = describeTaps(model).map((t) => `${t.name} ${formatShape(t.outputShape)}`);
    throw new KdError(
      'KD_TAP_UNKNOWN',
      `tap '${tap}' is not a layer of model '${model.name}'; available layers (output shape, N = batch): ${available.join(', ')}`,
      { fix: `use one of the layer names above as the tap (model '${model.name}')` },
    );
  }
  if (layer.inboundNodes.length > 1) {
    // A shared layer: take the call that belongs to this model.
    const out = layer.inboundNodes.findIndex((_, i) => model.containerNodes?.has(`${layer.name}_ib-${i}`));
    return layer.getOutputAt(Math.max(out, 0)) as SymbolicTensor;
  }
  return layer.output as SymbolicTensor;
}

/**
 * A model with outputs `[logits, ...taps]` over the same inputs and the same layer objects as
 * `model`, so it shares every weight with it (training one trains the other). `logits` is the
 * original model's first output. With no taps the result has a single output.
 * An unknown tap → KdError KD_TAP_UNKNOWN naming the tap, the model and the available layers.
 */
export function buildTappedModel(model: LayersModel, taps: string[]): LayersModel {
  const outputs = taps.map((t) => tapOutput(model, t));
  return functionalModel({
    inputs: model.inputs,
    outputs: [model.outputs[0], ...outputs],
    name: `${model.name}_tapped`,
  });
}
