import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parse as parseYaml } from 'yaml';
import { runCommand } from './run';

// Every feature-loss example (issue #5: "each id runs through `kd run` on the CNN/ResNet-style pair of
// the model zoo"), the stacking example (UNIX + attention + Hinton KD) and the KD baseline run through
// `kd run` as written — taps, adapters, declared stages, teachers — on a small budget set with --set:
// 128/64 images of the shipped subset, one epoch of two batches (teachers and stages too). Each run must
// complete and log every loss term of its plugins as a finite number, the feature losses' non-zero.
jest.setTimeout(300_000);

const EXAMPLES = path.resolve(__dirname, '..', '..', '..', 'examples');
const files = fs
  .readdirSync(EXAMPLES)
  .filter((f) => /^feature-.*\.yaml$/.test(f) || f === 'unix-attention.yaml' || f === 'kd-cnn.yaml')
  .sort();

type Doc = {
  teacher?: unknown;
  stages?: { name: string; plugins?: { use?: string; name?: string }[] }[];
  plugins: { use: string; name?: string }[];
};

const readDoc = (file: string) => parseYaml(fs.readFileSync(path.join(EXAMPLES, file), 'utf8')) as Doc;
/** The spec's plugin entries: the main list and those its stages bring in. */
const entriesOf = (doc: Doc) => [...doc.plugins, ...(doc.stages ?? []).flatMap((s) => s.plugins ?? [])];

/** The --set overrides that shrink a spec to a smoke-sized run without changing what it builds. */
function smallRun(doc: Doc): string[] {
  const sets = ['data.limit={train: 128, test: 64}', 'train.epochs=1', 'train.maxBatches=2', 'evalEvery=1'];
  if (doc.teacher) sets.push('teacher.train.epochs=1', 'teacher.train.maxBatches=2');
  (doc.stages ?? []).forEach((_, i) => sets.push(`stages[${i}].epochs=1`));
  return sets;
}

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tfkd-examples-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('example specs run through kd run', () => {
  it('covers every feature loss id', () => {
    const ids = files.flatMap((f) => entriesOf(readDoc(f)).map((p) => p.use));
    for (const id of ['attention', 'fitnets', 'nst', 'factor-transfer', 'fsp', 'activation-boundary', 'rkd', 'sp', 'pkt', 'crd']) {
      expect(ids).toContain(`loss/${id}`);
    }
  });

  it.each(files)('%s', async (file) => {
    const doc = readDoc(file);
    const out = path.join(tmp, path.basename(file, '.yaml'));
    const outcome = await runCommand(path.join(EXAMPLES, file), { out, set: smallRun(doc), cacheDir: path.join(tmp, 'cache'), quiet: true });
    expect(outcome.status).toBe('completed');
    const history = fs.readFileSync(path.join(out, 'history.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { phase: string; train: Record<string, number> });
    // one epoch per phase: declared stages first, then the main phase
    expect(history.map((h) => h.phase)).toEqual([...(doc.stages ?? []).map((s) => s.name), 'distill']);
    const terms = Object.assign({}, ...history.map((h) => h.train)) as Record<string, number>;
    const losses = entriesOf(doc).filter((p) => p.use?.startsWith('loss/'));
    for (const p of losses) {
      const key = p.name ?? (p.use as string);
      const logged = Object.keys(terms).filter((k) => k === key || k.startsWith(`${key}:`));
      expect({ plugin: key, logged: logged.length > 0 }).toEqual({ plugin: key, logged: true });
      for (const k of logged) {
        expect(Number.isFinite(terms[k])).toBe(true);
        if (p.use !== 'loss/cross-entropy' && p.use !== 'loss/hinton-kd') expect({ [k]: terms[k] > 0 }).toEqual({ [k]: true });
      }
    }
    const metrics = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
    expect(metrics.eval.student.accuracy).toBeGreaterThanOrEqual(0);
  });
});

describe('a pair of taps that cannot be matched', () => {
  it.each([
    // [example, --set of the pair, message part, the layers the fix must offer, spec path]
    ['feature-fitnets.yaml', 'plugins[1].with.pairs=[[student.embedding, teacher.block2]]', 'student.embedding [1568] and teacher.block2 [7,7,64]', 'pair student.embedding with teacher.embedding [256] (', 'plugins[1].with.pairs[0]'],
    ['feature-activation-boundary.yaml', 'plugins[1].with.pairs=[[student.block2, teacher.block1]]', 'student.block2 [7,7,32] and teacher.block1 [14,14,32]', 'pair student.block2 with teacher.block2 [7,7,64] or teacher.block3 [3,3,128] (', 'plugins[1].with.pairs[0]'],
    ['feature-fsp.yaml', 'plugins[1].with.teacher=[[teacher.block1, teacher.block2], [teacher.block2, teacher.block3]]', 'student.block1 [28,28,16] gives 16×16, teacher.block1 [28,28,16] × teacher.block2 [14,14,32] gives 16×32', 'pick teacher layers of 16 channels (16: teacher.stem [28,28,16], teacher.block1 [28,28,16])', 'plugins[1].with.teacher[0]'],
  ])('%s: KD_SHAPE_MISMATCH with both shapes, at the pair, naming every documented teacher tap that fits', async (file, pair, shapes, fix, at) => {
    const doc = readDoc(file);
    const out = path.join(tmp, `mismatch-${file}`);
    let error: { code?: string; path?: string; message: string; fix?: string } | undefined;
    try {
      await runCommand(path.join(EXAMPLES, file), { out, set: [...smallRun(doc), pair], cacheDir: path.join(tmp, 'cache'), quiet: true });
    } catch (e) {
      error = e as typeof error;
    }
    expect(error?.code).toBe('KD_SHAPE_MISMATCH');
    expect(error?.path).toBe(at);
    expect(error?.message).toContain(shapes);
    expect(error?.fix).toContain(fix);
    expect(fs.existsSync(out)).toBe(false); // no half-written run folder
  });
});
