/**
 * Vega-Lite specs to SVG in Node (vega 5 + vega-lite 5, their CommonJS builds: no canvas, no
 * browser), and a small reader of SVG/XML text that the specs use to check what a figure shows.
 * Every figure `kd` writes goes through `renderSvg`; the specs themselves are plain JSON, so the same
 * spec renders interactively in a browser with vega-embed.
 */
import * as vega from 'vega';
import * as vl from 'vega-lite';

/** A Vega-Lite spec as plain JSON (the builders in charts.ts and metrics-ece's diagram.ts). */
export type VegaLiteSpec = Record<string, unknown>;

/** Compile a Vega-Lite spec and render it headlessly to a standalone SVG document. */
export async function renderSvg(spec: VegaLiteSpec): Promise<string> {
  const compiled = vl.compile(spec as unknown as vl.TopLevelSpec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    return svg.endsWith('\n') ? svg : `${svg}\n`;
  } finally {
    view.finalize();
  }
}

/** One element of a parsed SVG: its tag, attributes, children and the text directly inside it. */
export interface SvgNode {
  tag: string;
  attrs: Record<string, string>;
  children: SvgNode[];
  text: string;
}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
const unescape = (s: string) =>
  s.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (m, e: string) =>
    e[0] === '#' ? String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : Number(e.slice(1))) : (ENTITIES[e] ?? m),
  );

/**
 * Parse well-formed SVG (XML without DTDs) into a tree; throws on a mismatched or unclosed tag, so a
 * broken figure fails the test that reads it. Comments, processing instructions and CDATA are skipped.
 */
export function parseSvg(xml: string): SvgNode {
  const root: SvgNode = { tag: '#document', attrs: {}, children: [], text: '' };
  const stack: SvgNode[] = [root];
  const re = /<!--[\s\S]*?-->|<\?[\s\S]*?\?>|<!\[CDATA\[([\s\S]*?)\]\]>|<!DOCTYPE[^>]*>|<\/([\w:.-]+)\s*>|<([\w:.-]+)((?:\s+[\w:.-]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>|([^<]+)/g;
  let m: RegExpExecArray | null;
  let consumed = 0;
  while ((m = re.exec(xml)) !== null) {
    if (m.index !== consumed) throw new Error(`parseSvg: unexpected text at ${consumed}: ${xml.slice(consumed, consumed + 40)}`);
    consumed = re.lastIndex;
    const top = stack[stack.length - 1];
    if (m[1] !== undefined) top.text += m[1];
    else if (m[2] !== undefined) {
      if (top.tag !== m[2]) throw new Error(`parseSvg: </${m[2]}> closes <${top.tag}>`);
      stack.pop();
    } else if (m[3] !== undefined) {
      const attrs: Record<string, string> = {};
      for (const a of m[4].matchAll(/([\w:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) attrs[a[1]] = unescape(a[2] ?? a[3]);
      const node: SvgNode = { tag: m[3], attrs, children: [], text: '' };
      top.children.push(node);
      if (m[5] !== '/') stack.push(node);
    } else if (m[6] !== undefined) top.text += unescape(m[6]);
  }
  if (consumed !== xml.length) throw new Error(`parseSvg: unparsed input at ${consumed}`);
  if (stack.length !== 1) throw new Error(`parseSvg: <${stack[stack.length - 1].tag}> is not closed`);
  return root;
}

/** Every node under `node` (itself included) that `pred` accepts, in document order. */
export function findAll(node: SvgNode, pred: (n: SvgNode) => boolean): SvgNode[] {
  const out: SvgNode[] = [];
  const walk = (n: SvgNode) => {
    if (pred(n)) out.push(n);
    n.children.forEach(walk);
  };
  walk(node);
  return out;
}

/** The text of a node and all its descendants. */
export function textOf(node: SvgNode): string {
  return node.text + node.children.map(textOf).join('');
}

export const hasClass = (n: SvgNode, c: string) => (n.attrs.class ?? '').split(/\s+/).includes(c);
