import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { DataSplits } from '@tfkd/kd-core';
import type { SelectedBackend } from './backend';
import type { OutputCache } from './cache';
import type { ResolvedPlugin } from './resolve';
import type { RoleRuntime } from './roles';
import type { FastTeacher, TeacherForwardOptions, TeacherSource } from './teacher-source';

/** What `TeacherForward.start` needs of the run. */
export interface TeacherForwardContext {
  roles: ReadonlyMap<string, RoleRuntime>;
  plugins: readonly ResolvedPlugin[];
  data: DataSplits;
  backend: SelectedBackend;
  /** Largest batch of any phase. */
  maxBatch: number;
  options?: TeacherForwardOptions;
  log: (line: string) => void;
  warn: (line: string) => void;
}

/** The step's view: which teachers the phase forwards, and the output caches. */
interface PhaseView {
  prefetch: readonly string[];
  caches?: Map<string, OutputCache>;
}

/**
 * The fast path of a frozen teacher's forward during training (`EngineOptions.teacherForward`,
 * `kd run --teacher-worker` / `--teacher-fold-bn`):
 *
 * Per teacher role, a {@link FastTeacher}:
 * - `model`: the teacher's tapped model with its batch norms folded into the convolutions (same
 *   outputs in the same order, to float32 precision), used wherever the step forwards the teacher
 *   itself — and what the source runs, so both routes give the same bits;
 * - `source`: a teacher source (Node: a worker thread) that computes batch i+1's outputs while the
 *   student steps batch i. `StepContextImpl.outputs` takes them when the teacher-output cache does not
 *   hold the batch, counted as one forward, exactly like the forward it replaces.
 *
 * Only for batches whose images the step does not change: with a plugin that transforms batches or a
 * sampler (stage `sample`, which may replace the batch), the teacher's input is not known ahead, and
 * the source is not started (one warning). Teachers with a resizing `view` are forwarded in the step.
 */
export class TeacherForward {
  private closed = false;

  private constructor(
    readonly roles: Map<string, FastTeacher>,
    private readonly owned: LayersModel[],
  ) {}

  /** Folds and starts what `options` asks for; null when it asks for nothing (or nothing applies). */
  static async start(ctx: TeacherForwardContext): Promise<TeacherForward | null> {
    const o = ctx.options;
    if (!o || (!o.worker && !o.foldBatchNorm)) return null;
    // Only teachers some plugin forwards (a run without one, such as a teacher's own training, says nothing).
    const needed = [...ctx.roles.values()].filter((r) => r.info.kind === 'teacher' && ctx.plugins.some((p) => p.requiresRole(r.info)));
    const roles = new Map<string, FastTeacher>();
    const owned: LayersModel[] = [];
    const fwd = new TeacherForward(roles, owned);
    try {
      for (const r of needed) {
        const fast: FastTeacher = { model: null, source: null };
        if (o.foldBatchNorm) fast.model = await fold(r, o.foldBatchNorm, owned, ctx);
        roles.set(r.info.name, fast);
      }
      const why = o.worker && needed.length > 0 ? workerRefusal(ctx) : null;
      if (why) ctx.warn(`teacher worker: off, ${why}; the teacher is forwarded in the training step`);
      else if (o.worker) {
        for (const r of needed) {
          const fast = roles.get(r.info.name) as FastTeacher;
          if (r.spec.view?.resize) {
            ctx.warn(`teacher worker: off for '${r.info.name}', its view resizes the images; forwarded in the training step`);
            continue;
          }
          try {
            fast.source = await o.worker({
              role: r.info.name,
              model: fast.model ?? r.tapped,
              images: ctx.data.train.images,
              sampleShape: [...r.inputShape],
              maxBatch: ctx.maxBatch,
              backend: ctx.backend.name,
            });
            ctx.log(`teacher '${r.info.name}': forward in a worker thread, one batch ahead`);
          } catch (e) {
            ctx.warn(`teacher worker: could not start for '${r.info.name}' (${(e as Error)?.message ?? e}); forwarded in the training step`);
          }
        }
      }
    } catch (e) {
      await fwd.close();
      throw e;
    }
    if ([...roles.values()].some((f) => f.model || f.source)) return fwd;
    await fwd.close();
    return null;
  }

  /**
   * Before stepping `current` (with `next` after it): keep the sources' requests for these two, drop
   * any other, and ask for those not yet asked — for the teachers this phase forwards, unless the
   * teacher-output cache already holds the batch.
   */
  ahead(host: PhaseView, current: ArrayLike<number> | undefined, next: ArrayLike<number> | undefined): void {
    for (const [role, fast] of this.roles) {
      const src = fast.source;
      if (!src) continue;
      const cache = host.caches?.get(role);
      const wanted = host.prefetch.includes(role) ? [current, next].filter((b): b is ArrayLike<number> => b !== undefined && !cache?.has(b)) : [];
      src.retain(wanted);
      for (const b of wanted) if (!src.has(b)) src.prefetch(b);
    }
  }

  /** At an epoch's end: a source whose teacher's outputs are all in the cache has nothing left to do; stop it. */
  async idle(caches: Map<string, OutputCache>, n: number): Promise<void> {
    const all = Int32Array.from({ length: n }, (_, i) => i);
    for (const [role, fast] of this.roles) {
      if (fast.source && caches.get(role)?.has(all)) {
        const src = fast.source;
        fast.source = null;
        await src.close();
      }
    }
  }

  /** Stops the sources and frees the folded models (idempotent: run end, error, stop, dispose). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // The folded models first, synchronously (the worker has its own copy): `Engine.dispose()` does not wait.
    for (const m of this.owned.splice(0)) m.dispose();
    const sources = [...this.roles.values()].map((f) => f.source).filter((s): s is TeacherSource => s !== null);
    for (const f of this.roles.values()) f.source = null;
    await Promise.all(sources.map((s) => s.close()));
  }
}

/** Why no teacher source can serve this run (null: it can). */
function workerRefusal(ctx: TeacherForwardContext): string | null {
  const changes = ctx.plugins.filter((p) => {
    const t = p.def.transformsBatch;
    return p.stage === 'sample' || (typeof t === 'function' ? t(p.options as never) : Boolean(t));
  });
  if (changes.length > 0) {
    return `${changes.map((p) => `'${p.name}'`).join(', ')} ${changes.length > 1 ? 'change' : 'changes'} the batches, so the teacher's input is not known ahead`;
  }
  if (ctx.backend.name !== 'wasm' && ctx.backend.name !== 'cpu') return `backend '${ctx.backend.name}' (the worker runs wasm or cpu only)`;
  return null;
}

async function fold(r: RoleRuntime, foldBatchNorm: NonNullable<TeacherForwardOptions['foldBatchNorm']>, owned: LayersModel[], ctx: TeacherForwardContext): Promise<LayersModel | null> {
  try {
    const folded = await foldBatchNorm(r.tapped);
    if (folded.model === r.tapped || folded.folds.length === 0) {
      if (folded.model !== r.tapped) folded.model.dispose();
      return null;
    }
    owned.push(folded.model);
    ctx.log(`teacher '${r.info.name}': ${folded.folds.length} batch norm${folded.folds.length > 1 ? 's' : ''} folded into the preceding layers for the frozen forward`);
    return folded.model;
  } catch (e) {
    ctx.warn(`teacher '${r.info.name}': batch norms not folded (${(e as Error)?.message ?? e}); the teacher is forwarded as it is`);
    return null;
  }
}
