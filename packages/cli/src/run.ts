import * as fs from 'fs';
import * as path from 'path';
import { Engine, KdError, parseSpec, stringifySpec, type RunResult, type RunSpec } from '@tfkd/kd-core';
import { calibrationArtifacts } from './calibration';
import { defaultRegistry } from './modules';
import { StagedFolder, defaultOutDir } from './output';
import { attachProgress } from './progress';
import { trainingCurvesSvg } from './svg';
import { versions } from './versions';

export interface RunOptions {
  out?: string;
  set?: string[];
  backend?: string;
  /** Teacher cache folder (default `.kd-cache` in the working folder). */
  cacheDir?: string;
  /** Progress and log lines (default: stderr). */
  quiet?: boolean;
}

export interface RunOutcome {
  outDir: string;
  result: RunResult;
  metrics: Record<string, unknown>;
}

export function loadSpecFile(file: string, sets: readonly string[] = [], backend?: string): RunSpec {
  if (!fs.existsSync(file)) {
    throw new KdError('KD_SPEC_INVALID', `spec file ${file} does not exist`, { path: file, fix: 'give the path of a YAML spec, e.g. examples/fashion-kd.yaml' });
  }
  const overrides = backend ? [...sets, `backend=${backend}`] : sets;
  return parseSpec(fs.readFileSync(file, 'utf8'), file, overrides);
}

/** `kd run SPEC`: validate, prepare (all spec errors surface here), train, then write the run folder atomically. */
export async function runCommand(specFile: string, opts: RunOptions = {}): Promise<RunOutcome> {
  const spec = loadSpecFile(specFile, opts.set ?? [], opts.backend);
  const log = opts.quiet ? () => undefined : (l: string) => process.stderr.write(`${l}\n`);
  const engine = new Engine(spec, {
    registry: defaultRegistry(),
    specDir: path.dirname(path.resolve(specFile)),
    cacheDir: opts.cacheDir ?? '.kd-cache',
    log,
    observe: opts.quiet ? undefined : (bus, phase) => attachProgress(bus, phase),
  });
  let staged: StagedFolder | null = null;
  try {
    await engine.prepare();
    const outDir = opts.out ?? defaultOutDir(specFile);
    staged = new StagedFolder(outDir);
    const startedAt = new Date().toISOString();
    const result = await engine.run();
    const metrics = await writeRun(staged, specFile, spec, result, startedAt);
    staged.commit();
    log(`wrote ${outDir}`);
    return { outDir, result, metrics };
  } catch (e) {
    staged?.abort();
    throw e;
  } finally {
    engine.dispose();
  }
}

async function writeRun(staged: StagedFolder, specFile: string, spec: RunSpec, result: RunResult, startedAt: string): Promise<Record<string, unknown>> {
  staged.write('spec.resolved.yaml', stringifySpec(spec));
  staged.write('history.jsonl', result.history.map((h) => JSON.stringify(h)).join('\n') + '\n');
  const students = result.roles.filter((r) => r.kind === 'student').map((r) => r.name);
  const tools = (await import('@tfkd/models')).modelTools;
  for (const role of students) {
    const dir = students.length === 1 ? staged.file('student') : staged.file(path.join('students', role));
    await tools.save(result.models.get(role) as never, dir);
  }
  const calibration = await calibrationArtifacts(result, (name, svg) => staged.write(name, svg));
  const eval_ = Object.fromEntries(
    Object.entries(result.eval).map(([role, m]) => [role, { ...m, ...(calibration[role] ?? {}) }]),
  );
  const metrics = {
    status: result.status,
    spec: path.resolve(specFile),
    versions: versions(),
    backend: { name: result.backend.name, label: result.backend.label, requested: result.backend.requested },
    seed: spec.seed,
    dataset: result.dataset,
    epochs: spec.train.epochs,
    eval: eval_,
    teachers: result.teachers,
    ledger: result.ledger,
    wallSeconds: result.seconds,
    startedAt,
    finishedAt: new Date().toISOString(),
  };
  staged.write('metrics.json', JSON.stringify(metrics, null, 2) + '\n');
  const loss = [{ name: 'train loss', points: result.history.map((h) => [h.epoch, h.train.loss] as [number, number]) }];
  const acc = students.map((role) => ({
    name: role,
    points: result.history.filter((h) => h.eval[role]).map((h) => [h.epoch, h.eval[role].accuracy] as [number, number]),
  }));
  staged.write('training-curves.svg', trainingCurvesSvg(loss, acc, path.basename(specFile)));
  return metrics;
}
