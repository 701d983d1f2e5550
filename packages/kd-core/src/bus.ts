import { Observable, Subject, Subscription, filter } from 'rxjs';
import { KdError, isKdError } from './errors';
import {
  STAGES,
  isTensorHook,
  type HookHandler,
  type HookName,
  type HookPayloads,
  type LifecycleEvent,
  type ObservedEvent,
  type NumberHook,
  type Stage,
  type TensorHook,
} from './hooks';
import type { PluginBus } from './plugin';

interface Registration {
  owner: string;
  stage: Stage;
  order: number;
  hook: HookName;
  handler: (payload: unknown) => unknown;
  specPath?: string;
}

interface Failure {
  owner: string;
  hook: HookName;
  error: unknown;
  specPath?: string;
}

/** Per-owner view of a payload (the engine scopes `addLoss` to the plugin that calls it). */
export type PayloadScope = (payload: unknown, owner: string) => unknown;

/**
 * The lifecycle bus: one typed RxJS stream owned by the engine.
 *
 * Plugins subscribe through `forPlugin(name, stage, order).on(hook, fn)`; `seal()` subscribes every
 * handler to the stream in (stage, spec order), so the Subject's synchronous delivery runs them in
 * that order. Every handler is wrapped: RxJS 7 would report an error thrown in a subscriber
 * asynchronously (and kill the process); instead the wrapper collects it with the plugin's name and
 * `emit` rethrows after the emission. A Promise returned from a tensor hook is an error.
 * On number hooks handlers may be async: the wrapper chains them, so they run one after another in
 * order, and `emitAsync` awaits the chain. Observers (`events$`) see number hooks only, after the
 * plugins have handled them.
 */
export class LifecycleBus {
  private readonly stream = new Subject<LifecycleEvent>();
  private readonly observed = new Subject<ObservedEvent>();
  private readonly registrations: Registration[] = [];
  private readonly subscriptions = new Subscription();
  private sealed = false;
  private failures: Failure[] = [];
  private chain: Promise<void> = Promise.resolve();
  private scope: PayloadScope | null = null;
  private inactive: ReadonlySet<string> = new Set();

  /** Numbers-only events for progress bars, loggers and plots (ordinary RxJS operators apply). */
  readonly events$: Observable<ObservedEvent> = this.observed.asObservable();

  /** `specPath` (`plugins[2]`) is where a failure of this plugin is reported; default: its name. */
  forPlugin(owner: string, stage: Stage = 'default', order = this.registrations.length, specPath?: string): PluginBus {
    if (!STAGES.includes(stage)) {
      throw new KdError('KD_INTERNAL', `unknown stage '${stage}' for plugin '${owner}'`, {
        fix: `use one of ${STAGES.join(', ')}`,
      });
    }
    return {
      on: <K extends HookName>(hook: K, handler: HookHandler<K>) => {
        if (this.sealed) {
          throw new KdError('KD_INTERNAL', `plugin '${owner}' subscribed to '${hook}' after the run started`, {
            fix: 'subscribe inside register(bus)',
          });
        }
        this.registrations.push({ owner, stage, order, hook, handler: handler as (p: unknown) => unknown, specPath });
      },
    };
  }

  /** Subscribe all handlers in (stage, order). Called once by the engine before the first event. */
  seal(): void {
    if (this.sealed) return;
    this.sealed = true;
    const sorted = [...this.registrations].sort(
      (a, b) => STAGES.indexOf(a.stage) - STAGES.indexOf(b.stage) || a.order - b.order,
    );
    for (const reg of sorted) {
      this.subscriptions.add(
        this.stream.pipe(filter((e) => e.hook === reg.hook)).subscribe((e) => this.invoke(reg, e.payload)),
      );
    }
  }

  /** The handlers of a hook, in delivery order, as `owner` names (for tests and `kd list`). */
  order(hook: HookName): string[] {
    return [...this.registrations]
      .filter((r) => r.hook === hook)
      .sort((a, b) => STAGES.indexOf(a.stage) - STAGES.indexOf(b.stage) || a.order - b.order)
      .map((r) => r.owner);
  }

  /** Synchronous emission of a tensor hook, inside the caller's tidy scope. */
  emit<K extends TensorHook>(hook: K, payload: HookPayloads[K], scope: PayloadScope | null = null): void {
    this.seal();
    this.failures = [];
    this.scope = scope;
    try {
      this.stream.next({ hook, payload } as LifecycleEvent);
    } finally {
      this.scope = null;
    }
    this.rethrow();
  }

  /** Emission of a number hook whose handlers may be async: awaited one after another, in order. */
  async emitAsync<K extends NumberHook>(hook: K, payload: HookPayloads[K]): Promise<void> {
    this.seal();
    this.failures = [];
    this.chain = Promise.resolve();
    this.stream.next({ hook, payload } as LifecycleEvent);
    await this.chain;
    this.rethrow();
    this.observed.next({ hook, payload } as ObservedEvent);
  }

  /**
   * Declared stages: these owners (the run's plugins not active in the current phase) do not receive
   * the hooks of a phase's training (`epochStart`, `batchStart`, `loss`, `batchEnd`, `epochEnd`).
   * Empty by default. `runStart`, `runEnd` and the evaluation hooks always reach every handler.
   */
  setInactive(owners: Iterable<string>): void {
    this.inactive = new Set(owners);
  }

  complete(): void {
    this.subscriptions.unsubscribe();
    this.stream.complete();
    this.observed.complete();
  }

  private invoke(reg: Registration, payload: unknown): void {
    if (this.inactive.size > 0 && this.inactive.has(reg.owner) && PHASE_HOOKS.has(reg.hook)) return;
    if (!isTensorHook(reg.hook)) {
      // Number hooks: chained, so handlers run one after another (an async one finishes before the
      // next starts), exactly like awaiting them in a for…of.
      this.chain = this.chain
        .then(() => reg.handler(payload))
        .then(
          () => undefined,
          (error) => {
            this.failures.push({ owner: reg.owner, hook: reg.hook, error, specPath: reg.specPath });
          },
        );
      return;
    }
    const arg = this.scope ? this.scope(payload, reg.owner) : payload;
    try {
      const result = reg.handler(arg);
      if (isThenable(result)) {
        (result as Promise<unknown>).catch(() => undefined);
        this.failures.push({
          owner: reg.owner,
          hook: reg.hook,
          specPath: reg.specPath,
          error: new KdError('KD_HOOK_ASYNC', `the '${reg.hook}' handler returned a Promise`, {
            path: reg.specPath ?? reg.owner,
            fix: `tensor hooks run inside the step's tidy scope and must be synchronous; do async work in epochEnd or runEnd`,
          }),
        });
      }
    } catch (error) {
      this.failures.push({ owner: reg.owner, hook: reg.hook, error, specPath: reg.specPath });
    }
  }

  private rethrow(): void {
    if (this.failures.length === 0) return;
    const [first, ...rest] = this.failures;
    this.failures = [];
    const more = rest.length ? ` (and ${rest.length} more: ${rest.map((f) => f.owner).join(', ')})` : '';
    const where = `plugin '${first.owner}' failed in hook '${first.hook}'`;
    if (isKdError(first.error)) {
      const e = first.error as KdError;
      throw new KdError(e.code, `${where}: ${e.message}${more}`, { path: e.path ?? first.specPath ?? first.owner, fix: e.fix, cause: e });
    }
    const msg = first.error instanceof Error ? first.error.message : String(first.error);
    throw new KdError('KD_PLUGIN_FAILED', `${where}: ${msg}${more}`, {
      path: first.specPath ?? first.owner,
      cause: first.error,
      fix: `see the cause's stack; remove '${first.owner}' from the spec to confirm it is at fault`,
    });
  }
}

const PHASE_HOOKS: ReadonlySet<HookName> = new Set<HookName>(['epochStart', 'batchStart', 'loss', 'batchEnd', 'epochEnd']);

function isThenable(v: unknown): boolean {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}
