import type { Decision, DemoteReason } from '../health/types.js';

/** `pool_*`: a read pool's member died, left for lag, or became primary (pool-plan.ts). */
export type CutReason = DemoteReason | 'removed' | 'shutdown' | 'pool_down' | 'pool_lag' | 'pool_primary';

/**
 * What a route does with clients under one decision: where a new client goes, whose sessions
 * and connects stay, where a client still waiting at its hold timeout goes. The router acts
 * on a plan and knows nothing of how it was decided (a mirror's primary choice today; a read
 * pool's balancing is another plan over the same router).
 */
export interface RoutePlan {
  /** What new clients are sent to now (null: they wait); a change of it releases the held ones. */
  readonly open: string | null;
  /**
   * The member a new client is sent to now; null: it waits (held). `load` gives the router's
   * sessions plus connects in flight per member (a read pool balances by it).
   */
  pick(load?: (member: string) => number): string | null;
  /** With nothing open: true when a new client is refused at once instead of held. */
  readonly refuses?: boolean;
  /** Whether sessions and connects to `member` stay under this plan. */
  keeps(member: string): boolean;
  /** Whether a connect to `member` that completes now may become a session. */
  admits(member: string): boolean;
  /** Where a client goes at its hold timeout while nothing is open; null: it is closed. */
  readonly fallback: string | null;
  /** Why the sessions of a member that is not kept are cut (metric label, log). */
  cutReason(member: string): CutReason;
}

/** The primary route's plan: everything follows the mirror's decision (docs/routing.md). */
export class PrimaryPlan implements RoutePlan {
  readonly open: string | null;
  readonly fallback: string | null;

  constructor(readonly decision: Decision) {
    this.open = decision.accepting ? decision.primary : null;
    this.fallback = decision.accepting ? decision.primary : decision.fallback;
  }

  pick(): string | null {
    return this.open;
  }

  keeps(member: string): boolean {
    return member === this.decision.primary;
  }

  admits(member: string): boolean {
    return member === this.decision.primary || member === this.decision.fallback;
  }

  cutReason(member: string): CutReason {
    return this.decision.cutReason[member] ?? 'removed';
  }
}

/** What one plan (or reload) did to the clients: returned by `apply` and `update`. */
export interface RouteEffect {
  /** Sessions closed, in all and per member. */
  readonly cut: number;
  readonly cutBy: Readonly<Record<string, number>>;
  /** Sessions the old member never answered, sent on to where new clients go (not cut). */
  readonly moved: number;
  /** Held clients released. */
  readonly released: number;
}

export const NO_EFFECT: RouteEffect = Object.freeze({
  cut: 0,
  cutBy: Object.freeze({}),
  moved: 0,
  released: 0,
});

export type MutableEffect = { -readonly [K in keyof RouteEffect]: RouteEffect[K] } & {
  cutBy: Record<string, number>;
};

export function newEffect(): MutableEffect {
  return { cut: 0, cutBy: {}, moved: 0, released: 0 };
}
