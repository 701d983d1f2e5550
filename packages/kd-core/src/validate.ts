// Validating a value against a zod schema (a spec, a plugin's options): the first issue becomes a
// KdError with its spec path (`plugins[2].with.temperature`) and a fix — a refinement's own, the known
// keys with a did-you-mean, the allowed values or the expected type.
import { z } from 'zod';
import { didYouMean } from './did-you-mean';
import { KdError } from './errors';

/** `plugins[2].with.temperature` from zod's path array. */
export function formatPath(path: readonly PropertyKey[], prefix = ''): string {
  let out = prefix;
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out || '(root)';
}

/** Validate with a zod schema; the first issue becomes a KdError with its spec path. */
export function validate<S extends z.ZodType>(
  schema: S,
  value: unknown,
  opts: { code?: 'KD_SPEC_INVALID' | 'KD_PLUGIN_OPTIONS'; prefix?: string; fix?: string } = {},
): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issues = r.error.issues;
  const first = issues[0];
  const path = formatPath(first.path, opts.prefix);
  const others =
    issues.length > 1
      ? ` (+${issues.length - 1} more: ${issues
          .slice(1, 4)
          .map((i) => formatPath(i.path, opts.prefix))
          .join(', ')})`
      : '';
  throw new KdError(opts.code ?? 'KD_SPEC_INVALID', `${first.message}${others}`, {
    path,
    fix: opts.fix ?? fixFor(first, schema),
  });
}

/** The keys an object schema accepts at `path` (through optional/default/array wrappers), or []. */
function keysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  type Def = {
    type?: string;
    shape?: Record<string, z.ZodType>;
    innerType?: z.ZodType;
    element?: z.ZodType;
    in?: z.ZodType;
    left?: z.ZodType;
  };
  const defOf = (s: z.ZodType | undefined) =>
    (s as unknown as { _zod?: { def?: Def } } | undefined)?._zod?.def;
  const unwrap = (s: z.ZodType | undefined): z.ZodType | undefined => {
    const d = defOf(s);
    if (!d) return s;
    if (d.innerType) return unwrap(d.innerType);
    if (d.type === 'pipe' && d.in) return unwrap(d.in);
    if (d.type === 'intersection' && d.left) return unwrap(d.left);
    return s;
  };
  let at = unwrap(schema);
  for (const p of path) {
    const d = defOf(at);
    if (typeof p === 'number' && d?.element) at = unwrap(d.element);
    else if (typeof p === 'string' && d?.shape) at = unwrap(d.shape[p]);
    else return [];
  }
  const shape = defOf(at)?.shape;
  return shape ? Object.keys(shape) : [];
}

function fixFor(issue: z.core.$ZodIssue, schema: z.ZodType): string {
  // A refinement may carry its own fix (the optimizer's: `delta` beyond `momentum`).
  if (issue.code === 'custom' && typeof issue.params?.fix === 'string') return issue.params.fix;
  switch (issue.code) {
    case 'unrecognized_keys': {
      const known = keysAt(schema, issue.path);
      const hint = issue.keys.map((k) => didYouMean(k, known)).join('');
      const options = known.length ? ` (known: ${known.join(', ')})` : '';
      return `${hint}remove or rename ${issue.keys.map((k) => `'${k}'`).join(', ')}${options}; see the spec reference in docs/spec.md or \`kd list\``;
    }
    case 'invalid_value':
      return `use one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'invalid_type':
      return `give a value of type ${issue.expected}`;
    default:
      return 'correct the value; `kd list` shows every plugin option with its default';
  }
}
