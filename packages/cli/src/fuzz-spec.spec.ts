/**
 * Spec fuzzing (issue #11): start from tiny valid run specs (synthetic data, 1–2 batches, small
 * models), mutate them (keys dropped, renamed or added; wrong types; out-of-range numbers; unknown
 * plugin ids; bad taps and roles; `--set` overrides; random YAML text) and run each through the
 * real `kd run` path (`runCommand`, which `main()` maps to exit codes). Every case must end in
 *   - success: a whole run folder (metrics, history, resolved spec that parses back to the same
 *     spec, the student model, the curves), nothing else beside it; or
 *   - a KdError with a stable code (never KD_INTERNAL), a spec path and a fix, and no run folder,
 *     staging folder (but a `run.incomplete` holding a checkpoint, kept for --resume by design) or
 *     temp file left behind;
 * never another exception type, a hang (per-case timeout, and a wall-time bound that also catches
 * synchronous stalls), a tensor leak, or a polluted Object.prototype.
 *
 * Fixed seed, bounded numRuns: the file takes about 30 s (about 15 s of CPU) on this 2-core machine.
 * Cost guard: `epochs` is the one field whose huge valid values mean a legitimately long run (the
 * run length the user asked for), so the generators give it only invalid values; every other
 * number may become huge (2^40), where the run must fail fast with a KdError rather than try.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import fc from 'fast-check';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { ERROR_CODES, isKdError, parseSpec, type KdError, type LifecycleBus } from '@tfkd/kd-core';
import { runMain } from './__fixtures__/run-main';
import { runCommand } from './run';

const SEED = 20261126;
/** Per case: a wall-clock limit for async hangs, also checked after the fact for synchronous ones. */
const CASE_MS = 30_000;

jest.setTimeout(300_000);

let tmp: string;
let cacheDir: string;
let caseNo = 0;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kd-fuzz-spec-'));
  cacheDir = path.join(tmp, 'cache');
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------
// Valid starting points: each trains in well under a second on the cpu backend.

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

const tinyData = { name: 'synthetic', train: 16, test: 8, numClasses: 3, shape: [6, 6, 1] };
const sgd = { name: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 0.0005 };

const BASES: Record<string, Obj> = {
  scratch: {
    seed: 1,
    backend: 'cpu',
    data: tinyData,
    student: { model: 'mlp', options: { hidden: [4] } },
    train: { epochs: 1, batchSize: 8, maxBatches: 1, optimizer: sgd },
    plugins: [{ use: 'loss/cross-entropy' }],
  },
  kd: {
    seed: 2,
    backend: 'cpu',
    data: tinyData,
    teacher: { model: 'mlp', options: { hidden: [8] }, seed: 1, train: { epochs: 1, maxBatches: 1 } },
    student: { model: 'mlp', options: { hidden: [4] } },
    train: { epochs: 1, batchSize: 8, maxBatches: 2, optimizer: { name: 'adam', lr: 0.01, weightDecay: 0 }, schedule: { name: 'cosine' } },
    plugins: [
      { use: 'loss/cross-entropy', weight: 0.1 },
      { use: 'loss/hinton-kd', with: { temperature: 4 }, weight: 0.9 },
    ],
    eval: ['accuracy', 'ece'],
  },
  stack: {
    seed: 3,
    backend: 'cpu',
    data: { ...tinyData, shape: [8, 8, 1] },
    teacher: { model: 'cnn-small', seed: 1, train: { epochs: 1, maxBatches: 1 } },
    student: { model: 'cnn-small' },
    train: { epochs: 1, batchSize: 8, maxBatches: 1, optimizer: sgd },
    plugins: [
      { use: 'sampler/unix', with: { keep: 6, b: 4 } },
      { use: 'loss/attention', with: { pairs: [['student.block2', 'teacher.block2']] }, weight: 1000 },
      { use: 'loss/hinton-kd', with: { temperature: 4 }, weight: 0.9 },
      { use: 'loss/cross-entropy', weight: 0.1 },
    ],
  },
  dml: {
    seed: 4,
    backend: 'cpu',
    data: tinyData,
    students: [
      { model: 'mlp', options: { hidden: [4] } },
      { model: 'mlp', options: { hidden: [4] }, seed: 9 },
    ],
    train: { epochs: 1, batchSize: 8, maxBatches: 1, optimizer: sgd },
    plugins: [{ use: 'online/dml', with: { alpha: 0.5, temperature: 1 } }],
  },
};

// ---------------------------------------------------------------------------------------------
// Running one case and checking its outcome.

interface Outcome {
  ok: boolean;
  error?: KdError;
  ms: number;
}

/** Errors that only training can reveal; every other code is a start-up error, raised before any step. */
const RUNTIME_CODES: string[] = ['KD_LOSS_NONFINITE', 'KD_PLUGIN_FAILED', 'KD_INTERRUPTED', 'KD_OUTPUT_WRITE'];

const leftover = (name: string) => /\.partial-|\.old-|\.tmp-/.test(name);

function walk(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? [p, ...walk(p)] : [p];
  });
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`HANG: ${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/**
 * Writes `text` as a spec file, runs `kd run` in-process with the overrides, and checks every
 * property that holds for any outcome. Returns success or the KdError.
 */
async function runCase(text: string, sets: string[] = []): Promise<Outcome> {
  const dir = path.join(tmp, `case-${caseNo++}`);
  fs.mkdirSync(dir);
  const specFile = path.join(dir, 'spec.yaml');
  fs.writeFileSync(specFile, text);
  const parent = path.join(dir, 'out');
  const out = path.join(parent, 'run');
  const tensorsBefore = tf.memory().numTensors;
  const t0 = Date.now();
  let error: unknown;
  let ok = false;
  let steps = 0;
  const observe = (bus: LifecycleBus) => void bus.events$.subscribe((e) => void (e.hook === 'batchEnd' && steps++));
  try {
    await withTimeout(runCommand(specFile, { out, set: sets, cacheDir, quiet: true, observe }), CASE_MS, `kd run ${specFile} ${sets.join(' ')}`);
    ok = true;
  } catch (e) {
    error = e;
  }
  const ms = Date.now() - t0;
  const context = `\n--- spec ---\n${text}\n--- sets ---\n${JSON.stringify(sets)}`;

  if (!ok && !isKdError(error)) {
    const e = error as Error;
    throw new Error(`not a KdError: ${e?.name}: ${e?.message}${context}`, { cause: error });
  }
  expect(ms).toBeLessThan(CASE_MS);
  // no tensor survives a run, successful or not (the models and optimizers are disposed)
  const outcomeText = ok ? 'success' : (error as KdError).format();
  expect({ tensors: tf.memory().numTensors, outcomeText, context }).toEqual({ tensors: tensorsBefore, outcomeText, context });
  expect(Object.keys(Object.prototype)).toEqual([]);
  // nothing half-written: no staging folder, backup or temp file anywhere we gave the run
  expect(walk(dir).filter((f) => leftover(path.basename(f)))).toEqual([]);
  expect(walk(cacheDir).filter((f) => leftover(path.basename(f)))).toEqual([]);
  expect(fs.readdirSync(dir).sort()).toEqual(['out', 'spec.yaml'].filter((n) => n !== 'out' || fs.existsSync(parent)));

  if (ok) {
    expect(fs.readdirSync(parent)).toEqual(['run']); // no `run.incomplete`, no `.old-` backup
    const files = fs.readdirSync(out);
    expect(files).toEqual(expect.arrayContaining(['history.jsonl', 'metrics.json', 'spec.resolved.yaml', 'training-curves.svg']));
    const spec = parseSpec(text, specFile, sets);
    const metrics = JSON.parse(fs.readFileSync(path.join(out, 'metrics.json'), 'utf8'));
    expect(metrics.status).toBe('completed');
    expect(metrics.epochs).toBe(spec.train.epochs);
    const history = fs.readFileSync(path.join(out, 'history.jsonl'), 'utf8').trim().split('\n');
    expect(history).toHaveLength(spec.train.epochs);
    // the resolved spec is the spec: it parses back to exactly what was run
    // the resolved spec is the spec, with every plugin's option defaults filled in (each given option kept)
    const resolved = parseSpec(fs.readFileSync(path.join(out, 'spec.resolved.yaml'), 'utf8'));
    expect(resolved).toEqual({ ...spec, plugins: spec.plugins.map((p, i) => ({ ...p, with: resolved.plugins[i].with })) });
    spec.plugins.forEach((p, i) => expect(resolved.plugins[i].with).toMatchObject(p.with));
    const models = spec.students ? spec.students.map((_, i) => path.join('students', `student.${i}`)) : ['student'];
    for (const m of models) expect(fs.existsSync(path.join(out, m, 'model.json'))).toBe(true);
  } else {
    const e = error as KdError;
    expect(Object.keys(ERROR_CODES)).toContain(e.code);
    if (e.code === 'KD_INTERNAL') throw new Error(`KD_INTERNAL: ${e.message}${context}`);
    expect(e.path && e.path.length > 0 ? e.path : `no path for ${e.code}: ${e.message}`).toBe(e.path);
    expect(e.fix && e.fix.length > 0 ? e.fix : `no fix for ${e.code}: ${e.message}`).toBe(e.fix);
    expect(e.format().startsWith(`${e.code} at ${e.path}: `)).toBe(true);
    // a spec error is found by the plan, before any weight moves (teachers included); only what
    // happens while training (a loss turning NaN, a plugin failing in a hook) comes after a step
    if (!RUNTIME_CODES.includes(e.code)) expect({ steps, code: e.code, context }).toEqual({ steps: 0, code: e.code, context });
    // a failed run leaves no run folder (the parent may exist: it is made before training starts);
    // the only thing allowed beside it is `run.incomplete` kept for `--resume`, and then it must hold
    // a checkpoint and no owner (a staging folder that nobody can resume is a leftover)
    expect(fs.existsSync(out)).toBe(false);
    const beside = fs.existsSync(parent) ? fs.readdirSync(parent) : [];
    expect(beside.filter((n) => n !== 'run.incomplete')).toEqual([]);
    if (beside.includes('run.incomplete')) {
      const kept = fs.readdirSync(path.join(parent, 'run.incomplete'));
      expect(kept).toContain('checkpoint');
      expect(kept).not.toContain('owner.json');
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return { ok, error: error as KdError | undefined, ms };
}

const dump = (o: unknown): string => toYaml(o);

/** The YAML value of `text`, or undefined when it does not parse. */
function yamlValue(text: string): unknown {
  try {
    return parseYaml(text);
  } catch {
    return undefined;
  }
}

/** Tallies outcomes per property so each test can also show that it reached both kinds. */
function tally(): { add(o: Outcome): void; ok: number; codes: Record<string, number> } {
  const t = {
    ok: 0,
    codes: {} as Record<string, number>,
    add(o: Outcome) {
      if (o.ok) t.ok++;
      else t.codes[o.error!.code] = (t.codes[o.error!.code] ?? 0) + 1;
    },
  };
  return t;
}

// ---------------------------------------------------------------------------------------------
// Mutations of the spec object.

type Path = (string | number)[];

function paths(v: Json, at: Path = []): Path[] {
  if (Array.isArray(v)) return v.flatMap((x, i) => [[...at, i], ...paths(x, [...at, i])]);
  if (v && typeof v === 'object') return Object.entries(v).flatMap(([k, x]) => [[...at, k], ...paths(x, [...at, k])]);
  return [];
}

function get(root: Json, p: Path): Json {
  return p.reduce<Json>((n, k) => (n as Record<string | number, Json>)[k], root);
}

const HUGE = 2 ** 40;
/** Numbers that no field accepts, or accepts only as a value that must fail fast. */
const badNumbers = [-1, 0, 0.5, -0.5, 1e-9, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 2 ** 53 + 2, 1e300, -1e300];
const wrongTypes: Json[] = ['', 'abc', 'student.block2', true, false, null, [], {}, [1, 2], { a: 1 }, [[]], '1', '-3'];
const isEpochs = (p: Path) => p[p.length - 1] === 'epochs';

type Mutation =
  | { op: 'drop'; pick: number }
  | { op: 'rename'; pick: number; to: string }
  | { op: 'insert'; pick: number; key: string; value: Json }
  | { op: 'replace'; pick: number; value: Json }
  | { op: 'number'; pick: number; value: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('drop' as const), pick: fc.nat() }),
  fc.record({
    op: fc.constant('rename' as const),
    pick: fc.nat(),
    to: fc.oneof(fc.constantFrom('Epochs', 'batch_size', 'plugin', 'use ', 'with:', 'teachers', 'model.json', '__proto__', 'constructor'), fc.string({ maxLength: 6 })),
  }),
  fc.record({
    op: fc.constant('insert' as const),
    pick: fc.nat(),
    key: fc.constantFrom('extra', 'lr', 'use', 'weight', 'name', 'taps', '__proto__', 'toString'),
    value: fc.constantFrom<Json>(...wrongTypes, 1, 0.1),
  }),
  fc.record({ op: fc.constant('replace' as const), pick: fc.nat(), value: fc.constantFrom<Json>(...wrongTypes) }),
  fc.record({ op: fc.constant('number' as const), pick: fc.nat(), value: fc.constantFrom(...badNumbers, HUGE) }),
);

/** Applies one mutation to a copy of `spec`; returns the copy and what was done (for messages). */
function mutate(spec: Obj, m: Mutation): Obj {
  const out = structuredClone(spec) as Obj;
  const all = paths(out);
  const numeric = all.filter((p) => typeof get(out, p) === 'number' && !(isEpochs(p) && m.op === 'number' && m.value === HUGE));
  const pool = m.op === 'number' ? numeric : m.op === 'insert' ? [[] as Path, ...all.filter((p) => typeof get(out, p) === 'object')] : all;
  const p = pool[m.pick % pool.length];
  const parent = get(out, p.slice(0, -1)) as Record<string | number, Json> & Json[];
  const key = p[p.length - 1];
  switch (m.op) {
    case 'drop':
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key];
      break;
    case 'rename':
      if (Array.isArray(parent)) parent[key as number] = { [m.to]: parent[key as number] };
      else {
        const v = parent[key];
        delete parent[key];
        Object.defineProperty(parent, m.to, { value: v, enumerable: true, configurable: true, writable: true });
      }
      break;
    case 'insert': {
      const target = get(out, p);
      if (Array.isArray(target)) target.push(m.value);
      else Object.defineProperty(target, m.key, { value: m.value, enumerable: true, configurable: true, writable: true });
      break;
    }
    case 'replace':
      parent[key] = m.value;
      break;
    case 'number':
      parent[key] = m.value;
      break;
  }
  return out;
}

const base = fc.constantFrom(...Object.keys(BASES));

// ---------------------------------------------------------------------------------------------

describe('kd run on fuzzed specs', () => {
  it('every base spec trains and writes a whole run folder', async () => {
    for (const [name, spec] of Object.entries(BASES)) {
      const o = await runCase(dump(spec));
      expect({ name, ok: o.ok, error: o.error?.format() }).toEqual({ name, ok: true, error: undefined });
    }
  });

  it('structural mutations (keys dropped, renamed, added; wrong types; out-of-range and huge numbers): success or a well-formed KdError', async () => {
    const t = tally();
    await fc.assert(
      fc.asyncProperty(base, fc.array(mutation, { minLength: 1, maxLength: 3 }), async (b, ms) => {
        const spec = ms.reduce((s, m) => mutate(s, m), BASES[b]);
        t.add(await runCase(dump(spec)));
      }),
      { seed: SEED, numRuns: 60 },
    );
    expect(t.ok).toBeGreaterThan(0);
    expect(Object.keys(t.codes).length).toBeGreaterThan(1);
  });

  it('values that pass the schema but not the run (huge sizes, extreme rates, impossible views, missing files): the expected outcome, fast', async () => {
    const H = 2 ** 40;
    const nowhere = path.join(os.tmpdir(), 'kd-fuzz-nowhere');
    // [base, --set overrides, expected: 'ok' or the KdError code (and the path, where it does not depend on the machine)]
    const deep: [string, string[], string, string?][] = [
      ['scratch', [`student.options.hidden=[${H}]`], 'KD_SPEC_INVALID', 'student.options'],
      ['kd', [`teacher.options.hidden=[${H}]`], 'KD_SPEC_INVALID', 'teacher.options'],
      ['scratch', ['student.options.hidden=[9007199254740991]'], 'KD_SPEC_INVALID', 'student.options'],
      ['kd', ['teacher.train={epochs: 1, batchSize: 4, maxBatches: 3, optimizer: {name: sgd, lr: 0.1, momentum: 0, weightDecay: 1e300}}', 'teacher.seed=7'], 'KD_LOSS_NONFINITE', 'nonFinite'],
      ['scratch', [`data.train=${H}`], 'KD_SPEC_INVALID', 'data.train'],
      ['scratch', [`data.numClasses=${H}`], 'KD_SPEC_INVALID', 'data.numClasses'],
      ['scratch', [`data.shape=[${H}, 1, 1]`], 'KD_SPEC_INVALID', 'data.train'],
      ['stack', ['data.shape=[1, 1, 1]'], 'KD_SPEC_INVALID', 'teacher.model'],
      ['scratch', ['data.shape=[2, 3, 1]', 'student.model=cnn-small'], 'KD_SPEC_INVALID', 'student.model'],
      ['stack', ['data.shape=[2, 3, 1]'], 'KD_SPEC_INVALID', 'teacher.model'],
      ['stack', [`plugins[0].with.keep=${H}`, `plugins[0].with.b=${H}`], 'ok'],
      ['kd', ['plugins[1].with.temperature=1e300'], 'KD_LOSS_NONFINITE', 'nonFinite'],
      ['kd', ['plugins[1].weight=1e300'], 'KD_LOSS_NONFINITE', 'nonFinite'],
      ['scratch', ['train.optimizer.lr=1e300', 'nonFinite=skip-batch'], 'ok'],
      ['scratch', ['train.optimizer.weightDecay=1e300', 'train.maxBatches=2'], 'KD_LOSS_NONFINITE', 'nonFinite'],
      ['scratch', [`train.batchSize=${H}`, `train.maxBatches=${H}`, `seed=${H}`, 'data.seed=9007199254740991', `evalEvery=${H}`], 'ok'],
      ['scratch', ['teacherCacheMB=1e-300', 'calibrate={method: temperature, holdout: 0.99}'], 'ok'],
      ['scratch', ['calibrate={method: temperature, holdout: 1e-9}'], 'ok'],
      ['scratch', ['data.test=1', 'data.train=1', 'train.batchSize=1'], 'ok'],
      ['scratch', [`train.schedule={name: step, milestones: [${H}], gamma: 1e300}`], 'ok'],
      ['scratch', [`train.schedule={name: cosine, warmup: ${H}}`], 'ok'],
      ['dml', [`students[1].view={resize: [${H}, 1]}`], 'KD_SPEC_INVALID', 'students[1].view.resize[0]'],
      // a zoo model is built for the view it sees; a model that cannot take it fails at start-up
      ['dml', ['students[1].view={resize: [4, 4]}'], 'ok'],
      ['kd', ['teacher.view={resize: [2, 2]}'], 'KD_SHAPE_MISMATCH', 'teacher.view'],
      ['dml', ['students[1].view={resize: [1, 1], upsample: true}'], 'ok'],
      ['kd', ['teacher.view={resize: [2, 2], upsample: true}'], 'ok'],
      ['scratch', ['student.options.dropout=0.999999'], 'ok'],
      ['scratch', ['student.model=resnet', 'data.shape=[1, 1, 1]'], 'ok'],
      ['scratch', [`student={load: ${nowhere}}`], 'KD_MODEL_LOAD'],
      ['scratch', ['student={load: spec.yaml}'], 'KD_MODEL_LOAD'],
      ['scratch', [`packages=[${nowhere}/plugin.js]`], 'KD_PLUGIN_PACKAGE', 'packages[0]'],
      ['scratch', ['packages=[fs]'], 'KD_PLUGIN_PACKAGE', 'packages[0]'],
      ['scratch', [`data={name: idx, dir: ${nowhere}, train: {images: a, labels: b}, test: {images: a, labels: b}}`], 'KD_DATA_MISSING', path.join(nowhere, 'a')],
      ['scratch', [`data={name: cifar10, path: ${nowhere}}`], 'KD_DATA_MISSING', nowhere],
      ['scratch', [`data={name: fashion-mnist, path: ${nowhere}}`], 'KD_DATA_MISSING', nowhere],
      ['scratch', ['data={name: fashion-mnist, subset: true, limit: {train: 0}}'], 'KD_SPEC_INVALID', 'data.limit.train'],
      ['scratch', ['backend=tensorflow'], 'KD_BACKEND_UNAVAILABLE', 'backend'],
      ['scratch', ['eval=[nope]'], 'KD_PLUGIN_UNKNOWN', 'eval[0]'],
      ['scratch', ['plugins=[]'], 'KD_PLUGIN_DEPENDENCY', 'plugins'],
      ['kd', ['plugins=[{use: loss/hinton-kd, with: {student: teacher}}]'], 'KD_PLUGIN_OPTIONS', 'plugins[0].with'],
      ['scratch', ['plugins[0].weight=0'], 'ok'],
    ];
    for (const [b, sets, code, where] of deep) {
      const o = await runCase(dump(BASES[b]), sets);
      const got = o.ok ? ['ok'] : where === undefined ? [o.error!.code] : [o.error!.code, o.error!.path];
      expect({ sets, got }).toEqual({ sets, got: where === undefined || code === 'ok' ? [code] : [code, where] });
    }
  });

  it('plugin mutations (unknown ids, bad options, bad taps and roles): success or the matching KdError code at plugins[i]', async () => {
    const ids = ['loss/cross-entropy', 'loss/hinton-kd', 'loss/attention', 'sampler/unix', 'online/dml'];
    const roles = ['student', 'teacher', 'student.0', 'student.1', 'student.2', 'teacher.0', 'nobody', '', 'Student'];
    const taps = ['student.block2', 'teacher.block2', 'teacher.block1', 'student.fc1', 'teacher.fc1', 'student.logits', 'student.nope', 'nobody.block2', 'block2', 'student.', '.block2', 'student.block2.x'];
    const pluginMutation = fc.oneof(
      fc.record({ kind: fc.constant('id' as const), id: fc.oneof(fc.constantFrom('loss/nope', 'loss/Hinton-KD', 'hinton-kd', 'sampler/unix2', 'metric/calibration', 'loss/', '/'), fc.string({ maxLength: 8 })) }),
      fc.record({ kind: fc.constant('taps' as const), pairs: fc.array(fc.tuple(fc.constantFrom(...taps), fc.constantFrom(...taps)), { maxLength: 2 }) }),
      fc.record({ kind: fc.constant('role' as const), key: fc.constantFrom('student', 'teacher'), role: fc.constantFrom(...roles) }),
      fc.record({ kind: fc.constant('option' as const), key: fc.constantFrom('temperature', 'keep', 'b', 'w', 'alpha', 'p', 'spatial', 'lambda', 'nonsense'), value: fc.constantFrom<Json>(...wrongTypes, ...badNumbers.filter(Number.isFinite), 2, 'bilinear') }),
      fc.record({ kind: fc.constant('add' as const), id: fc.constantFrom(...ids, 'metric/calibration', 'sampler/random') }),
    );
    const t = tally();
    await fc.assert(
      fc.asyncProperty(base, fc.nat(), pluginMutation, async (b, pick, m) => {
        const spec = structuredClone(BASES[b]) as Obj & { plugins: Obj[] };
        const i = pick % spec.plugins.length;
        const entry = spec.plugins[i] as Obj & { with?: Obj };
        let expected: string[] | null = null;
        if (m.kind === 'id') {
          entry.use = m.id;
          if (!/^(loss|sampler|metric|online)\//.test(m.id) || m.id.length <= 6) expected = m.id === '' ? ['KD_SPEC_INVALID'] : ['KD_PLUGIN_UNKNOWN', 'KD_SPEC_INVALID'];
          if (m.id.startsWith('loss/nope') || m.id === 'loss/Hinton-KD' || m.id === 'sampler/unix2') expected = ['KD_PLUGIN_UNKNOWN'];
        } else if (m.kind === 'taps') {
          entry.use = 'loss/attention';
          entry.with = { pairs: m.pairs };
          entry.weight = 1;
        } else if (m.kind === 'role') {
          entry.use = 'loss/hinton-kd';
          entry.with = { [m.key]: m.role };
        } else if (m.kind === 'option') {
          entry.with = { ...(entry.with ?? {}), [m.key]: m.value };
        } else {
          spec.plugins.splice(i, 0, { use: m.id });
        }
        const o = await runCase(dump(spec));
        t.add(o);
        if (expected) expect(expected).toContain(o.ok ? 'success' : o.error!.code);
        if (!o.ok && o.error!.code.startsWith('KD_PLUGIN_') && m.kind !== 'add') expect(o.error!.path).toMatch(new RegExp(`^plugins\\[${i}\\]`));
      }),
      { seed: SEED, numRuns: 60 },
    );
    expect(t.codes.KD_PLUGIN_UNKNOWN).toBeGreaterThan(0);
    expect((t.codes.KD_PLUGIN_OPTIONS ?? 0) + (t.codes.KD_TAP_UNKNOWN ?? 0) + (t.codes.KD_PLUGIN_DEPENDENCY ?? 0)).toBeGreaterThan(0);
  });

  it('--set overrides (random paths and values, malformed syntax): success or a KdError, Object.prototype untouched', async () => {
    const seg = fc.oneof(
      fc.constantFrom('train', 'epochs', 'batchSize', 'maxBatches', 'optimizer', 'lr', 'data', 'train', 'shape', 'plugins', 'with', 'use', 'student', 'options', 'hidden', 'seed', 'backend', 'eval', '__proto__', 'constructor', 'prototype', 'toString'),
      fc.string({ maxLength: 4 }),
    );
    const index = fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constantFrom(99, 2 ** 31, 1e9));
    const setPath = fc
      .array(fc.oneof({ weight: 3, arbitrary: seg.map((s) => ({ s })) }, { weight: 1, arbitrary: index.map((i) => ({ i })) }), { minLength: 1, maxLength: 4 })
      .map((parts) => parts.map((p, k) => ('i' in p ? `[${p.i}]` : k === 0 ? p.s : `.${p.s}`)).join(''));
    const value = fc.oneof(
      fc.constantFrom('1', '2', '0', '-1', '0.5', '1e300', '.nan', '.inf', 'true', 'null', '~', '[]', '{}', '[1, 2]', '{ a: 1 }', 'cpu', 'wasm', 'tensorflow', 'loss/nope', '[student.block2, teacher.block2]'),
      fc.constantFrom('[', '{', '}', ']', '"', "'", '*a', '&a [*a]', '!!binary x', '- a\n- b', 'a: b: c', '@', '`', '%YAML 1.2\n---\n1'),
      // free text, but no numbers: a large valid count (data.train=99999999) is a big run, not an error
      fc.string({ maxLength: 8 }).filter((v) => typeof yamlValue(v) !== 'number'),
    );
    const plausible = fc.constantFrom(
      'train.epochs=2', 'train.maxBatches=1', 'seed=5', 'train.optimizer.lr=0.01', 'plugins[0].weight=0.5', 'train.batchSize=4',
      'data.noise=0.3', 'teacherCache=off', 'evalEvery=1', 'nonFinite=skip-batch', 'train.schedule={name: step, milestones: [1]}',
      'eval=[accuracy, ece]', 'train.optimizer={name: adam, lr: 0.001}', 'data.shape=[8, 8, 1]',
    );
    const set = fc.oneof({ weight: 3, arbitrary: plausible }, { weight: 4, arbitrary: fc.tuple(setPath, value).map(([p, v]) => `${p}=${v}`) }, { weight: 1, arbitrary: fc.oneof(fc.constantFrom('=1', 'train.epochs', '', '==', 'a=b=c', '.=1', '[0]=1', 'train..epochs=1'), fc.string({ maxLength: 6 })) });
    const t = tally();
    await fc.assert(
      fc.asyncProperty(base, fc.array(set, { minLength: 1, maxLength: 3 }), async (b, sets) => {
        // cost guard: `epochs` stays small (a huge valid value is a long run, not an error)
        const guarded = sets.map((s) => {
          const m = /^(.*epochs)=(.*)$/s.exec(s);
          const v = m ? yamlValue(m[2]) : undefined;
          return m && typeof v === 'number' && v > 3 ? `${m[1]}=-1` : s;
        });
        t.add(await runCase(dump(BASES[b]), guarded));
      }),
      { seed: SEED, numRuns: 60 },
    );
    expect(t.ok).toBeGreaterThan(0);
    expect(t.codes.KD_SPEC_INVALID).toBeGreaterThan(0);
  });

  it('random YAML text: KD_SPEC_PARSE or KD_SPEC_INVALID, nothing written', async () => {
    const token = fc.constantFrom('seed', 'data', 'student', 'train', ':', ' ', '\n', '  ', '- ', '{', '}', '[', ']', ',', '"', "'", '#', '&a', '*a', '!!str', '!!int', '<<', '---', '...', '|', '>', '?', '%', '@', '\t', '1', '-1', '.nan', 'null', '~', 'true', 'synthetic', 'mlp', '\\');
    const text = fc.oneof(fc.string({ maxLength: 40 }), fc.array(token, { maxLength: 30 }).map((ts) => ts.join('')));
    const t = tally();
    await fc.assert(
      fc.asyncProperty(text, async (s) => {
        const o = await runCase(s);
        t.add(o);
        expect(['KD_SPEC_PARSE', 'KD_SPEC_INVALID']).toContain(o.ok ? 'success' : o.error!.code);
      }),
      { seed: SEED, numRuns: 150 },
    );
    expect(t.codes.KD_SPEC_PARSE).toBeGreaterThan(0);
    expect(t.codes.KD_SPEC_INVALID).toBeGreaterThan(0);
  });
});

describe('kd run: the exit code of fuzzed cases through main()', () => {
  it('a KdError exits 2 with `error CODE at PATH: …` and a fix line; success exits 0', async () => {
    const dir = path.join(tmp, 'main');
    fs.mkdirSync(dir);
    const f = path.join(dir, 'spec.yaml');
    fs.writeFileSync(f, dump(BASES.scratch));
    const run = (...extra: string[]) => runMain(['run', f, '--out', path.join(dir, `out-${caseNo++}`), '--cache-dir', cacheDir, '--quiet', ...extra]);
    expect((await run()).code).toBe(0);
    for (const bad of [['--set', 'train.epochs=0'], ['--set', 'plugins[0].use=loss/nope'], ['--set', 'train.epochs=['], ['--set', 'x']]) {
      const { code, err } = await run(...bad);
      expect(code).toBe(2);
      expect(err).toMatch(/^error KD_[A-Z_]+ at \S.*: .+\n {2}fix: .+/);
    }
  });
});
