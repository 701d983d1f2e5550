import { KdError, type ModelBuildOptions, type ModelDefinition, type Task } from '@tfkd/kd-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { initializers, layers, type SymbolicTensor } from '@tensorflow/tfjs-layers';

/** Validated common build options of the dense zoo models. */
export interface DenseBuildOptions {
  inputShape: [number, number, number];
  numClasses: number;
  seed: number;
  width: number;
}

function invalid(model: string, key: string, message: string, fix: string): KdError {
  return new KdError('KD_SPEC_INVALID', `model '${model}': ${message}`, { path: `options.${key}`, fix });
}

const posInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;

/** Checks inputShape (H and W divisible by `multiple`), numClasses, seed and the `width` option. */
export function checkDenseOptions(model: string, o: ModelBuildOptions, defaultWidth: number, multiple: number): DenseBuildOptions {
  const s = o?.inputShape;
  if (!Array.isArray(s) || s.length !== 3 || !s.every(posInt) || s[0] % multiple !== 0 || s[1] % multiple !== 0) {
    throw invalid(model, 'inputShape', `inputShape must be [H, W, C] of positive integers with H and W divisible by ${multiple}, got ${JSON.stringify(s)}`, 'pass e.g. inputShape: [64, 64, 1] (fashion-scenes)');
  }
  if (!posInt(o.numClasses)) throw invalid(model, 'numClasses', `numClasses must be a positive integer, got ${JSON.stringify(o.numClasses)}`, 'pass numClasses: 10 (detector) or 11 (segmenter: background + 10)');
  const seed = o.seed ?? 1;
  if (!Number.isInteger(seed)) throw invalid(model, 'seed', `seed must be an integer, got ${JSON.stringify(o.seed)}`, 'pass an integer seed');
  const width = o.width ?? defaultWidth;
  if (!posInt(width)) throw invalid(model, 'width', `width must be a positive integer, got ${JSON.stringify(o.width)}`, `pass e.g. width: ${defaultWidth}`);
  return { inputShape: [s[0], s[1], s[2]], numClasses: o.numClasses, seed: seed as number, width };
}

/** Seed of one layer from the build seed and the layer name (FNV-1a + murmur3 finaliser): adding a layer never reshuffles the others. */
export function layerSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

export interface ConvSpec {
  filters: number;
  kernel?: number;
  strides?: number;
  relu?: boolean;
  /** Constant bias (the focal-loss prior of a classification head); default 0. */
  bias?: number;
}

/** A same-padded conv (He-normal for ReLU layers, Glorot otherwise), seeded by name. */
export function conv(seed: number, name: string, x: SymbolicTensor, c: ConvSpec): SymbolicTensor {
  const s = layerSeed(seed, name);
  return layers
    .conv2d({
      name,
      filters: c.filters,
      kernelSize: c.kernel ?? 3,
      strides: c.strides ?? 1,
      padding: 'same',
      activation: c.relu ? 'relu' : 'linear',
      kernelInitializer: c.relu ? initializers.heNormal({ seed: s }) : initializers.glorotUniform({ seed: s }),
      biasInitializer: c.bias ? initializers.constant({ value: c.bias }) : 'zeros',
    })
    .apply(x) as SymbolicTensor;
}

/**
 * A dense model's three zoo entries: `<id>` and `<id>-student` at the student width, `<id>-teacher` at
 * the teacher's; each builds with its own name and default width.
 */
export function sizedDefinitions(
  id: string,
  widths: { student: number; teacher: number },
  describe: (width: number) => string,
  taps: string[],
  build: (o: ModelBuildOptions, name: string, width: number) => LayersModel,
  tasks: readonly Task[],
): [ModelDefinition, ModelDefinition, ModelDefinition] {
  const def = (name: string, width: number): ModelDefinition => ({ id: name, describe: describe(width), taps, tasks, build: (o) => build(o, name, width) });
  return [def(id, widths.student), def(`${id}-teacher`, widths.teacher), def(`${id}-student`, widths.student)];
}
