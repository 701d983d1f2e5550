import '@tensorflow/tfjs-backend-cpu';
import { firstValueFrom, toArray } from 'rxjs';
import { LifecycleBus } from './bus';
import { KdError } from './errors';
import type { EvalReport, StepContext } from './hooks';

const ctx = {} as StepContext;
const report = (): EvalReport => ({ phase: 'p', epoch: 1, metrics: {}, set() {} });

describe('LifecycleBus', () => {
  it('delivers in stage order, then registration (spec) order', () => {
    const bus = new LifecycleBus();
    const seen: string[] = [];
    bus.forPlugin('late', 'observe', 0).on('loss', () => void seen.push('late'));
    bus.forPlugin('b', 'default', 2).on('loss', () => void seen.push('b'));
    bus.forPlugin('a', 'default', 1).on('loss', () => void seen.push('a'));
    bus.forPlugin('sampler', 'sample', 3).on('loss', () => void seen.push('sampler'));
    bus.emit('loss', ctx);
    expect(seen).toEqual(['sampler', 'a', 'b', 'late']);
    expect(bus.order('loss')).toEqual(['sampler', 'a', 'b', 'late']);
  });

  it('rethrows a handler error to the emitter with the plugin name, after the others ran', () => {
    const bus = new LifecycleBus();
    const seen: string[] = [];
    bus.forPlugin('loss/broken').on('loss', () => {
      throw new Error('boom');
    });
    bus.forPlugin('loss/fine').on('loss', () => void seen.push('fine'));
    let caught: unknown;
    try {
      bus.emit('loss', ctx);
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(KdError);
    expect((caught as KdError).code).toBe('KD_PLUGIN_FAILED');
    expect((caught as KdError).message).toBe("plugin 'loss/broken' failed in hook 'loss': boom");
    expect(seen).toEqual(['fine']);
    // The bus stays usable: the next emission is clean.
    expect(() => bus.emit('batchStart', ctx)).not.toThrow();
  });

  it('keeps the code of a KdError thrown by a plugin', () => {
    const bus = new LifecycleBus();
    bus.forPlugin('loss/shape').on('loss', () => {
      throw new KdError('KD_SHAPE_MISMATCH', 'shapes [2,3] and [2,4] differ');
    });
    expect(() => bus.emit('loss', ctx)).toThrow(
      expect.objectContaining({ code: 'KD_SHAPE_MISMATCH', message: "plugin 'loss/shape' failed in hook 'loss': shapes [2,3] and [2,4] differ" }),
    );
  });

  it('reports a failure at the spec path of the plugin (its name when none was given), so kd prints "at plugins[i]"', () => {
    const bus = new LifecycleBus();
    bus.forPlugin('loss/broken', 'default', 0, 'plugins[3]').on('loss', () => {
      throw new RangeError('Invalid typed array length');
    });
    bus.forPlugin('loss/pathless', 'default', 1, 'plugins[4]').on('batchStart', () => {
      throw new KdError('KD_SHAPE_MISMATCH', 'shapes differ');
    });
    bus.forPlugin('sampler/async', 'sample', 2, 'plugins[0]').on('batchStart', (async () => undefined) as unknown as () => void);
    expect(() => bus.emit('loss', ctx)).toThrow(expect.objectContaining({ code: 'KD_PLUGIN_FAILED', path: 'plugins[3]' }));
    expect(() => bus.emit('batchStart', ctx)).toThrow(expect.objectContaining({ code: 'KD_HOOK_ASYNC', path: 'plugins[0]' }));
    const solo = new LifecycleBus();
    solo.forPlugin('obs/unnamed').on('loss', () => {
      throw new Error('x');
    });
    expect(() => solo.emit('loss', ctx)).toThrow(expect.objectContaining({ code: 'KD_PLUGIN_FAILED', path: 'obs/unnamed' }));
  });

  it('rejects a Promise returned from a tensor hook, naming plugin and hook', () => {
    const bus = new LifecycleBus();
    bus.forPlugin('sampler/async').on('batchStart', (async () => undefined) as unknown as () => void);
    expect(() => bus.emit('batchStart', ctx)).toThrow(
      expect.objectContaining({ code: 'KD_HOOK_ASYNC', message: expect.stringContaining("plugin 'sampler/async' failed in hook 'batchStart'") }),
    );
  });

  it('awaits async number-hook handlers one after another, in order', async () => {
    const bus = new LifecycleBus();
    const seen: string[] = [];
    const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
    bus.forPlugin('slow').on('epochEnd', async () => {
      seen.push('slow:start');
      await wait(20);
      seen.push('slow:end');
    });
    bus.forPlugin('fast').on('epochEnd', () => void seen.push('fast'));
    await bus.emitAsync('epochEnd', { phase: 'p', epoch: 1, epochs: 1, train: {}, eval: {}, seconds: 0, learningRate: 0 });
    expect(seen).toEqual(['slow:start', 'slow:end', 'fast']);
  });

  it('rejects emitAsync with the failing async handler named', async () => {
    const bus = new LifecycleBus();
    bus.forPlugin('writer').on('runEnd', async () => {
      throw new Error('disk full');
    });
    await expect(bus.emitAsync('runEnd', { status: 'completed', seconds: 1, eval: {} })).rejects.toThrow(
      "plugin 'writer' failed in hook 'runEnd': disk full",
    );
  });

  it('shows observers number hooks only, after the plugins handled them', async () => {
    const bus = new LifecycleBus();
    bus.forPlugin('metric/x').on('evalEnd', (r) => r.set('student', { x: 1 }));
    const events = firstValueFrom(bus.events$.pipe(toArray()));
    const rep = report();
    const metrics: Record<string, Record<string, number>> = {};
    rep.set = (role, v) => void (metrics[role] = v);
    rep.metrics = metrics;
    bus.emit('loss', ctx);
    await bus.emitAsync('evalEnd', rep);
    bus.complete();
    const got = await events;
    expect(got.map((e) => e.hook)).toEqual(['evalEnd']);
    expect((got[0].payload as EvalReport).metrics).toEqual({ student: { x: 1 } });
  });

  it('refuses subscriptions once sealed', () => {
    const bus = new LifecycleBus();
    bus.seal();
    expect(() => bus.forPlugin('late').on('loss', () => undefined)).toThrow(/after the run started/);
  });
});
