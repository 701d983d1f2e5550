/**
 * Teacher-cost accounting: per role, images forwarded and back-propagated, FLOPs per image, cache
 * hits, and wall seconds per phase. Backward is counted as 2× forward FLOPs (the usual estimate, and
 * the one in the UNIX cost formula).
 */
export interface RoleCost {
  flopsPerImage: number;
  forwardImages: number;
  backwardImages: number;
  cacheHits: number;
}

export interface LedgerSnapshot {
  roles: Record<string, RoleCost & { forwardFlops: number; backwardFlops: number; totalFlops: number }>;
  phases: Record<string, { seconds: number; steps: number }>;
  totalFlops: number;
}

export class CostLedger {
  private readonly roles = new Map<string, RoleCost>();
  private readonly phases = new Map<string, { seconds: number; steps: number }>();

  addRole(name: string, flopsPerImage: number): void {
    this.roles.set(name, { flopsPerImage, forwardImages: 0, backwardImages: 0, cacheHits: 0 });
  }

  forward(role: string, images: number): void {
    this.get(role).forwardImages += images;
  }

  backward(role: string, images: number): void {
    this.get(role).backwardImages += images;
  }

  cacheHit(role: string, images: number): void {
    this.get(role).cacheHits += images;
  }

  phaseTime(phase: string, seconds: number, steps: number): void {
    const p = this.phases.get(phase) ?? { seconds: 0, steps: 0 };
    p.seconds += seconds;
    p.steps += steps;
    this.phases.set(phase, p);
  }

  role(name: string): RoleCost {
    return { ...this.get(name) };
  }

  snapshot(): LedgerSnapshot {
    const roles: LedgerSnapshot['roles'] = {};
    let totalFlops = 0;
    for (const [name, r] of this.roles) {
      const forwardFlops = r.forwardImages * r.flopsPerImage;
      const backwardFlops = 2 * r.backwardImages * r.flopsPerImage;
      roles[name] = { ...r, forwardFlops, backwardFlops, totalFlops: forwardFlops + backwardFlops };
      totalFlops += forwardFlops + backwardFlops;
    }
    return { roles, phases: Object.fromEntries(this.phases), totalFlops };
  }

  getState(): unknown {
    return { roles: [...this.roles], phases: [...this.phases] };
  }

  setState(state: unknown): void {
    const s = state as { roles: [string, RoleCost][]; phases: [string, { seconds: number; steps: number }][] };
    this.roles.clear();
    this.phases.clear();
    for (const [k, v] of s.roles) this.roles.set(k, { ...v });
    for (const [k, v] of s.phases) this.phases.set(k, { ...v });
  }

  private get(role: string): RoleCost {
    const r = this.roles.get(role);
    if (!r) throw new Error(`cost ledger: unknown role '${role}'`);
    return r;
  }
}

/**
 * UNIX's predicted cost ratio against plain KD as the UNIXKD README computes it:
 * `R = k/N + F_s / (F_t + 2 F_s)` — the student's uncertainty forward over all N is the added
 * cost, teacher and student then run on k, and a student training pass counts as 2·F_s (backward ≈
 * forward). This ledger counts backward as 2× forward, so a ratio of two ledgers comes out as
 * `k/N + F_s / (F_t + 3 F_s)` (samplers-unix `ledgerCostRatio`); docs/results.md shows both.
 */
export function unixCostRatio(k: number, n: number, teacherFlops: number, studentFlops: number): number {
  return k / n + studentFlops / (teacherFlops + 2 * studentFlops);
}
