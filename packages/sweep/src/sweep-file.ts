import * as fs from 'fs';
import * as path from 'path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { KdError, validate } from '@tfkd/kd-core';

/** A named list of values: `{ kd: [...], scratch: [...] }`, or a plain list (each value names itself). */
const Named = <T extends z.ZodType>(item: T) => z.union([z.record(z.string(), item), z.array(item)]);

const Range = z.union([
  z.strictObject({ min: z.number(), max: z.number(), log: z.boolean().default(false), integer: z.boolean().default(false) }),
  z.strictObject({ choice: z.array(z.unknown()).min(1) }),
]);

/** The sweep file (YAML): a base spec, axes, optional random search, a named baseline. */
export const SweepFile = z.strictObject({
  /** Name of the sweep (default: the file's base name); names its folder `sweeps/<name>`. */
  name: z.string().regex(/^[A-Za-z0-9._-]+$/).optional(),
  /** Base spec file, relative to the sweep file (or a `spec` axis). */
  spec: z.string().optional(),
  /** `--set` overrides applied to every cell, before the axes'. */
  set: z.array(z.string()).default([]),
  axes: z
    .strictObject({
      /** Alternative spec files (relative to the sweep file). */
      spec: Named(z.string()).optional(),
      /** Plugin stacks: each replaces the spec's `plugins:` list. */
      stack: Named(z.array(z.record(z.string(), z.unknown()))).optional(),
      /** Groups of `--set` overrides (a string or a list of them per value). */
      set: Named(z.union([z.string(), z.array(z.string())])).optional(),
      seed: z.array(z.number().int()).min(1).default([1]),
    })
    .default({ seed: [1] }),
  /** Random search: `samples` draws over `ranges` (spec path → range), a seeded stream. */
  random: z
    .strictObject({
      samples: z.number().int().min(1),
      seed: z.number().int().default(0),
      ranges: z.record(z.string(), Range),
    })
    .optional(),
  /** The baseline row: axis values (except seed), e.g. `{ stack: scratch }`; other axes are paired. */
  baseline: z.record(z.string(), z.string()).optional(),
  /** What the table compares: an eval metric (`accuracy`) of an entry (default: each row's first student). */
  metric: z.string().default('accuracy'),
  role: z.string().optional(),
});
export type SweepFile = z.infer<typeof SweepFile>;

/** One cell of the grid: one run, one job. */
export interface SweepCell {
  /** The row of the table it belongs to: the axis values without the seed (`kd-t2`). */
  row: string;
  /** Axis values of the row (`{ stack: 'kd', set: 't2' }`). */
  axes: Record<string, string>;
  seed: number;
  /** The spec file and `--set` overrides: the cell is `kd run <specFile> --set …`. */
  specFile: string;
  sets: string[];
}

export interface Sweep {
  name: string;
  file: string;
  def: SweepFile;
  cells: SweepCell[];
  /** Rows in grid order, with their axis values. */
  rows: { label: string; axes: Record<string, string> }[];
}

export const AXIS_ORDER = ['spec', 'stack', 'set', 'sample'] as const;

/** Parse and validate a sweep file; every problem is a KdError at its path in the file. */
export function loadSweepFile(file: string): Sweep {
  if (!fs.existsSync(file)) {
    throw new KdError('KD_SWEEP_INVALID', `sweep file ${file} does not exist`, { path: file, fix: 'give the path of a sweep YAML, e.g. examples/sweeps/demo.yaml' });
  }
  let raw: unknown;
  try {
    raw = parseYaml(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new KdError('KD_SPEC_PARSE', `${file} is not valid YAML: ${(e as Error).message}`, { path: file, fix: 'check indentation and quoting near the line shown', cause: e });
  }
  const def = validate(SweepFile, raw);
  const dir = path.dirname(path.resolve(file));
  if (!def.spec && !def.axes.spec) {
    throw new KdError('KD_SWEEP_INVALID', `${file} names no spec`, { path: 'spec', fix: 'add `spec: ../fashion-kd.yaml` (relative to the sweep file) or an axis `axes.spec`' });
  }
  const named = <T>(v: Record<string, T> | T[] | undefined, label: (x: T, i: number) => string): [string, T][] | null =>
    v === undefined ? null : Array.isArray(v) ? v.map((x, i) => [label(x, i), x]) : Object.entries(v);
  const specs = named(def.axes.spec, (f) => path.basename(f, path.extname(f))) ?? [[path.basename(def.spec as string, path.extname(def.spec as string)), def.spec as string]];
  const stacks = named(def.axes.stack, (_, i) => `stack${i + 1}`);
  const sets = named(def.axes.set, (s) => (Array.isArray(s) ? s.join(',') : s));
  const samples = def.random ? randomSamples(def.random) : null;

  type Value = { axis: string; name: string; sets: string[]; file?: string };
  const axes: Value[][] = [];
  axes.push(specs.map(([name, f]) => ({ axis: 'spec', name, sets: [], file: path.resolve(dir, f) })));
  if (stacks) axes.push(stacks.map(([name, plugins]) => ({ axis: 'stack', name, sets: [`plugins=${JSON.stringify(plugins)}`] })));
  if (sets) axes.push(sets.map(([name, s]) => ({ axis: 'set', name, sets: Array.isArray(s) ? s : [s] })));
  if (samples) axes.push(samples.map((s, i) => ({ axis: 'sample', name: `r${i + 1}`, sets: s })));
  // Rows: the product of the axes; the spec axis is part of the label only when it varies.
  let rows: Value[][] = [[]];
  for (const values of axes) rows = rows.flatMap((r) => values.map((v) => [...r, v]));
  const labelled = rows.map((r) => {
    const shown = r.filter((v) => v.axis !== 'spec' || specs.length > 1 || r.length === 1);
    return { label: shown.map((v) => v.name).join('-'), axes: Object.fromEntries(r.map((v) => [v.axis, v.name])), values: r };
  });
  const cells: SweepCell[] = labelled.flatMap(({ label, axes: a, values }) =>
    def.axes.seed.map((seed) => ({
      row: label,
      axes: a,
      seed,
      specFile: values[0].file as string,
      sets: [...def.set, ...values.flatMap((v) => v.sets), `seed=${seed}`],
    })),
  );
  if (def.baseline) {
    for (const [k, v] of Object.entries(def.baseline)) {
      if (!labelled.some((r) => r.axes[k] === v)) {
        throw new KdError('KD_SWEEP_INVALID', `baseline ${k}: ${v} names no value of the sweep's axes`, {
          path: `baseline.${k}`,
          fix: `name one of: ${[...new Set(labelled.map((r) => r.axes[k]).filter(Boolean))].join(', ') || '(no such axis)'}`,
        });
      }
    }
  }
  const name = def.name ?? path.basename(file, path.extname(file));
  return { name, file: path.resolve(file), def, cells, rows: labelled.map(({ label, axes: a }) => ({ label, axes: a })) };
}

/** The baseline row of `row`: its axis values with the baseline's substituted (null without a baseline). */
export function baselineOf(sweep: Pick<Sweep, 'rows'> & { def: Pick<SweepFile, 'baseline'> }, row: string): string | null {
  const b = sweep.def.baseline;
  const r = sweep.rows.find((x) => x.label === row);
  if (!b || !r) return null;
  const want = { ...r.axes, ...b };
  const found = sweep.rows.find((x) => Object.keys(want).every((k) => x.axes[k] === want[k]));
  return found?.label ?? null;
}

/** Random search: `samples` points, each a list of `--set` overrides, from a seeded generator (mulberry32). */
export function randomSamples(r: NonNullable<SweepFile['random']>): string[][] {
  let s = r.seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return Array.from({ length: r.samples }, () =>
    Object.entries(r.ranges).map(([p, range]) => {
      if ('choice' in range) return `${p}=${JSON.stringify(range.choice[Math.floor(next() * range.choice.length)])}`;
      const u = next();
      let v = range.log ? Math.exp(Math.log(range.min) + u * (Math.log(range.max) - Math.log(range.min))) : range.min + u * (range.max - range.min);
      v = range.integer ? Math.round(v) : Number(v.toPrecision(4));
      return `${p}=${v}`;
    }),
  );
}
