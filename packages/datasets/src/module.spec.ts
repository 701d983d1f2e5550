import { KdError } from '@tfkd/kd-core';
import * as os from 'os';
import { DATASETS } from './module';

const def = (id: string) => {
  const d = DATASETS.find((x) => x.id === id);
  if (!d) throw new Error(id);
  return d;
};

/** The KdError a load rejects with. */
async function failure(p: Promise<unknown>): Promise<KdError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(KdError);
    return e as KdError;
  }
  throw new Error('expected the load to fail');
}

describe('dataset definitions report option errors at the spec path', () => {
  it('synthetic: a split too large to allocate is data.train (the loader alone says train)', async () => {
    const e = await failure(def('synthetic').load({ train: 2 ** 40, test: 10, numClasses: 2, shape: [2, 2, 1], noise: 0.1 }, { seed: 1, specPath: 'data' }));
    expect(e.code).toBe('KD_SPEC_INVALID');
    expect(e.path).toBe('data.train');
    expect(e.fix).toBeTruthy();
  });

  it('synthetic under another spec path (a role override) is prefixed with that path', async () => {
    const e = await failure(def('synthetic').load({ train: 10, test: 10, numClasses: 2 ** 40, shape: [2, 2, 1], noise: 0.1 }, { seed: 1, specPath: 'students[1].data' }));
    expect(e.path).toBe('students[1].data.numClasses');
  });

  it('fashion-mnist: path and subset together is data.subset, and the message names the folder', async () => {
    const e = await failure(def('fashion-mnist').load({ path: 'somewhere', subset: true }, { seed: 1, specPath: 'data', specDir: os.tmpdir() }));
    expect(e.code).toBe('KD_SPEC_INVALID');
    expect(e.path).toBe('data.subset');
    expect(e.message).toContain('somewhere');
  });

  it('a data-file error keeps the file as its path (not prefixed)', async () => {
    const e = await failure(def('idx').load({ train: { images: 'no-such.idx', labels: 'no-such-labels.idx' }, test: { images: 'a', labels: 'b' }, dir: '.' }, { seed: 1, specPath: 'data', specDir: os.tmpdir() }));
    expect(e.code).not.toBe('KD_SPEC_INVALID');
    expect(e.path?.startsWith('data.')).toBe(false);
  });
});
