import { computeCalibration } from '@tfkd/kd-core';
import { escapeXml, formatCount, reliabilityDiagramSvg } from './diagram';

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
