import { env } from '@tensorflow/tfjs-core';
import { Command, Option } from 'commander';
import { isKdError, TASKS, type KdError } from '@tfkd/kd-core';
import { evalCommand, type EvalOptions } from './eval';
import { listText } from './list';
import { defaultRegistry } from './modules';
import { runCommand } from './run';
import { sweepCancelCommand, sweepCommand, sweepStatusCommand, sweepTableCommand, workerMain } from './sweep';

const collect = (v: string, prev: string[]) => [...prev, v];
const BACKENDS = ['auto', 'wasm', 'cpu', 'tensorflow'];

/** What a command leaves for `main` to return (an interrupted `kd run` exits 130 or 143). */
export interface ProgramState {
  exitCode: number;
}

export function program(state: ProgramState = { exitCode: 0 }): Command {
  const p = new Command('kd')
    .description('Composable knowledge distillation for TensorFlow.js')
    .showHelpAfterError()
    .exitOverride();
  p.command('run')
    .description('train the roles of a run spec and write a run folder')
    .argument('<spec>', 'YAML run spec')
    .option('--out <dir>', 'run folder (default runs/<spec name>)')
    .option('--set <path=value>', 'override a spec value (repeatable), e.g. --set train.epochs=2', collect, [])
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKENDS))
    .option('--cache-dir <dir>', 'teacher cache folder (default: $KD_CACHE_DIR, else .kd-cache)')
    .option('--overwrite', 'replace an --out folder that already holds a run, once the new run has completed')
    .option('--quiet', 'no progress output')
    .option('--resume <dir>', 'continue an interrupted run from its last checkpoint: its run folder, or <out>.incomplete after a crash (same spec and --set values)')
    .option('--plan', 'check the spec and print every run it implies (teachers, generations, the run), in order, without training anything')
    .option('--teacher-worker', 'forward the frozen teacher in a worker thread, one batch ahead of the student (pays off with a free core; results bit-identical; not for runs whose batches a sampler or augmentation changes)')
    .option('--teacher-fold-bn', "fold the frozen teacher's batch norms into its convolutions for its training-time forward (fewer kernels; equal to float32 precision, not bit for bit)")
    .action(async (spec: string, o: { out?: string; set: string[]; backend?: string; cacheDir?: string; quiet?: boolean; resume?: string; plan?: boolean; overwrite?: boolean; teacherWorker?: boolean; teacherFoldBn?: boolean }) => {
      const { outDir, metrics, status, exitCode, plan } = await runCommand(spec, o);
      if (plan) {
        process.stdout.write(`${plan.join('\n')}\n`);
        return;
      }
      const resume = status === 'interrupted' && metrics.checkpoint ? { resume: `kd run ${spec} --resume ${outDir}` } : {};
      process.stdout.write(`${JSON.stringify({ outDir, status, eval: metrics.eval, wallSeconds: metrics.wallSeconds, ...resume })}\n`);
      state.exitCode = exitCode;
    });
  p.command('eval')
    .summary('evaluate saved models: classifiers (accuracy, calibration; several: their ensemble), detectors and segmenters (mAP / mIoU, as their run evaluated them)')
    .description(
      'evaluate saved models on a test split. Classifiers: accuracy and calibration (ECE, MCE, NLL, Brier), reliability diagram; several models: also their ensemble (mean logits). ' +
        "Detectors and segmenters (one at a time): mAP / mIoU as their run evaluated them — the task, metric options and data from the run's spec.resolved.yaml beside the model folder (RUN/student), or --spec, or --task; no reliability diagram, no ensemble",
    )
    .argument('<model...>', 'folder(s) with model.json and weights.bin (a run folder\'s student/)')
    .option('--data <name>', "dataset id (default: a detector's or segmenter's run data, else fashion-mnist)")
    .option('--data-path <dir>', 'dataset folder')
    .option('--subset', 'use the shipped subset')
    .option('--spec <file>', "the run spec giving the model's task, metric options and data (default: spec.resolved.yaml beside the model folder)")
    .addOption(new Option('--task <task>', 'the task of a model without a run spec (metric options at their defaults)').choices([...TASKS]))
    .option('--out <dir>', 'write eval.json (and, for classifiers, the reliability diagram(s)) here')
    .addOption(new Option('--backend <name>', 'tfjs backend').choices(BACKENDS).default('auto'))
    .action(async (models: string[], o: EvalOptions) => {
      process.stdout.write(`${await evalCommand(models, o)}\n`);
    });
  p.command('list')
    .description('installed plugins with their options and defaults, models and datasets')
    .option('--json', 'machine-readable')
    .option('--package <name>', 'also load a plugin package (module name or path), as a spec\'s `packages:` does', collect, [])
    .action(async (o: { json?: boolean; package: string[] }) => {
      const registry = defaultRegistry();
      await registry.loadPackages(o.package, process.cwd());
      process.stdout.write(`${listText(registry, o)}\n`);
    });
  p.command('report')
    .description('one self-contained HTML report per run folder (metrics, cost ledger, curves, reliability diagrams, spec) or sweep folder (table with intervals, metric against teacher cost)')
    .argument('<folder...>', 'run folder(s) written by `kd run`, or sweep folder(s) holding the table.json of `kd sweep table`')
    .option('--out <file>', 'the HTML file (one folder only; default <folder>/report.html)')
    .action(async (folders: string[], o: { out?: string }) => {
      const { reportCommand } = await import('./report');
      for (const file of await reportCommand(folders, o)) process.stdout.write(`${file}\n`);
    });
  p.command('sweep')
    .description('run a grid of specs (methods × seeds × hyper-parameters) as jobs on Redis + BullMQ; `kd sweep status|table [FILE]` report on it, `kd sweep cancel [FILE]` takes its waiting cells out of the queue (docs/sweeps.md)')
    .argument('<file|status|table|cancel>', 'sweep YAML (e.g. examples/sweeps/demo.yaml), or `status` / `table` / `cancel`')
    .argument('[file]', 'for status/table/cancel: the sweep YAML (its folder is sweeps/<name>) unless --out is given')
    .option('--redis <url>', 'a shared Redis (redis://host:port); default: a private redis-server with its data in the sweep folder')
    .option('--workers <n>', 'local worker processes (default: the number of cores; 0 with --redis)')
    .option('--out <dir>', 'sweep folder (default sweeps/<sweep name>)')
    .option('--cache-dir <dir>', 'teacher cache of this machine (default: $KD_CACHE_DIR, else .kd-cache)')
    .option('--detach', 'submit and return (workers elsewhere run the cells)')
    .option('--first', "put the sweep's cells at the front of the queue, before cells other sweeps left waiting (in sweep order)")
    .option('--plan', 'check every cell and print it with its `kd run` command; enqueue nothing')
    .option('--lock-ms <ms>', 'job lock of local workers: a worker silent this long (killed) loses its job to another (default 30000)')
    .option('--json', 'status: machine-readable')
    .option('--watch', 'status: report until the sweep ends')
    .option('--offline', 'table: from <out>/runs only, without Redis')
    .option('--rows <names>', 'cancel: only these rows (comma-separated), e.g. --rows dkd,dist')
    .option('--quiet', 'no progress output')
    .action(async (what: string, file: string | undefined, o: Record<string, string | boolean | undefined>) => {
      if (what === 'status') {
        process.stdout.write(`${await sweepStatusCommand(file, o as Parameters<typeof sweepStatusCommand>[1])}\n`);
        return;
      }
      if (what === 'cancel') {
        process.stdout.write(`${await sweepCancelCommand(file, o as Parameters<typeof sweepCancelCommand>[1])}\n`);
        return;
      }
      if (what === 'table') {
        process.stdout.write(`${await sweepTableCommand(file, o as Parameters<typeof sweepTableCommand>[1])}\n`);
        return;
      }
      state.exitCode = (await sweepCommand(what, o as never)).exitCode;
    });
  p.command('worker')
    .description('join a sweep queue: take cells from Redis and run them, one at a time, until SIGTERM/SIGINT')
    .requiredOption('--redis <url>', 'the sweep\'s Redis, redis://host:port')
    .option('--dir <dir>', 'working folder (spec copies, run folders with checkpoints)', '.kd-worker')
    .option('--cache-dir <dir>', 'teacher cache (default <dir>/.kd-cache)')
    .option('--lock-ms <ms>', 'job lock: a worker silent this long (killed) loses its job to another (default 30000)')
    .option('--checkpoint-max-mb <mb>', "a running cell's checkpoints up to this size travel through Redis, so a worker on another machine resumes it (default 64; 0: they stay on this disk)")
    .option('--quiet', 'no log lines')
    .action(async (o: { redis: string; dir?: string; cacheDir?: string; lockMs?: string; checkpointMaxMb?: string; quiet?: boolean }) => {
      state.exitCode = await workerMain(o);
    });
  return p;
}

/** Run the CLI; returns the exit code (0 ok, 2 user error with a KdError code, 1 unexpected). */
export async function main(argv: string[]): Promise<number> {
  // The backend is chosen deliberately and recorded in metrics.json: no tfjs-node advertisement.
  env().set('PROD', true);
  try {
    const state: ProgramState = { exitCode: 0 };
    await program(state).parseAsync(argv, { from: 'user' });
    return state.exitCode;
  } catch (e) {
    const ce = e as { code?: string; exitCode?: number };
    if (typeof ce.code === 'string' && ce.code.startsWith('commander.')) {
      return ce.code === 'commander.helpDisplayed' || ce.code === 'commander.version' ? 0 : 2;
    }
    if (isKdError(e)) {
      process.stderr.write(`error ${(e as KdError).format()}\n`);
      // Stopped by a signal before anything resumable existed (teacher training): 130/143, not 2.
      return (e as { exitCode?: number }).exitCode ?? 2;
    }
    process.stderr.write(`error KD_INTERNAL: ${(e as Error).stack ?? String(e)}\n  fix: this is a bug; please report it with the spec\n`);
    return 1;
  }
}
