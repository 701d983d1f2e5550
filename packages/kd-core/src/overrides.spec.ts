import { KdError } from './errors';
import { applyOverrides, parseSpec } from './spec';

const raw = () => ({ data: { name: 'synthetic' }, student: { model: 'mlp' }, plugins: [{ use: 'loss/cross-entropy' }] });

function kd(fn: () => unknown): KdError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(KdError);
    return e as KdError;
  }
  throw new Error('expected a KdError');
}

describe('applyOverrides (--set)', () => {
  it('sets nested fields, creates missing objects and lists, appends at index = length', () => {
    const o = applyOverrides(raw(), ['train.epochs=3', 'plugins[0].with.temperature=2', 'plugins[1].use=loss/hinton-kd', 'eval[0]=ece']);
    expect(o).toEqual({
      data: { name: 'synthetic' },
      student: { model: 'mlp' },
      plugins: [{ use: 'loss/cross-entropy', with: { temperature: 2 } }, { use: 'loss/hinton-kd' }],
      train: { epochs: 3 },
      eval: ['ece'],
    });
  });

  it('a value that is not YAML is KD_SPEC_PARSE at the override, not a raw YAMLParseError/ReferenceError', () => {
    for (const s of ['train.epochs=[', 'train.epochs={a: *b}', 'data="x']) {
      const e = kd(() => applyOverrides(raw(), [s]));
      expect(e.code).toBe('KD_SPEC_PARSE');
      expect(e.path).toBe(s.slice(0, s.indexOf('=')));
      expect(e.message).toContain(`--set '${s}'`);
      expect(e.fix).toMatch(/quote/);
    }
  });

  it('__proto__, constructor and prototype are refused: Object.prototype is never written', () => {
    for (const s of ['__proto__.polluted=1', 'train.__proto__.x=1', 'constructor.prototype.polluted=1', 'plugins[0].constructor=1']) {
      const e = kd(() => applyOverrides(raw(), [s]));
      expect(e.code).toBe('KD_SPEC_INVALID');
      expect(e.path).toBe(s.slice(0, s.indexOf('=')));
      expect(Object.keys(Object.prototype)).toEqual([]);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    }
  });

  it('an index past the end of a list is refused at once (plugins[100000000] made a sparse list that ran zod out of memory)', () => {
    const t0 = Date.now();
    const e = kd(() => parseSpec('data: { name: synthetic }\nstudent: { model: mlp }\nplugins: [{ use: loss/cross-entropy }]', 'spec', ['plugins[100000000].use=x']));
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(e.code).toBe('KD_SPEC_INVALID');
    expect(e.path).toBe('plugins[100000000].use');
    expect(e.message).toContain('past the end of a list of 1');
    expect(kd(() => applyOverrides(raw(), ['eval[1]=ece'])).message).toContain('past the end of a list of 0');
  });

  it('a name used on a list is refused (plugins.use=x used to be silently ignored)', () => {
    const e = kd(() => applyOverrides(raw(), ['plugins.use=loss/hinton-kd']));
    expect(e.code).toBe('KD_SPEC_INVALID');
    expect(e.fix).toContain('plugins[0].use');
  });

  it('a path with no field is refused', () => {
    for (const s of ['=1', '.=1', '..=1']) expect(kd(() => applyOverrides(raw(), [s])).code).toBe('KD_SPEC_INVALID');
  });
});

describe('role train overrides', () => {
  const run = (role: Record<string, unknown>) =>
    parseSpec(
      'data: { name: synthetic }\nstudent: { model: mlp }\ntrain: { epochs: 5, batchSize: 8, maxBatches: 2, optimizer: { name: adam, lr: 0.001, weightDecay: 0 }, schedule: { name: cosine } }',
      'spec',
      [`teacher=${JSON.stringify({ model: 'mlp', ...role })}`],
    );

  it('keep only the fields given (train: { epochs: 1 } no longer resets batchSize to 64 and the optimizer to SGD)', () => {
    const s = run({ train: { epochs: 1 } });
    expect(s.teacher?.train).toEqual({ epochs: 1 });
    // what setup and the engine do with it: the run's train, overridden field by field
    const merged = { ...s.train, ...s.teacher?.train };
    expect(merged).toEqual({ epochs: 1, batchSize: 8, maxBatches: 2, optimizer: s.train.optimizer, schedule: s.train.schedule });
    expect(merged.optimizer).toMatchObject({ name: 'adam', lr: 0.001 });
  });

  it('a given optimizer is complete in itself (its absent fields take their defaults)', () => {
    expect(run({ train: { optimizer: { lr: 0.1 } } }).teacher?.train).toEqual({ optimizer: { name: 'sgd', lr: 0.1, momentum: 0.9, weightDecay: 5e-4, nesterov: false } });
  });

  it('still rejects unknown or invalid fields at their path', () => {
    expect(() => run({ train: { epoch: 1 } })).toThrow(expect.objectContaining({ code: 'KD_SPEC_INVALID', path: 'teacher.train' }));
    expect(() => run({ train: { batchSize: 0 } })).toThrow(expect.objectContaining({ code: 'KD_SPEC_INVALID', path: 'teacher.train.batchSize' }));
  });
});

describe('did-you-mean for option names', () => {
  it('a misspelt plugin option names the option it meant, and the known ones', () => {
    const { validate } = jest.requireActual('./spec');
    const { z } = jest.requireActual('zod');
    const schema = z.object({ temperature: z.number().default(4), reduction: z.enum(['batchmean', 'mean']).default('batchmean') }).strict();
    const e = kd(() => validate(schema, { temprature: 2 }, { code: 'KD_PLUGIN_OPTIONS', prefix: 'plugins[1].with' }));
    expect(e.code).toBe('KD_PLUGIN_OPTIONS');
    expect(e.path).toBe('plugins[1].with');
    expect(e.fix).toBe("did you mean 'temperature'? remove or rename 'temprature' (known: temperature, reduction); see the spec reference in docs/spec.md or `kd list`");
  });

  it('a misspelt spec key deep in the spec (train.optimizer.momentm) is suggested from its own object', () => {
    const e = kd(() => parseSpec('data: { name: synthetic }\nstudent: { model: mlp }\ntrain: { optimizer: { name: sgd, momentm: 0.5 } }\n'));
    expect(e.path).toBe('train.optimizer');
    expect(e.fix).toMatch(/^did you mean 'momentum'\? remove or rename 'momentm' \(known: name, lr, momentum, weightDecay, nesterov, delta\)/);
  });
});
