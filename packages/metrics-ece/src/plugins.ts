import { CalibrationAccumulator, definePlugin, PLUGIN_DEFINITION, type CalibrationResult, type EvalBatch, type EvalReport, type Plugin, type PluginDefinition } from '@tfkd/kd-core';
import { ContainerModule } from 'inversify';
import { z } from 'zod';
import { reliabilityDiagramSvg } from './diagram';

const bins = z.number().int().min(1).max(10000).default(15).describe('number of bins');

/**
 * The plugin skeleton shared by every metric: one accumulator per role, fed on `evalBatch` (logits
 * read with dataSync: the handler is synchronous, inside the step's tidy) and turned into numbers on
 * `evalEnd`, then reset for the next evaluation.
 */
function calibrationPlugin(
  name: string,
  options: { bins: number; adaptiveBins?: number },
  emit: (role: string, result: CalibrationResult, report: EvalReport) => void | Promise<void>,
): Plugin {
  const accs = new Map<string, CalibrationAccumulator>();
  return {
    name,
    register(bus) {
      bus.on('evalBatch', (e: EvalBatch) => {
        const k = e.logits.shape[e.logits.shape.length - 1] as number;
        let acc = accs.get(e.role);
        if (!acc) {
          acc = new CalibrationAccumulator({ bins: options.bins, adaptiveBins: options.adaptiveBins, input: 'logits', numClasses: k });
          accs.set(e.role, acc);
        }
        acc.update(e.logits.dataSync(), e.labels.dataSync());
      });
      bus.on('evalEnd', async (report: EvalReport) => {
        const done = [...accs.entries()].filter(([, acc]) => acc.size > 0);
        accs.clear();
        for (const [role, acc] of done) await emit(role, acc.result(), report);
      });
    },
    dispose() {
      accs.clear();
    },
  };
}

type Pick1 = (r: CalibrationResult) => Record<string, number>;

function single(id: string, describe: string, pick: Pick1, withBins: boolean): PluginDefinition {
  const options = withBins ? z.object({ bins }).strict() : z.object({}).strict();
  return definePlugin({
    id,
    kind: 'metric',
    describe,
    options,
    create: (o, deps) =>
      calibrationPlugin(deps.name, { bins: (o as { bins?: number }).bins ?? 15 }, (role, r, report) => report.set(role, pick(r))),
  });
}

export const eceMetric = single(
  'metric/ece',
  'expected calibration error: Σ_b (n_b/n)·|acc_b − conf_b| over equal-width confidence bins (lo < conf ≤ hi, float32 edges)',
  (r) => ({ ece: r.ece }),
  true,
);

export const mceMetric = single('metric/mce', 'maximum calibration error: max_b |acc_b − conf_b| over non-empty equal-width bins', (r) => ({ mce: r.mce }), true);

export const adaptiveEceMetric = single(
  'metric/adaptive-ece',
  'ECE over equal-mass confidence bins (`bins` of them; ties kept together)',
  (r) => ({ adaptiveEce: r.adaptiveEce }),
  true,
);

export const classwiseEceMetric = single(
  'metric/classwise-ece',
  'class-wise ECE: per class k, equal-width bins of p_k against the frequency of y = k, averaged over classes',
  (r) => ({ classwiseEce: r.classwiseEce }),
  true,
);

export const nllMetric = single('metric/nll', 'negative log-likelihood: mean −log softmax(z)_y (float64)', (r) => ({ nll: r.nll }), false);

export const brierMetric = single('metric/brier', 'Brier score: mean Σ_k (p_k − 1[y = k])²', (r) => ({ brier: r.brier }), false);

export const accuracyMetric = single('metric/accuracy', 'top-1 accuracy (argmax of the logits)', (r) => ({ accuracy: r.accuracy }), false);

const calibrationOptions = z
  .object({
    bins,
    adaptiveBins: z.number().int().min(1).max(10000).optional().describe('equal-mass bins of adaptiveEce (default: bins)'),
    svgDir: z.string().min(1).optional().describe('folder for reliability-diagram SVGs, written at every evaluation'),
    title: z.string().optional().describe('diagram title prefix (default: the plugin name)'),
  })
  .strict();

/** The SVG file a `metric/calibration` evaluation writes: `<svgDir>/reliability-<role>-<phase>-epoch<e>.svg`. */
export function diagramFileName(role: string, phase: string, epoch: number): string {
  const safe = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '_');
  return `reliability-${safe(role)}-${safe(phase)}-epoch${epoch}.svg`;
}

export const calibrationMetric = definePlugin({
  id: 'metric/calibration',
  kind: 'metric',
  describe: 'ece, mce, adaptiveEce, classwiseEce, nll and brier at once; with `svgDir`, writes a reliability diagram per role and evaluation',
  options: calibrationOptions,
  create: (o, deps) =>
    calibrationPlugin(deps.name, o, async (role, r, report) => {
      report.set(role, {
        ece: r.ece,
        mce: r.mce,
        adaptiveEce: r.adaptiveEce,
        classwiseEce: r.classwiseEce,
        nll: r.nll,
        brier: r.brier,
      });
      if (!o.svgDir) return;
      const [fs, path] = await Promise.all([import('fs/promises'), import('path')]);
      const title = `${o.title ?? deps.name} — ${role}, ${report.phase} epoch ${report.epoch}`;
      await fs.mkdir(o.svgDir, { recursive: true });
      await fs.writeFile(path.join(o.svgDir, diagramFileName(role, report.phase, report.epoch)), reliabilityDiagramSvg(r, { title }));
    }),
});

/** Every definition of this package, in `kd list` order. */
export const metricDefinitions: readonly PluginDefinition[] = [
  eceMetric,
  mceMetric,
  adaptiveEceMetric,
  classwiseEceMetric,
  nllMetric,
  brierMetric,
  accuracyMetric,
  calibrationMetric as PluginDefinition,
];

/** Binds every definition to kd-core's PLUGIN_DEFINITION (load it into a Registry, or name the package in `packages:`). */
export const metricsModule = new ContainerModule((o) => {
  for (const d of metricDefinitions) o.bind(PLUGIN_DEFINITION).toConstantValue(d);
});

/** The name kd-core's package loader looks for. */
export const kdModule = metricsModule;
