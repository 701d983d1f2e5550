import type { Storage } from '@tfkd/kd-core';

function normalise(parts: string[]): string {
  const abs = parts[0]?.startsWith('/') ?? false;
  const out: string[] = [];
  for (const seg of parts.join('/').split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..' && out.length > 0 && out[out.length - 1] !== '..') out.pop();
    else if (seg !== '..' || !abs) out.push(seg);
  }
  return (abs ? '/' : '') + out.join('/') || (abs ? '/' : '.');
}

/**
 * An in-memory `Storage` (a Map of path → text; folders are implied): for browsers without a
 * persistent store, and for tests. Nothing survives the process.
 */
export function memoryStorage(): Storage & { files: Map<string, string> } {
  const files = new Map<string, string>();
  const dirs = new Set<string>(['/']);
  let n = 0;
  const under = (p: string) => (k: string) => k === p || k.startsWith(`${p}/`);
  return {
    files,
    resolve: (base, rel) => (rel.startsWith('/') ? normalise([rel]) : normalise([base, rel])),
    join: (...parts) => normalise(parts),
    dirname: (p) => normalise([p, '..']),
    exists: (p) => files.has(normalise([p])) || dirs.has(normalise([p])),
    readText(p) {
      const t = files.get(normalise([p]));
      if (t === undefined) throw new Error(`ENOENT: no such file '${p}'`);
      return t;
    },
    writeText(p, text) {
      files.set(normalise([p]), text);
    },
    mkdirp(p) {
      const parts = normalise([p]).split('/');
      for (let i = 1; i <= parts.length; i++) dirs.add(parts.slice(0, i).join('/') || '/');
    },
    remove(p) {
      const at = normalise([p]);
      for (const k of [...files.keys()].filter(under(at))) files.delete(k);
      for (const k of [...dirs].filter(under(at))) dirs.delete(k);
    },
    rename(from, to) {
      const a = normalise([from]);
      const b = normalise([to]);
      for (const k of [...files.keys()].filter(under(a))) {
        files.set(b + k.slice(a.length), files.get(k) as string);
        files.delete(k);
      }
      for (const k of [...dirs].filter(under(a))) {
        dirs.add(b + k.slice(a.length));
        dirs.delete(k);
      }
    },
    tempDir(prefix) {
      const d = `/tmp/${prefix}${++n}`;
      dirs.add('/tmp');
      dirs.add(d);
      return d;
    },
    uniqueSuffix: () => `${Date.now()}-${++n}`,
  };
}
