import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { isKdError, type KdError } from '@tfkd/kd-core';
import { runCommand } from './run';

// The dense tasks through `kd run` (issue 24): every examples/dense spec plans on a small data set
// (teachers to train included), the task check fails before anything runs, and the two students from
// labels train one short epoch into a run folder whose metrics.json and history carry mAP / mIoU.
jest.setTimeout(300_000);

const DENSE = path.resolve(__dirname, '..', '..', '..', 'examples', 'dense');
const files = fs.readdirSync(DENSE).filter((f) => f.endsWith('.yaml')).sort();
const small = ['data.subset=true', 'data.train=64', 'data.test=32'];

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tfkd-dense-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('examples/dense', () => {
  it('has the detection and segmentation specs', () => {
    for (const f of ['det-teacher', 'det-student', 'det-feature-imitation', 'det-bounded-regression', 'det-localization', 'det-logit-kd', 'det-fi-ld', 'seg-teacher', 'seg-student', 'seg-pixel-kd', 'seg-pairwise', 'seg-cwd', 'seg-adversarial']) {
      expect(files).toContain(`${f}.yaml`);
    }
  });

  it.each(files)('%s plans', async (f) => {
    const outcome = await runCommand(path.join(DENSE, f), { plan: true, set: small, cacheDir: path.join(tmp, 'cache'), quiet: true, signals: false });
    expect(outcome.status).toBe('planned');
    expect(outcome.plan?.[0]).toMatch(/task (detection|segmentation)/);
  });

  it('loss/hinton-kd on a detection spec: KD_TASK_MISMATCH at plugins[1].use, nothing written', async () => {
    const out = path.join(tmp, 'mismatch');
    const e = await runCommand(path.join(DENSE, 'det-student.yaml'), { out, set: [...small, 'plugins[1]={use: loss/hinton-kd}'], cacheDir: path.join(tmp, 'cache'), quiet: true, signals: false }).then(
      () => null,
      (x: unknown) => x,
    );
    expect(isKdError(e) ? [(e as KdError).code, (e as KdError).path] : e).toEqual(['KD_TASK_MISMATCH', 'plugins[1].use']);
    expect(fs.existsSync(out)).toBe(false);
  });

  it.each([
    ['det-student.yaml', ['map', 'map50', 'map75', 'mar']],
    ['seg-student.yaml', ['miou', 'pixelAccuracy']],
  ])('%s trains into a run folder with its metric', async (f, keys) => {
    const out = path.join(tmp, path.basename(f, '.yaml'));
    const outcome = await runCommand(path.join(DENSE, f), { out, set: [...small, 'train.epochs=1', 'train.maxBatches=2'], cacheDir: path.join(tmp, 'cache'), quiet: true, signals: false });
    expect(outcome.status).toBe('completed');
    const metrics = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8')) as { eval: Record<string, Record<string, number>> };
    expect(Object.keys(metrics.eval.student).sort()).toEqual([...keys].sort());
    const history = fs.readFileSync(path.join(out, 'history.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { eval: Record<string, Record<string, number>>; train: Record<string, number> });
    expect(Object.keys(history[0].eval.student).sort()).toEqual([...keys].sort());
    expect(Number.isFinite(history[0].train.loss)).toBe(true);
    expect(fs.readFileSync(path.join(out, 'training-curves.svg'), 'utf8')).toContain(`test ${keys[0]}`);
    expect(fs.existsSync(path.join(out, 'reliability-student.svg'))).toBe(false);
  });

  it('seg-adversarial.yaml trains its critic player and writes it beside the student (players/critic/)', async () => {
    const out = path.join(tmp, 'seg-adversarial');
    const set = [...small, 'train.epochs=1', 'train.maxBatches=2', 'teacher.train.epochs=1', 'teacher.train.maxBatches=2'];
    const outcome = await runCommand(path.join(DENSE, 'seg-adversarial.yaml'), { out, set, cacheDir: path.join(tmp, 'cache'), quiet: true, signals: false });
    expect(outcome.status).toBe('completed');
    const metrics = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8')) as { players: string[]; ledger: { roles: Record<string, { backwardImages: number }> } };
    expect(metrics.players).toEqual(['critic']);
    // two student steps of 32 scenes: the students' backward through the critic, then one critic step each
    expect(metrics.ledger.roles.critic.backwardImages).toBe(2 * 32 + 2 * 32);
    const history = JSON.parse(fs.readFileSync(path.join(out, 'history.jsonl'), 'utf8').trim().split('\n')[0]) as { train: Record<string, number> };
    expect(Number.isFinite(history.train['player:critic'])).toBe(true);
    expect(Number.isFinite(history.train['loss/seg-adversarial'])).toBe(true);
    const critic = JSON.parse(fs.readFileSync(path.join(out, 'players', 'critic', 'model.json'), 'utf8')) as { modelTopology: { config: { name: string } } };
    expect(critic.modelTopology.config.name).toBe('critic');
  });
});
