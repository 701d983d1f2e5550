import * as fs from 'fs';
import * as path from 'path';
import type { TrainingState } from '@tfkd/engine';
import { peekCheckpoint, teacherCheckpointFiles, teacherPartialDir, writeCheckpoint } from '@tfkd/engine/node';
import { KdError, type RunSpec } from '@tfkd/kd-core';
import { cellSite, dropCheckpoint, fetchCheckpoint, localCheckpoint, remoteCheckpoint, shipCheckpoints, teacherSite, uploadCheckpoint } from './checkpoints';
import { jobError } from './errors';
import { KEYS, getFolder, putFolder, storeRun } from './queue';
import { redisServerFixture } from './__fixtures__/redis-server';
import { connection } from './redis';

// What travels through Redis (teachers, results, run checkpoints) and the coded errors of moving it,
// on a real redis-server (the Debian package; started here in a temporary folder).
jest.setTimeout(60_000);

const fixture = redisServerFixture('kd-transfer-');
const at = fixture.at;
let redis: ReturnType<typeof connection>;
beforeAll(() => void (redis = fixture.redis()));

/** A checkpoint as the engine writes it: one student weight, its step and position. */
function checkpoint(dir: string, step: number, epoch: number, values = 4): void {
  const state = {
    specHash: 'abc',
    spec: { seed: 1 } as unknown as RunSpec,
    phase: 'distill',
    backend: 'cpu',
    next: { epoch, batchIndex: 0 },
    step,
    skipped: 0,
    epochProgress: null,
    history: Array.from({ length: epoch - 1 }, (_, i) => ({ epoch: i + 1 })),
    eval: {},
    ledger: null,
    seconds: 1,
    dataset: { name: 'd', train: 8, test: 8 },
    teachers: {},
    roles: [{ name: 'student', weights: [{ name: 'w', dtype: 'float32', shape: [values], values: new Float32Array(values).fill(step) }], optimizer: null }],
    players: [],
    plugins: [],
    caches: [],
    resumes: 0,
    createdAt: new Date().toISOString(),
  } as unknown as TrainingState;
  writeCheckpoint(dir, state);
}

const codeOf = async (p: Promise<unknown>): Promise<KdError> => {
  try {
    await p;
  } catch (e) {
    return e as KdError;
  }
  throw new Error('expected a coded error');
};

describe('folders in Redis hashes', () => {
  it('round-trips a folder; a stored result is kept once', async () => {
    fs.mkdirSync(at('src', 'student'), { recursive: true });
    fs.writeFileSync(at('src', 'metrics.json'), '{"status":"completed"}');
    fs.writeFileSync(at('src', 'student', 'weights.bin'), Buffer.from([0, 1, 2, 255]));
    fs.mkdirSync(at('src', 'checkpoint'));
    fs.writeFileSync(at('src', 'checkpoint', 'checkpoint.json'), '{}');
    expect(await storeRun(redis, 'c-1', at('src'))).toBe(true);
    expect(await storeRun(redis, 'c-1', at('src'))).toBe(false);
    expect(await getFolder(redis, KEYS.run('c-1'), at('copy'))).toBe(true);
    expect(fs.readFileSync(at('copy', 'student', 'weights.bin'))).toEqual(Buffer.from([0, 1, 2, 255]));
    // The result never carries the run's checkpoint.
    expect(fs.existsSync(at('copy', 'checkpoint'))).toBe(false);
    expect(await getFolder(redis, KEYS.run('c-none'), at('none'))).toBe(false);
  });

  it('a folder that cannot be written is KD_OUTPUT_WRITE naming the folder flag, not a raw errno', async () => {
    await putFolder(redis, KEYS.teacher('t-1'), at('src'));
    fs.writeFileSync(at('a-file'), 'not a folder');
    const e = await codeOf(getFolder(redis, KEYS.teacher('t-1'), at('a-file', 'teachers', 't-1'), { kind: 'teacher', flag: '--cache-dir' }));
    expect(e).toBeInstanceOf(KdError);
    expect(e.code).toBe('KD_OUTPUT_WRITE');
    expect(e.path).toBe(at('a-file', 'teachers', 't-1'));
    expect(e.message).toMatch(/^could not write tfkd:teacher:t-1 into .*: ENOTDIR/);
    expect(e.fix).toMatch(/a file stands where a folder is expected .*give --cache-dir another folder/);
    // The failed job records it whole: code, place, message and fix.
    expect((jobError(e) as Error).message).toBe(e.format());
    expect((jobError(e) as Error).message).toMatch(/^KD_OUTPUT_WRITE at .*\n {2}fix: /);
  });

  it('a stored file name outside its folder is refused, by what the folder is, and nothing is written', async () => {
    await redis.hset(KEYS.teacher('t-evil'), '../../escaped.txt', 'x');
    const e = await codeOf(getFolder(redis, KEYS.teacher('t-evil'), at('cache', 'teachers', 't-evil'), { kind: 'teacher', flag: '--cache-dir' }));
    expect(e.code).toBe('KD_MODEL_LOAD');
    expect(e.fix).toContain(`redis-cli DEL ${KEYS.teacher('t-evil')}`);
    expect(fs.existsSync(at('escaped.txt'))).toBe(false);
    await redis.hset(KEYS.checkpoint('c-evil'), '/etc/x', 'x');
    expect((await codeOf(getFolder(redis, KEYS.checkpoint('c-evil'), at('ck'), { kind: 'checkpoint' }))).code).toBe('KD_CHECKPOINT_INVALID');
  });

  it('Redis refusing a command (a key of another kind, out of memory) is KD_REDIS_UNAVAILABLE with the fix for that reply', async () => {
    await redis.set(KEYS.run('c-string'), 'something else');
    const wrong = await codeOf(getFolder(redis, KEYS.run('c-string'), at('w')));
    expect(wrong.code).toBe('KD_REDIS_UNAVAILABLE');
    expect(wrong.message).toMatch(/^could not read tfkd:run:c-string in Redis: WRONGTYPE/);
    expect(wrong.fix).toContain('redis-cli DEL tfkd:run:c-string');

    const used = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);
    fs.mkdirSync(at('big'));
    fs.writeFileSync(at('big', 'weights.bin'), Buffer.alloc(4 << 20, 7));
    await redis.config('SET', 'maxmemory-policy', 'noeviction');
    await redis.config('SET', 'maxmemory', String(used + (1 << 20)));
    try {
      const oom = await codeOf(storeRun(redis, 'c-big', at('big')));
      expect(oom.code).toBe('KD_REDIS_UNAVAILABLE');
      expect(oom.message).toMatch(/^could not store tfkd:run:c-big in Redis: OOM/);
      expect(oom.fix).toMatch(/maxmemory/);
    } finally {
      await redis.config('SET', 'maxmemory', '0');
    }
    expect(await redis.exists(KEYS.run('c-big'))).toBe(0);
  });
});

describe('run checkpoints travel through Redis', () => {
  it('uploads only a later checkpoint, never past the cell\'s result, and never one over the bound', async () => {
    const run = at('machine-a', 'runs', 'c-ck');
    const site = cellSite('c-ck', run);
    checkpoint(path.join(`${run}.incomplete`, 'checkpoint'), 10, 2);
    const c = localCheckpoint(site);
    expect(c?.step).toBe(10);
    const o = { maxBytes: 1 << 20, worker: 'a:1' };
    expect(await uploadCheckpoint(redis, site, c as NonNullable<typeof c>, o)).toBe('stored');
    expect(await remoteCheckpoint(redis, 'c-ck')).toMatchObject({ step: 10, epoch: 2, batchIndex: 0, epochsDone: 1, worker: 'a:1' });
    // Not replaced by the same or an earlier state (a worker taken for stalled that still runs).
    expect(await uploadCheckpoint(redis, site, c as NonNullable<typeof c>, o)).toBe('stale');
    expect(await uploadCheckpoint(redis, site, c as NonNullable<typeof c>, { ...o, maxBytes: 100 })).toBe('too-big');
    // No expiry is left on the stored copy (the upload's temporary key has one).
    expect(await redis.pttl(KEYS.checkpoint('c-ck'))).toBe(-1);

    // Another machine, nothing on its disk: the checkpoint is fetched where `kd run --resume` finds it.
    const other = at('machine-b', 'runs', 'c-ck');
    const got = await fetchCheckpoint(redis, cellSite('c-ck', other), localCheckpoint(cellSite('c-ck', other))?.step ?? -1, () => undefined);
    expect(got?.summary.step).toBe(10);
    expect(got?.remote.worker).toBe('a:1');
    expect(peekCheckpoint(path.join(`${other}.incomplete`, 'checkpoint'))?.next).toEqual({ epoch: 2, batchIndex: 0 });
    expect(fs.readFileSync(path.join(`${other}.incomplete`, 'checkpoint', 'tensors.bin'))).toEqual(fs.readFileSync(path.join(`${run}.incomplete`, 'checkpoint', 'tensors.bin')));
    // A machine whose own checkpoint is as far along keeps it.
    expect(await fetchCheckpoint(redis, site, 10, () => undefined)).toBeNull();

    // Once the cell has a result, no checkpoint is stored any more; completion deletes it.
    checkpoint(path.join(`${run}.incomplete`, 'checkpoint'), 20, 3);
    await redis.hset(KEYS.run('c-ck'), 'metrics.json', '{}');
    expect(await uploadCheckpoint(redis, site, localCheckpoint(site) as NonNullable<ReturnType<typeof localCheckpoint>>, o)).toBe('stale');
    await dropCheckpoint(redis, 'c-ck');
    expect(await redis.exists(KEYS.checkpoint('c-ck'), KEYS.checkpointMeta('c-ck'))).toBe(0);
  });

  it('the shipper uploads each new checkpoint of a running cell, and the last one when it stops', async () => {
    const run = at('machine-c', 'runs', 'c-ship');
    const lines: string[] = [];
    const shipper = shipCheckpoints(redis, cellSite('c-ship', run), { maxBytes: 1 << 20, worker: 'c:1', pollMs: 20, log: (l) => lines.push(l) });
    checkpoint(path.join(`${run}.incomplete`, 'checkpoint'), 5, 2);
    const until = async (ok: () => Promise<boolean>) => {
      for (let i = 0; i < 200 && !(await ok()); i++) await new Promise((r) => setTimeout(r, 20));
    };
    await until(async () => (await remoteCheckpoint(redis, 'c-ship'))?.step === 5);
    expect((await remoteCheckpoint(redis, 'c-ship'))?.step).toBe(5);
    // An interrupted run: its stop checkpoint is in the run folder; stop() ships it.
    checkpoint(path.join(run, 'checkpoint'), 7, 2);
    await shipper.stop();
    expect((await remoteCheckpoint(redis, 'c-ship'))?.step).toBe(7);
    expect(lines.join('\n')).toMatch(/c-ship: checkpoint at epoch 2, batch 0 \(step 7\) shipped to Redis/);
  });

  it('a damaged checkpoint in Redis is dropped with a warning and the cell starts over', async () => {
    const run = at('machine-d', 'runs', 'c-bad');
    checkpoint(path.join(`${run}.incomplete`, 'checkpoint'), 3, 2);
    await uploadCheckpoint(redis, cellSite('c-bad', run), localCheckpoint(cellSite('c-bad', run)) as NonNullable<ReturnType<typeof localCheckpoint>>, { maxBytes: 1 << 20, worker: 'd:1' });
    await redis.hset(KEYS.checkpoint('c-bad'), 'tensors.bin', Buffer.alloc(3)); // truncated
    const warnings: string[] = [];
    const other = at('machine-e', 'runs', 'c-bad');
    expect(await fetchCheckpoint(redis, cellSite('c-bad', other), -1, (l) => warnings.push(l))).toBeNull();
    expect(warnings.join('\n')).toMatch(/not usable, so it is deleted and the cell starts over: KD_CHECKPOINT_INVALID/);
    expect(fs.existsSync(`${other}.incomplete`)).toBe(false);
    expect(await redis.exists(KEYS.checkpoint('c-bad'), KEYS.checkpointMeta('c-bad'))).toBe(0);
  });
  it('a teacher\'s checkpoints: shipped from its cache\'s .partial folders, fetched into another cache where the engine reads them, never past the stored teacher', async () => {
    const key = '0123456789abcdef';
    const cacheA = at('machine-f', '.kd-cache');
    const root = teacherPartialDir(cacheA, key);
    const site = teacherSite(key, cacheA);
    expect([site.id, site.result]).toEqual([`teacher-${key}`, KEYS.teacher(key)]);
    expect(localCheckpoint(site)).toBeNull(); // no .partial folder yet
    const lines: string[] = [];
    const shipper = shipCheckpoints(redis, site, { maxBytes: 1 << 20, worker: 'f:1', pollMs: 20, log: (l) => lines.push(l) });
    // Two processes' folders (an earlier, killed attempt's at step 4; this one's at step 8): the later one travels.
    checkpoint(path.join(root, 'host-1'), 4, 2);
    checkpoint(path.join(root, 'host-2'), 8, 3);
    await shipper.stop();
    expect(await remoteCheckpoint(redis, site.id)).toMatchObject({ step: 8, epoch: 3, worker: 'f:1' });
    expect(lines).toEqual([`teacher ${key}: checkpoint at epoch 3, batch 0 (step 8) shipped to Redis`]);

    // Another machine's cache, with an older checkpoint of its own: Redis's goes in beside it, and is the one the engine resumes.
    const cacheB = at('machine-g', '.kd-cache');
    const siteB = teacherSite(key, cacheB);
    checkpoint(path.join(teacherPartialDir(cacheB, key), 'host-9'), 2, 2);
    const got = await fetchCheckpoint(redis, siteB, localCheckpoint(siteB)?.step ?? -1, () => undefined);
    expect([got?.summary.step, got?.summary.dir]).toEqual([8, path.join(teacherPartialDir(cacheB, key), 'redis')]);
    const read = teacherCheckpointFiles(cacheB).read(key);
    expect([read?.step, Array.from(read?.roles[0].weights[0].values ?? [])]).toEqual([8, [8, 8, 8, 8]]);
    expect(fs.readFileSync(path.join(teacherPartialDir(cacheB, key), 'redis', 'tensors.bin'))).toEqual(fs.readFileSync(path.join(root, 'host-2', 'tensors.bin')));
    // A cache as far along keeps its own.
    expect(await fetchCheckpoint(redis, site, 8, () => undefined)).toBeNull();

    // Once the teacher is stored, no checkpoint of it is stored any more.
    checkpoint(path.join(root, 'host-2'), 12, 4);
    await redis.hset(KEYS.teacher(key), 'model.json', '{}');
    expect(await uploadCheckpoint(redis, site, localCheckpoint(site) as NonNullable<ReturnType<typeof localCheckpoint>>, { maxBytes: 1 << 20, worker: 'f:1' })).toBe('stale');
    expect((await remoteCheckpoint(redis, site.id))?.step).toBe(8);
    await dropCheckpoint(redis, site.id);
  });
});
