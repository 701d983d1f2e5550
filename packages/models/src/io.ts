import { promises as fsp } from 'fs';
import * as path from 'path';
import { io } from '@tensorflow/tfjs-core';
import { loadLayersModel, type LayersModel } from '@tensorflow/tfjs-layers';
import { KdError, isKdError } from '@tfkd/kd-core';

/** File names inside a saved-model folder. */
export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';

const BYTES_PER_DTYPE: Record<string, number> = {
  float32: 4,
  int32: 4,
  bool: 1,
  complex64: 8,
  uint8: 1,
  uint16: 2,
  float16: 2,
};

/**
 * Writes `data` to `file` atomically: a temp file in the same folder is written, fsynced and renamed
 * over `file` (then the folder is fsynced, best effort). Readers see the old or the new file, never
 * a partial one. Failures → KdError KD_OUTPUT_WRITE naming the file.
 */
export async function writeFileAtomic(file: string, data: Uint8Array | string): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(
    dir,
    `.${path.basename(file)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`,
  );
  try {
    await fsp.mkdir(dir, { recursive: true });
    const fh = await fsp.open(tmp, 'wx');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, file);
  } catch (e) {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw new KdError('KD_OUTPUT_WRITE', `could not write ${file}: ${(e as Error).message}`, {
      path: file,
      fix: 'check that the folder is writable and the disk is not full',
      cause: e,
    });
  }
  try {
    const dh = await fsp.open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    // Directory fsync is not supported everywhere (e.g. Windows); the rename itself already happened.
  }
}

function loadError(file: string, message: string, fix: string, cause?: unknown): KdError {
  return new KdError('KD_MODEL_LOAD', `${file}: ${message}`, { path: file, fix, cause });
}

const RESAVE_FIX =
  'point to a folder written by saveModel (or the tfjs converter) and re-save the model if the file was damaged';

async function readOrThrow(file: string): Promise<Buffer> {
  try {
    return await fsp.readFile(file);
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    throw loadError(
      file,
      missing ? 'file does not exist' : `cannot be read: ${(e as Error).message}`,
      missing ? RESAVE_FIX : 'check the file permissions',
      e,
    );
  }
}

/** Bytes the weight specs need, or null when a variable-size (string) weight makes it unknowable. */
export function expectedWeightBytes(specs: io.WeightsManifestEntry[]): number | null {
  let total = 0;
  for (const s of specs) {
    const dtype = s.quantization?.dtype ?? s.dtype;
    const per = BYTES_PER_DTYPE[dtype];
    if (per === undefined) return null;
    total += s.shape.reduce((a, b) => a * b, 1) * per;
  }
  return total;
}

function toArrayBuffer(b: Buffer): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

function parseModelJson(file: string, text: string): io.ModelJSON {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw loadError(file, `is not valid JSON (${(e as Error).message})`, RESAVE_FIX, e);
  }
  const j = json as Partial<io.ModelJSON> | null;
  if (
    !j ||
    typeof j !== 'object' ||
    !j.modelTopology ||
    typeof j.modelTopology !== 'object' ||
    !Array.isArray(j.weightsManifest)
  ) {
    throw loadError(
      file,
      'is not a tfjs layers model.json (needs an object `modelTopology` and a list `weightsManifest`)',
      RESAVE_FIX,
    );
  }
  return j as io.ModelJSON;
}

async function readWeights(
  dir: string,
  manifest: io.WeightsManifestConfig,
): Promise<[io.WeightsManifestEntry[], ArrayBuffer]> {
  const specs: io.WeightsManifestEntry[] = [];
  const buffers: Buffer[] = [];
  for (const group of manifest) {
    specs.push(...group.weights);
    for (const rel of group.paths) {
      const file = path.resolve(dir, rel);
      if (path.relative(path.resolve(dir), file).startsWith('..') || path.isAbsolute(rel)) {
        throw loadError(
          path.join(dir, MODEL_JSON),
          `weights path '${rel}' points outside the model folder`,
          RESAVE_FIX,
        );
      }
      buffers.push(await readOrThrow(file));
    }
  }
  const data = Buffer.concat(buffers);
  const expected = expectedWeightBytes(specs);
  if (expected !== null && expected !== data.byteLength) {
    const files = manifest.flatMap((g) => g.paths.map((p) => path.join(dir, p))).join(', ');
    throw loadError(
      files,
      `holds ${data.byteLength} bytes but ${MODEL_JSON} declares ${expected} bytes of weights (${data.byteLength < expected ? 'truncated' : 'extra data'})`,
      RESAVE_FIX,
    );
  }
  return [specs, toArrayBuffer(data)];
}

/**
 * An `io.IOHandler` over a folder holding `model.json` (standard tfjs layers-model JSON: topology +
 * weightsManifest with path `weights.bin`) and `weights.bin` (all weights, little-endian, in
 * manifest order) — the layout `tf.io.fileSystem`/the tfjs converter use. Needs no tfjs-node.
 */
export function folderIOHandler(dir: string): io.IOHandler {
  return {
    async save(artifacts: io.ModelArtifacts): Promise<io.SaveResult> {
      if (artifacts.modelTopology instanceof ArrayBuffer) {
        throw new KdError('KD_OUTPUT_WRITE', `cannot save a binary (graph-model) topology to ${dir}`, {
          path: dir,
          fix: 'save a tfjs-layers LayersModel',
        });
      }
      const weights =
        artifacts.weightData === undefined
          ? new ArrayBuffer(0)
          : io.CompositeArrayBuffer.join(artifacts.weightData);
      const modelJson: io.ModelJSON = {
        modelTopology: artifacts.modelTopology as object,
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy,
        weightsManifest: [{ paths: [WEIGHTS_BIN], weights: artifacts.weightSpecs ?? [] }],
      };
      if (artifacts.trainingConfig) modelJson.trainingConfig = artifacts.trainingConfig;
      if (artifacts.signature) modelJson.signature = artifacts.signature;
      if (artifacts.userDefinedMetadata) modelJson.userDefinedMetadata = artifacts.userDefinedMetadata;
      // Weights first: once the new model.json is in place, the weights it describes are too.
      await writeFileAtomic(path.join(dir, WEIGHTS_BIN), new Uint8Array(weights));
      await writeFileAtomic(path.join(dir, MODEL_JSON), JSON.stringify(modelJson));
      return { modelArtifactsInfo: io.getModelArtifactsInfoForJSON(artifacts) };
    },

    async load(): Promise<io.ModelArtifacts> {
      const file = path.join(dir, MODEL_JSON);
      const modelJson = parseModelJson(file, (await readOrThrow(file)).toString('utf8'));
      return io.getModelArtifactsForJSON(modelJson, (manifest) => readWeights(dir, manifest));
    },
  };
}

/** Saves `model` into folder `dir` (created if missing) as `model.json` + `weights.bin`. */
export async function saveModel(model: LayersModel, dir: string): Promise<io.SaveResult> {
  return model.save(folderIOHandler(dir));
}

/**
 * Loads a model saved by {@link saveModel} (or any single-folder tfjs layers model). Missing,
 * garbled or truncated files → KdError KD_MODEL_LOAD naming the file.
 */
export async function loadModel(dir: string): Promise<LayersModel> {
  try {
    return await loadLayersModel(folderIOHandler(dir));
  } catch (e) {
    if (isKdError(e)) throw e;
    const file = path.join(dir, MODEL_JSON);
    throw loadError(file, `could not be turned into a model: ${(e as Error).message}`, RESAVE_FIX, e);
  }
}
