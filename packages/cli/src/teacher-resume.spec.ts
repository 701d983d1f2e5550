import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { peekCheckpoint } from '@tfkd/engine/node';
import { captureOutput } from './__fixtures__/run-main';
import { runCommand } from './run';

// A teacher trained from labels checkpoints every epoch into <cache>/teachers/<key>.partial: a `kd run`
// killed while training it (SIGKILL, through `kd` in a child process from its sources, as
// resume.spec.ts does) resumes it the next time, to the uninterrupted teacher; the folder goes once
// the teacher is cached.
jest.setTimeout(120_000);

const BIN = path.join(__dirname, '__fixtures__', 'from-source.js');
const plainEnv: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
delete plainEnv.FORCE_COLOR;

// The teacher: 1024 images in batches of 16, 64 steps per epoch, 4 epochs (a few seconds on cpu), so a
// kill after its first checkpoint lands while it trains. The student is quick: one epoch.
const SPEC = `
seed: 3
backend: cpu
data: { name: synthetic, train: 1024, test: 128, numClasses: 4, shape: [8, 8, 1], noise: 0.6 }
teacher: { model: mlp, options: { hidden: [256, 256] }, seed: 1, train: { epochs: 4, batchSize: 16, optimizer: { name: adam, lr: 0.002, weightDecay: 0 } } }
student: { model: mlp, options: { hidden: [16] } }
train: { epochs: 1, batchSize: 64, optimizer: { name: sgd, lr: 0.05, momentum: 0.9, weightDecay: 0 } }
plugins:
  - use: loss/cross-entropy
    weight: 0.5
  - use: loss/hinton-kd
    with: { temperature: 4 }
    weight: 0.5
eval: [accuracy]
`;

let tmp: string;
const at = (...p: string[]) => path.join(tmp, ...p);

/** The teachers' entries of a cache folder: cached models and `.partial` checkpoint folders. */
const teachers = (cache: string) => (fs.existsSync(at(cache, 'teachers')) ? fs.readdirSync(at(cache, 'teachers')).sort() : []);
/** The writers' checkpoint folders in a cache's `.partial` folders (`writeCheckpoint`'s `.tmp`/`.old` companions left out). */
const writers = (cache: string) =>
  teachers(cache)
    .filter((n) => n.endsWith('.partial'))
    .flatMap((n) => [...new Set(fs.readdirSync(at(cache, 'teachers', n)).map((w) => w.replace(/\.(tmp|old)$/, '')))].map((w) => at(cache, 'teachers', n, w)));
/** The readable checkpoints in a cache's `.partial` folders (one being renamed into place while looked at: not yet). */
const partials = (cache: string) =>
  writers(cache).flatMap((d) => {
    try {
      return peekCheckpoint(d) ?? [];
    } catch {
      return [];
    }
  });

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-teacher-resume-'));
  fs.writeFileSync(at('spec.yaml'), SPEC);
  // The uninterrupted reference.
  const r = spawnSync(process.execPath, [BIN, 'run', 'spec.yaml', '--out', 'whole', '--cache-dir', 'whole-cache', '--quiet'], { cwd: tmp, encoding: 'utf8', env: plainEnv });
  if (r.status !== 0) throw new Error(`reference run failed:\n${r.stderr}`);
}, 120_000);
afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('kd run killed while training its teacher', () => {
  it('SIGKILL after the teacher checkpointed: the next run resumes it to the uninterrupted teacher and student, and removes the .partial folder', async () => {
    const child = spawn(process.execPath, [BIN, 'run', 'spec.yaml', '--out', 'killed', '--cache-dir', 'cache', '--quiet'], { cwd: tmp, env: plainEnv });
    let stderr = '';
    child.stderr?.on('data', (d) => (stderr += d));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_c, signal) => resolve(signal)));
    let done = false;
    void exited.then(() => (done = true));
    while (partials('cache').length === 0) {
      if (done) throw new Error(`the run ended before a teacher checkpoint appeared:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    // One `.partial` folder, one writer's checkpoint in it (this child's), no cached teacher.
    const [key] = teachers('whole-cache');
    expect(teachers('cache')).toEqual([`${key}.partial`]);
    expect(writers('cache')).toEqual([at('cache', 'teachers', `${key}.partial`, `${os.hostname()}-${child.pid}`)]);
    const [saved] = partials('cache');
    const epoch = saved.next.epoch;
    expect(saved.next).toEqual({ epoch, batchIndex: 0 });
    expect(epoch).toBeGreaterThanOrEqual(2);
    expect(epoch).toBeLessThanOrEqual(4);
    expect([saved.step, saved.epochsDone]).toEqual([64 * (epoch - 1), epoch - 1]);

    const again = spawnSync(process.execPath, [BIN, 'run', 'spec.yaml', '--out', 'killed', '--cache-dir', 'cache'], { cwd: tmp, encoding: 'utf8', env: plainEnv });
    expect(again.status).toBe(0);
    expect(again.stderr).toContain(`teacher 'teacher': resuming at epoch ${epoch} from its checkpoint`);
    expect(again.stderr).not.toContain('warning');
    // Cached, bit for bit the uninterrupted teacher; its checkpoints gone.
    expect(teachers('cache')).toEqual([key]);
    expect(fs.readFileSync(at('cache', 'teachers', key, 'weights.bin')).equals(fs.readFileSync(at('whole-cache', 'teachers', key, 'weights.bin')))).toBe(true);
    // So the student distilled from it is too.
    expect(fs.readFileSync(at('killed', 'student', 'weights.bin')).equals(fs.readFileSync(at('whole', 'student', 'weights.bin')))).toBe(true);
    const metrics = (d: string) => JSON.parse(fs.readFileSync(at(d, 'metrics.json'), 'utf8')).eval;
    expect(metrics('killed')).toEqual(metrics('whole'));
    // The teacher learned the task (4 classes: chance is 0.25).
    expect(metrics('whole').teacher.accuracy).toBeGreaterThan(0.5);
  });

  it('in process: the .partial folder holds the last epoch-end checkpoint while the teacher trains, and is removed once it is cached', async () => {
    const seen: { epoch: number; partial: { next: unknown; step: number }[] }[] = [];
    const { value: outcome } = await captureOutput(() =>
      runCommand(at('spec.yaml'), {
        out: at('in-process'),
        cacheDir: at('cache-2'),
        quiet: true,
        signals: false,
        observe: (bus, phase) => {
          if (phase !== 'teacher') return;
          bus.events$.subscribe((e) => {
            if (e.hook !== 'epochEnd') return;
            const partial = partials('cache-2').map((c) => ({ next: c.next, step: c.step }));
            seen.push({ epoch: e.payload.epoch, partial });
          });
        },
      }),
    );
    expect(outcome.status).toBe('completed');
    // At each epoch end (before that epoch's checkpoint is written): the previous epoch's, one writer's only.
    expect(seen).toEqual([1, 2, 3, 4].map((epoch) => ({ epoch, partial: epoch === 1 ? [] : [{ next: { epoch, batchIndex: 0 }, step: 64 * (epoch - 1) }] })));
    expect(teachers('cache-2')).toEqual(teachers('whole-cache'));
    expect(fs.readFileSync(at('cache-2', 'teachers', teachers('whole-cache')[0], 'weights.bin')).equals(fs.readFileSync(at('whole-cache', 'teachers', teachers('whole-cache')[0], 'weights.bin')))).toBe(true);
  });
});
