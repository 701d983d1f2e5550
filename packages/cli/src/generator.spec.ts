import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { runMain } from './__fixtures__/run-main';

// The plugin generator (tools/kd-plugin): generate a package, run its own tests, find it in
// `kd list`, and stack it with sampler/unix in a spec. (In the CLI package: it uses `kd`.)
jest.setTimeout(240_000);

const ROOT = path.resolve(__dirname, '..', '..', '..');
// The child jest gets a plain environment (nx sets FORCE_COLOR): no colour codes in its summary.
const plainEnv: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
delete plainEnv.FORCE_COLOR;
// eslint-disable-next-line @typescript-eslint/no-require-imports -- plain-JS workspace tool
const { pluginFiles } = require(path.join(ROOT, 'tools/kd-plugin/files.js')) as {
  pluginFiles: (o: { name: string; id?: string }) => [string, string][];
};

describe('plugin generator', () => {
  const name = `kd-gen-test-${process.pid}`;
  const dir = path.join(ROOT, 'packages', name);
  let tmp: string;

  beforeAll(() => {
    for (const [file, content] of pluginFiles({ name })) {
      fs.mkdirSync(path.dirname(path.join(ROOT, file)), { recursive: true });
      fs.writeFileSync(path.join(ROOT, file), content);
    }
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-gen-'));
  });
  afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('writes a package whose own tests pass (value, gradient check, plugin contract)', () => {
    expect(fs.readdirSync(path.join(dir, 'src')).sort()).toEqual(['index.ts', `${name}.spec.ts`, `${name}.ts`]);
    const r = spawnSync(process.execPath, [require.resolve('jest/bin/jest'), '-c', path.join(dir, 'jest.config.ts'), '--ci'], {
      cwd: ROOT,
      encoding: 'utf8',
      env: plainEnv,
    });
    expect(r.stderr).toMatch(/Tests:\s+6 passed, 6 total/);
    expect(r.status).toBe(0);
  });

  it('shows up in `kd list --package`', async () => {
    const { code, out } = await runMain(['list', '--package', path.join(dir, 'src/index.ts')]);
    expect(code).toBe(0);
    expect(out).toContain(`loss/${name}  (loss)`);
    expect(out).toMatch(/temperature: number = 4/);
  });

  it('stacks with sampler/unix in a spec loaded through `packages:`', async () => {
    const spec = path.join(tmp, 'stack.yaml');
    fs.writeFileSync(
      spec,
      `seed: 1
backend: cpu
packages: [${JSON.stringify(path.join(dir, 'src/index.ts'))}]
data: { name: synthetic, train: 32, test: 16, numClasses: 4, shape: [6, 6, 1] }
teacher: { model: mlp, options: { hidden: [16] }, seed: 1, train: { epochs: 1 } }
student: { model: mlp, options: { hidden: [8] } }
train: { epochs: 1, batchSize: 16, optimizer: { name: adam, lr: 0.01, weightDecay: 0 } }
plugins:
  - use: sampler/unix
    with: { keep: 12 }
  - use: loss/cross-entropy
    weight: 0.5
  - use: loss/${name}
    weight: 0.5
`,
    );
    const o = path.join(tmp, 'run');
    expect((await runMain(['run', spec, '--out', o, '--cache-dir', path.join(tmp, 'cache'), '--quiet'])).code).toBe(0);
    const m = JSON.parse(fs.readFileSync(path.join(o, 'metrics.json'), 'utf8'));
    // UNIX keeps 12 of 16 per batch: 2 batches → 24 images back-propagated, teacher on 24.
    expect(m.ledger.roles.student.backwardImages).toBe(24);
    expect(m.ledger.roles.teacher.forwardImages).toBe(24);
    const h = JSON.parse(fs.readFileSync(path.join(o, 'history.jsonl'), 'utf8').trim());
    expect(Object.keys(h.train)).toContain(`loss/${name}`);
  });
});
