import { ContainerModule } from 'inversify';
import { z } from 'zod';
import { defineLoss, PLUGIN_DEFINITION, type KdError } from '@tfkd/kd-core';
import { testCrossEntropy, testModule } from '@tfkd/kd-core/testing';
import * as tf from '@tensorflow/tfjs-core';
import { Registry } from './registry';

const twin = defineLoss({
  id: 'test/ce',
  describe: 'another package’s plugin under an id that is taken',
  options: z.object({}).strict(),
  compute: () => tf.scalar(0),
});
const moduleOf = (...defs: unknown[]) => new ContainerModule((o) => defs.forEach((d) => o.bind(PLUGIN_DEFINITION).toConstantValue(d)));

describe('Registry', () => {
  it('two packages binding one plugin id: KD_PLUGIN_DUPLICATE naming both packages', () => {
    let e: KdError | null = null;
    try {
      new Registry([{ name: '@acme/a', module: testModule() }, { name: '@acme/b', module: moduleOf(twin) }]);
    } catch (x) {
      e = x as KdError;
    }
    expect(e?.code).toBe('KD_PLUGIN_DUPLICATE');
    expect(e?.message).toBe("plugin id 'test/ce' is bound by two packages: @acme/a and @acme/b");
  });

  it('a spec package that rebinds a built-in id fails at its `packages[i]` entry', async () => {
    const registry = new Registry([{ name: 'built-in', module: testModule() }], { loadPackage: async () => ({ module: { kdModule: moduleOf(twin) } }) });
    await expect(registry.loadPackages(['@acme/twin'], '.')).rejects.toMatchObject({ code: 'KD_PLUGIN_DUPLICATE', path: 'packages[0]', message: expect.stringContaining('built-in and @acme/twin') });
  });

  it('the same definition bound again (one package loaded twice) is not a duplicate', () => {
    const r = new Registry([moduleOf(testCrossEntropy), moduleOf(testCrossEntropy)]);
    expect(r.plugin('test/ce', 'plugins[0].use')).toBe(testCrossEntropy);
  });

  it('without a package loader, `packages:` is a coded error that says how to bind modules in code', async () => {
    await expect(new Registry([testModule()]).loadPackages(['@acme/x'], '.')).rejects.toMatchObject({ code: 'KD_PLUGIN_PACKAGE', path: 'packages[0]' });
  });
});
