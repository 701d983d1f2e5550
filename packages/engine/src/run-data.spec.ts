import '@tensorflow/tfjs-backend-cpu';
import { isKdError, RunSpec } from '@tfkd/kd-core';
import { testModule } from '@tfkd/kd-core/testing';
import { Registry } from './registry';
import { loadRunData } from './run-data';

const registry = new Registry([testModule()]);
const spec = (data: Record<string, unknown>, seed = 1) =>
  RunSpec.parse({ seed, data: { name: 'blobs', train: 200, test: 40, ...data }, student: { model: 'test-dense' } });
const rows = (images: Float32Array, per: number) =>
  Array.from({ length: images.length / per }, (_, i) => images.subarray(i * per, (i + 1) * per).join(','));

describe('loadRunData: generic data options', () => {
  it('data.validation: the test split is a held-out part of train, disjoint, the same for every run seed', async () => {
    const plain = await loadRunData(spec({}), registry, '.');
    const a = await loadRunData(spec({ validation: { fraction: 0.25, seed: 3 } }, 1), registry, '.');
    const b = await loadRunData(spec({ validation: { fraction: 0.25, seed: 3 } }, 9), registry, '.');
    const per = plain.train.images.length / 200;
    expect(a.test.labels.length).toBe(50);
    expect(a.train.labels.length).toBe(150);
    expect(a.test.name).toMatch(/held-out.*in place of the test split/);
    // Disjoint, and together exactly the original training set.
    const all = new Set(rows(plain.train.images, per));
    const held = rows(a.test.images, per);
    const kept = rows(a.train.images, per);
    expect(new Set([...held, ...kept]).size).toBe(200);
    for (const r of [...held, ...kept]) expect(all.has(r)).toBe(true);
    // The run's seed does not move the split; the validation seed does.
    expect(Array.from(b.test.labels)).toEqual(Array.from(a.test.labels));
    expect(rows(b.test.images, per)).toEqual(held);
    const c = await loadRunData(spec({ validation: { fraction: 0.25, seed: 4 } }), registry, '.');
    expect(rows(c.test.images, per)).not.toEqual(held);
  });

  it('data.classFractions keeps the first round(n_c · f_c) samples of each class, in order; test untouched', async () => {
    const plain = await loadRunData(spec({}), registry, '.');
    const k = plain.train.numClasses;
    const fractions = Array.from({ length: k }, (_, c) => (c === 0 ? 0.1 : c === 1 ? 0.5 : 1));
    const got = await loadRunData(spec({ classFractions: fractions }), registry, '.');
    const count = (ys: Int32Array, c: number) => ys.filter((y) => y === c).length;
    for (let c = 0; c < k; c++) expect(count(got.train.labels, c)).toBe(Math.round(count(plain.train.labels, c) * fractions[c]));
    // The kept samples are the first ones of their class, in the original order.
    const expected: number[] = [];
    const seen = new Array(k).fill(0);
    plain.train.labels.forEach((y, i) => {
      if (seen[y]++ < Math.round(count(plain.train.labels, y) * fractions[y])) expected.push(i);
    });
    const per = plain.train.images.length / 200;
    expect(rows(got.train.images, per)).toEqual(expected.map((i) => rows(plain.train.images, per)[i]));
    expect(Array.from(got.test.labels)).toEqual(Array.from(plain.test.labels));
  });

  it('a classFractions list of the wrong length is KD_SPEC_INVALID at data.classFractions', async () => {
    const err = await loadRunData(spec({ classFractions: [1, 0.5] }), registry, '.').catch((e) => e);
    expect(isKdError(err) && err.code).toBe('KD_SPEC_INVALID');
    expect(err.path).toBe('data.classFractions');
  });

  it('validation.fraction outside (0, 1) fails the spec schema', () => {
    expect(() => spec({ validation: { fraction: 1 } })).toThrow();
  });
});
