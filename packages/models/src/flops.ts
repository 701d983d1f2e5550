import { KdError } from '@tfkd/kd-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';

/** FLOPs of one layer call (one image). A multiply-add counts as 2 FLOPs. */
export interface LayerFlops {
  name: string;
  className: string;
  flops: number;
  outputShape: Array<number | null>;
}

export interface FlopCount {
  /** Forward-pass FLOPs for one image (sum of `byLayer`). */
  perImage: number;
  /** One entry per layer call in topological order; layers that cost nothing have flops 0. */
  byLayer: LayerFlops[];
}

type AnyLayer = LayersModel['layers'][number];
type Shape = Array<number | null>;

function firstShape(s: Shape | Shape[]): Shape {
  return Array.isArray(s[0]) ? (s as Shape[])[0] : (s as Shape);
}

/** Non-batch dims of a shape; every one must be known. */
function dims(layer: AnyLayer, shape: Shape): number[] {
  const rest = shape.slice(1);
  if (!rest.every((d): d is number => typeof d === 'number')) {
    throw new KdError(
      'KD_SHAPE_MISMATCH',
      `cannot count FLOPs of layer '${layer.name}': shape ${JSON.stringify(shape)} has unknown dimensions`,
      {
        fix: 'build the model with a fully specified inputShape (e.g. [28, 28, 1])',
      },
    );
  }
  return rest;
}

function pair(v: unknown): [number, number] {
  const a = Array.isArray(v) ? (v as number[]) : [v as number, v as number];
  return [a[0], a.length > 1 ? a[1] : a[0]];
}

function prod(xs: number[]): number {
  return xs.reduce((a, b) => a * b, 1);
}

/** Splits an image shape (no batch) into [spatial dims, channels] honouring `dataFormat`. */
function spatialAndChannels(d: number[], dataFormat: unknown): [number[], number] {
  return dataFormat === 'channelsFirst' ? [d.slice(1), d[0]] : [d.slice(0, -1), d[d.length - 1]];
}

function isContainer(layer: AnyLayer): layer is LayersModel {
  return (
    Array.isArray((layer as Partial<LayersModel>).layers) &&
    Array.isArray((layer as Partial<LayersModel>).inputs)
  );
}

/** FLOPs of one call of `layer` given its input and output shapes (with batch dim). */
export function layerFlops(layer: AnyLayer, inShape: Shape, outShape: Shape): number {
  const cls = layer.getClassName();
  if (isContainer(layer)) return countFlops(layer).perImage;
  const cfg = layer.getConfig() as Record<string, unknown>;
  switch (cls) {
    case 'Dense': {
      const i = dims(layer, inShape);
      const units = cfg.units as number;
      return 2 * i[i.length - 1] * units * prod(i.slice(0, -1));
    }
    case 'Conv1D': {
      const [, cin] = spatialAndChannels(dims(layer, inShape), cfg.dataFormat);
      const [out, cout] = spatialAndChannels(dims(layer, outShape), cfg.dataFormat);
      const k = pair(cfg.kernelSize)[0];
      return 2 * k * cin * cout * out[0];
    }
    case 'Conv2D': {
      const [, cin] = spatialAndChannels(dims(layer, inShape), cfg.dataFormat);
      const [out, cout] = spatialAndChannels(dims(layer, outShape), cfg.dataFormat);
      const [kh, kw] = pair(cfg.kernelSize);
      const groups = typeof cfg.groups === 'number' ? cfg.groups : 1;
      return 2 * kh * kw * (cin / groups) * cout * out[0] * out[1];
    }
    case 'Conv2DTranspose': {
      const [inSp, cin] = spatialAndChannels(dims(layer, inShape), cfg.dataFormat);
      const [, cout] = spatialAndChannels(dims(layer, outShape), cfg.dataFormat);
      const [kh, kw] = pair(cfg.kernelSize);
      return 2 * kh * kw * cin * cout * inSp[0] * inSp[1];
    }
    case 'DepthwiseConv2D': {
      const [, cin] = spatialAndChannels(dims(layer, inShape), cfg.dataFormat);
      const [out] = spatialAndChannels(dims(layer, outShape), cfg.dataFormat);
      const [kh, kw] = pair(cfg.kernelSize);
      const mult = (cfg.depthMultiplier as number) ?? 1;
      return 2 * kh * kw * cin * mult * out[0] * out[1];
    }
    case 'SeparableConv2D': {
      const [, cin] = spatialAndChannels(dims(layer, inShape), cfg.dataFormat);
      const [out, cout] = spatialAndChannels(dims(layer, outShape), cfg.dataFormat);
      const [kh, kw] = pair(cfg.kernelSize);
      const mult = (cfg.depthMultiplier as number) ?? 1;
      const hw = out[0] * out[1];
      return 2 * kh * kw * cin * mult * hw + 2 * cin * mult * cout * hw;
    }
    default:
      // Elementwise, activation, pooling, normalisation, reshape, dropout, input: counted as 0.
      return 0;
  }
}

/**
 * Forward FLOPs per image of `model`, from its layers' static shapes. Counted: Dense 2·in·out,
 * Conv2D 2·kh·kw·(Cin/groups)·Cout·Hout·Wout, DepthwiseConv2D 2·kh·kw·Cin·mult·Hout·Wout,
 * SeparableConv2D = depthwise + pointwise (2·Cin·mult·Cout·Hout·Wout), Conv1D, Conv2DTranspose and
 * nested models. Biases, elementwise ops, activations, pooling and BatchNorm count 0.
 */
export function countFlops(model: LayersModel): FlopCount {
  const byLayer: LayerFlops[] = [];
  for (const layer of model.layers) {
    const nodes = layer.inboundNodes;
    nodes.forEach((node, i) => {
      // A layer shared with another model has nodes that are not part of this graph.
      if (model.containerNodes && !model.containerNodes.has(`${layer.name}_ib-${i}`)) return;
      const inShape = firstShape(node.inputShapes as Shape | Shape[]);
      const outShape = firstShape(node.outputShapes as Shape | Shape[]);
      byLayer.push({
        name: layer.name,
        className: layer.getClassName(),
        flops: layerFlops(layer, inShape, outShape),
        outputShape: outShape,
      });
    });
  }
  return { perImage: byLayer.reduce((s, l) => s + l.flops, 0), byLayer };
}
