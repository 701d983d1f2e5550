import { computeCalibration } from '@tfkd/kd-core';
import { escapeXml, formatCount, reliabilityDiagramSpec, reliabilityDiagramSvg } from './diagram';

describe('reliabilityDiagramSvg', () => {
  // bins of 5: 0.9 (×3, 2 right) → bin 4 (0.8, 1]; 0.7 (×1, wrong) → bin 3 (0.6, 0.8]
  const r = computeCalibration(
    [
      [0.1, 0.9],
      [0.1, 0.9],
      [0.1, 0.9],
      [0.3, 0.7],
    ],
    [1, 1, 0, 0],
    { bins: 5 },
  );
  const svg = reliabilityDiagramSvg(r, { title: 'Student <after KD> & T' });

  it('draws one bar per non-empty bin at the height of its accuracy, and shades the gap', () => {
    // plot area: x from 64 to 460 (396 px), y from 44 (1.0) to 436 (0.0) (392 px)
    const bars = svg.slice(svg.indexOf('<g class="bars">'), svg.indexOf('<g class="gaps">'));
    expect(bars.match(/<rect/g)).toHaveLength(2);
    // bin 3: x = 64 + 0.6·396 = 301.6, accuracy 0 → height 0; bin 4: x = 380.8, accuracy 2/3 → y = 44 + 392/3
    expect(bars).toContain('x="301.60" y="436.00" width="79.20" height="0.00"');
    expect(bars).toContain('x="380.80" y="174.67" width="79.20" height="261.33"');
    const gaps = svg.slice(svg.indexOf('<g class="gaps">'), svg.indexOf('<g class="counts"'));
    // bin 4 gap from 2/3 up to 0.9 (float32 0.9 → y = 44 + 0.1·392 ≈ 83.20)
    expect(gaps).toContain('x="380.80" y="83.20" width="79.20" height="91.47"');
  });

  it('writes the bin counts below the bars, the ECE, title and axis labels', () => {
    const counts = svg.slice(svg.indexOf('<g class="counts"'), svg.indexOf('</g>', svg.indexOf('<g class="counts"')));
    expect([...counts.matchAll(/>(\d+)<\/text>/g)].map((m) => m[1])).toEqual(['0', '0', '0', '1', '3']);
    // ECE = (1·0.7 + 3·|2/3 − 0.9|)/4 = (0.7 + 0.7)/4 = 0.35
    expect(r.ece).toBeCloseTo(0.35, 6);
    expect(svg).toContain('ECE = 35.00%');
    expect(svg).toContain('MCE = 70.00%');
    expect(svg).toContain('Student &lt;after KD&gt; &amp; T');
    expect(svg).toContain('>Confidence (max softmax)</text>');
    expect(svg).toContain('>Accuracy</text>');
    expect(svg).toContain('stroke-dasharray');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
  });

  it('formats large counts and escapes XML', () => {
    expect(formatCount(9999)).toBe('9999');
    expect(formatCount(12345)).toBe('12.3k');
    expect(formatCount(250000)).toBe('250k');
    expect(formatCount(2500000)).toBe('2.5M');
    expect(escapeXml(`a<b>"c"&'d'`)).toBe('a&lt;b&gt;&quot;c&quot;&amp;&apos;d&apos;');
  });
});

describe('reliabilityDiagramSpec (the same design as a Vega-Lite spec; the CLI renders it with vega)', () => {
  const r = computeCalibration(
    [
      [0.1, 0.9],
      [0.1, 0.9],
      [0.1, 0.9],
      [0.3, 0.7],
    ],
    [1, 1, 0, 0],
    { bins: 5 },
  );
  type Layer = { data?: { values: Record<string, unknown>[] }; mark: { type: string; fillOpacity?: number; strokeDash?: number[] }; encoding: Record<string, { axis?: { title: string; values: number[] }; datum?: unknown; value?: string }> };
  const spec = reliabilityDiagramSpec(r, { title: 'Student <after KD>' }) as { title: { text: string }; layer: Layer[] };

  it('bars and gaps for the non-empty bins only, the diagonal, a count under every bin', () => {
    const [bars, gaps, diagonal, counts] = spec.layer;
    expect(bars.mark.type).toBe('rect');
    // float32 bin edges
    expect(bars.data?.values.map((b) => [b.lo, b.accuracy, b.count])).toEqual([
      [expect.closeTo(0.6, 6), 0, 1],
      [expect.closeTo(0.8, 6), 2 / 3, 3],
    ]);
    expect(gaps.mark).toMatchObject({ type: 'rect', fillOpacity: 0.35 });
    expect(gaps.data?.values.map((b) => [b.top, b.bottom])).toEqual([
      [0.7, 0],
      [0.9, 2 / 3],
    ].map(([a, b]) => [expect.closeTo(a, 6), expect.closeTo(b, 6)]));
    expect(diagonal.mark).toMatchObject({ type: 'line', strokeDash: [5, 4] });
    expect(counts.data?.values.map((b) => b.label)).toEqual(['0', '0', '0', '1', '3']);
  });

  it('axis titles and ticks, the title unescaped (vega escapes), ECE / MCE / n in the corner', () => {
    expect(spec.title.text).toBe('Student <after KD>');
    expect(spec.layer[0].encoding.x.axis).toMatchObject({ title: 'Confidence (max softmax)', values: [0, 0.2, 0.4, 0.6, 0.8, 1] });
    expect(spec.layer[0].encoding.y.axis).toMatchObject({ title: 'Accuracy' });
    const corner = spec.layer.map((l) => l.encoding.text?.value).filter(Boolean);
    expect(corner).toEqual(['n', `ECE = ${(100 * r.ece).toFixed(2)}%`, `MCE = ${(100 * r.mce).toFixed(2)}%`, 'n = 4']);
  });
});
