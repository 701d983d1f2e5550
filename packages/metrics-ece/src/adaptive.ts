import type { BinStat } from './accumulator';

/**
 * Equal-mass (adaptive) bins of the confidences.
 *
 * Sort the n confidences ascending, c(1) ≤ … ≤ c(n). Bin b (1-based, b ≤ B) ends at rank
 * r_b = ceil(b·n / B) and its upper edge is hi_b = c(r_b); it holds the samples with
 * hi_(b−1) < c ≤ hi_b (hi_0 = −∞, shown as lo = 0). So bins hold ⌈n/B⌉ or ⌊n/B⌋ samples, the larger
 * ones first (as numpy.array_split), and ties are never split: every sample equal to an edge joins
 * that edge's bin, the next bin starts after the tie, and a bin left with no sample is dropped.
 * The result depends on the data only (not on their order).
 */
export function adaptiveBinning(confs: readonly number[], hits: readonly number[], bins: number): BinStat[] {
  const n = confs.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => confs[a] - confs[b] || a - b);
  const out: BinStat[] = [];
  let start = 0;
  let lo = 0;
  for (let b = 1; b <= bins && start < n; b++) {
    const rank = Math.floor((b * n + bins - 1) / bins);
    if (rank <= start) continue;
    const hi = confs[order[rank - 1]];
    let end = rank;
    while (end < n && confs[order[end]] === hi) end++;
    let confSum = 0;
    let hitSum = 0;
    for (let i = start; i < end; i++) {
      confSum += confs[order[i]];
      hitSum += hits[order[i]];
    }
    const count = end - start;
    const accuracy = hitSum / count;
    const confidence = confSum / count;
    out.push({ lo, hi, count, accuracy, confidence, gap: Math.abs(accuracy - confidence) });
    lo = hi;
    start = end;
  }
  return out;
}
