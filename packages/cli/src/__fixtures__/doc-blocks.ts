import * as fs from 'fs';

/**
 * The fenced code blocks of a Markdown file, for the tests that run them (docs-snippets.spec.ts,
 * registry.spec.ts). The convention, written in the Markdown itself:
 *
 * - ```` ```ts file=src/cosine-kd.ts ````: the block is (part of) that file of the doc's package;
 *   blocks naming the same file are concatenated in order. `file=` works for yaml blocks too.
 * - `<!-- docs-test: skip <why> -->` on the line before a fence: the block is illustrative (or too
 *   costly) and is not run; the reason is required.
 * - `<!-- docs-test: registry <step> -->`: the block is run by registry.spec.ts, against packages
 *   published to a local registry, as the step named (one of REGISTRY_STEPS).
 * - anything else runs in docs-snippets.spec.ts: ts blocks are type-checked and tested as a package,
 *   yaml blocks planned by `kd run --plan`, bash blocks run by bash (non-zero exit fails).
 */
export interface DocBlock {
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  /** `file=` of the info string, if any. */
  file?: string;
  marker?: { kind: 'skip' | 'registry'; arg: string };
  code: string;
}

/** The steps registry.spec.ts runs, by the name their `<!-- docs-test: registry NAME -->` gives. */
export const REGISTRY_STEPS = ['author', 'host', 'install'] as const;

export function docBlocks(file: string): DocBlock[] {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const blocks: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(```+)(\S*)(.*)$/.exec(lines[i]);
    if (!open) continue;
    const [, indent, fence, lang, rest] = open;
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && lines[j].trim() !== fence) {
      body.push(lines[j].startsWith(indent) ? lines[j].slice(indent.length) : lines[j]);
      j++;
    }
    if (j >= lines.length) throw new Error(`${file}:${i + 1}: unclosed code fence`);
    let k = i - 1;
    while (k >= 0 && lines[k].trim() === '') k--;
    const m = k >= 0 ? /^\s*<!--\s*docs-test:\s*(skip|registry)\b\s*(.*?)\s*-->\s*$/.exec(lines[k]) : null;
    const fileAttr = /(?:^|\s)file=(\S+)/.exec(rest)?.[1];
    blocks.push({
      line: i + 1,
      lang,
      ...(fileAttr ? { file: fileAttr } : {}),
      ...(m ? { marker: { kind: m[1] as 'skip' | 'registry', arg: m[2].replace(/^[—–-]\s*/, '') } } : {}),
      code: body.join('\n') + '\n',
    });
    i = j;
  }
  return blocks;
}

/** The one block marked `<!-- docs-test: registry <step> -->`. */
export function registryBlock(file: string, step: (typeof REGISTRY_STEPS)[number]): DocBlock {
  const found = docBlocks(file).filter((b) => b.marker?.kind === 'registry' && b.marker.arg.split(/\s/)[0] === step);
  if (found.length !== 1) throw new Error(`${file}: ${found.length} blocks marked 'docs-test: registry ${step}' (one expected)`);
  return found[0];
}
