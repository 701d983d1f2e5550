import { unixCostRatio } from '@tfkd/kd-core';

/**
 * UNIX's predicted cost against plain KD, R = k/N + F_s/(F_t + 2·F_s) (kd-core's `unixCostRatio`,
 * the paper's formula; it reproduces the "Computation" column of the UNIXKD README, e.g.
 * k/N = 48/64 and F_t/F_s = 38.17 → 77.49%). The paper counts a student training pass on one image
 * as 2·F_s; kd-core's ledger counts backward as 2× forward (3·F_s per trained image), so the ratio
 * of two ledgers' `totalFlops` is `ledgerCostRatio`, not this.
 */
export const predictedTeacherCostRatio: (k: number, n: number, teacherFlops: number, studentFlops: number) => number = unixCostRatio;

/**
 * The same ratio as kd-core's ledger measures it (forward F per image, backward 2F): UNIX spends
 * N·F_s (uncertainty) + k·(F_t + 3·F_s) per batch where plain KD spends N·(F_t + 3·F_s).
 */
export function ledgerCostRatio(k: number, n: number, teacherFlops: number, studentFlops: number): number {
  return k / n + studentFlops / (teacherFlops + 3 * studentFlops);
}
