import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { RunSpec } from '@tfkd/kd-core';
import { specHash, type TrainingState } from '../checkpoint';
import { writeCheckpoint } from './checkpoint-files';
import { teacherCheckpointFiles, teacherPartialDir } from './teacher-checkpoints';

let tmp: string;
beforeEach(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-teacher-ckpt-'))));
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

const spec = RunSpec.parse({ seed: 1, data: { name: 'synthetic' }, student: { model: 'mlp' } });
/** A teacher's state after `step` steps (3 per epoch), its one weight tensor holding `step`. */
const state = (step: number): TrainingState => ({
  specHash: specHash(spec),
  spec,
  phase: 'teacher',
  backend: 'cpu',
  next: { epoch: Math.floor(step / 3) + 1, batchIndex: step % 3 },
  step,
  skipped: 0,
  epochProgress: null,
  history: [],
  eval: {},
  ledger: {},
  seconds: step,
  dataset: { name: 'synthetic', train: 24, test: 8 },
  teachers: {},
  roles: [{ name: 'student', weights: [{ name: 'w', dtype: 'float32', shape: [2], values: new Float32Array([step, -step]) }], optimizer: null }],
  players: [],
  plugins: [],
  caches: [],
  resumes: 0,
  createdAt: new Date(0).toISOString(),
});
const weight = (s: TrainingState | null) => (s ? Array.from(s.roles[0].weights[0].values) : null);
const KEY = '0123456789abcdef';
const mine = `${os.hostname()}-${process.pid}`;

describe('teacherCheckpointFiles: teachers’ checkpoints in <cacheDir>/teachers/<key>.partial', () => {
  it('none yet: null; written: read back whole, in a folder of this process; cleared: gone', () => {
    const store = teacherCheckpointFiles(tmp);
    const root = teacherPartialDir(tmp, KEY);
    expect(root).toBe(path.join(tmp, 'teachers', `${KEY}.partial`));
    expect(store.read(KEY)).toBeNull();
    store.write(KEY, state(3));
    store.write(KEY, state(6));
    expect(fs.readdirSync(root)).toEqual([mine]);
    const back = store.read(KEY) as TrainingState;
    expect([back.step, back.next, weight(back)]).toEqual([6, { epoch: 3, batchIndex: 0 }, [6, -6]]);
    store.clear(KEY);
    expect(fs.existsSync(root)).toBe(false);
    expect(store.read(KEY)).toBeNull();
    store.clear(KEY); // nothing to clear: no error
  });

  it('another process’s checkpoints (killed, or training the same teacher): the latest is read; a write removes those not past it', () => {
    const store = teacherCheckpointFiles(tmp);
    const root = teacherPartialDir(tmp, KEY);
    writeCheckpoint(path.join(root, 'other-host-1'), state(4));
    writeCheckpoint(path.join(root, 'other-host-2'), state(9));
    expect(weight(store.read(KEY))).toEqual([9, -9]);
    store.write(KEY, state(6));
    // other-host-1 (step 4) superseded and removed; other-host-2 (step 9) is later: kept, and still the one read.
    expect(fs.readdirSync(root).sort()).toEqual([mine, 'other-host-2'].sort());
    expect(weight(store.read(KEY))).toEqual([9, -9]);
    store.write(KEY, state(12));
    expect(fs.readdirSync(root)).toEqual([mine]);
    expect(weight(store.read(KEY))).toEqual([12, -12]);
  });

  it('a killed write (only its .tmp) is not read; a checkpoint left as .old by a crash between renames is', () => {
    const store = teacherCheckpointFiles(tmp);
    const root = teacherPartialDir(tmp, KEY);
    writeCheckpoint(path.join(root, 'a'), state(3));
    fs.renameSync(path.join(root, 'a'), path.join(root, 'a.old'));
    fs.mkdirSync(path.join(root, 'b.tmp'));
    fs.writeFileSync(path.join(root, 'b.tmp', 'tensors.bin'), Buffer.alloc(8));
    expect(weight(store.read(KEY))).toEqual([3, -3]);
  });

  it('a damaged latest checkpoint: the next readable one is read; none readable: the error, for the engine to warn about', () => {
    const store = teacherCheckpointFiles(tmp);
    const root = teacherPartialDir(tmp, KEY);
    writeCheckpoint(path.join(root, 'a'), state(3));
    writeCheckpoint(path.join(root, 'b'), state(6));
    fs.truncateSync(path.join(root, 'b', 'tensors.bin'), 4);
    expect(weight(store.read(KEY))).toEqual([3, -3]);
    fs.rmSync(path.join(root, 'a'), { recursive: true });
    expect(() => store.read(KEY)).toThrow(/tensors\.bin has 4 bytes, the manifest 8/);
  });
});
