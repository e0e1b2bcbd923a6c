import type { PoolConfig } from '../config/types.js';
import { takesClients, type PoolMemberState } from '../health/pool-state.js';
import type { AdminState } from '../health/types.js';
import type { CutReason, RoutePlan } from './plan.js';

/** A slow-starting member's share of new clients never drops below this. */
const SLOW_START_FLOOR = 0.1;

/** What a pool plan is made of: the pool, its members' pool states and admin states, the mirror's primary. */
export interface PoolView {
  readonly pool: PoolConfig;
  readonly states: ReadonlyMap<string, PoolMemberState>;
  readonly admin: ReadonlyMap<string, AdminState>;
  /** The mirror's primary taking clients now (for `when_empty: primary`); null: none. */
  readonly primary: string | null;
  readonly now: number;
  /** Round-robin position, shared by the pool's successive plans. */
  readonly cursor: { next: number };
}

/**
 * A read pool's plan (docs/routing.md, rule 8): new clients to the members in the pool, least
 * connections (or round-robin) with a slow start; sessions kept while their member is alive
 * (and, unless configured to cut, while it lags or became primary); with no member in the
 * pool, clients held, sent to the primary or refused (`when_empty`).
 */
export class PoolPlan implements RoutePlan {
  readonly open: string | null;
  readonly fallback: string | null;
  readonly refuses: boolean;
  /** Members taking new clients, in config order, with their slow-start weight (0.1..1]. */
  readonly members: readonly { readonly name: string; readonly weight: number }[];

  constructor(readonly view: PoolView) {
    const { pool, states, admin, now } = view;
    this.members = [...states]
      .filter(([m, s]) => takesClients(s) && (admin.get(m) ?? 'enabled') === 'enabled')
      .map(([name, s]) => ({ name, weight: slowStartWeight(s, pool.slowStartMs, now) }));
    const toPrimary = this.members.length === 0 && pool.whenEmpty === 'primary' ? view.primary : null;
    this.open = this.members.length > 0 ? this.members.map((m) => m.name).join(',') : toPrimary;
    this.fallback = toPrimary;
    this.refuses = this.members.length === 0 && pool.whenEmpty === 'refuse';
  }

  /** Least load per weight (ties by round-robin order), or plain round-robin. */
  pick(load?: (member: string) => number): string | null {
    const n = this.members.length;
    if (n === 0) return this.fallback;
    const start = this.view.cursor.next++ % n;
    if (this.view.pool.balance === 'roundrobin' || load === undefined) return this.members[start]!.name;
    let best: string | null = null;
    let bestScore = Infinity;
    for (let i = 0; i < n; i++) {
      const m = this.members[(start + i) % n]!;
      const score = (load(m.name) + 1) / m.weight;
      if (score < bestScore) {
        best = m.name;
        bestScore = score;
      }
    }
    return best;
  }

  keeps(member: string): boolean {
    return this.cutReasonOf(member) === null;
  }

  admits(member: string): boolean {
    return this.members.some((m) => m.name === member) || member === this.fallback;
  }

  cutReason(member: string): CutReason {
    return this.cutReasonOf(member) ?? 'removed';
  }

  private cutReasonOf(member: string): CutReason | null {
    const s = this.view.states.get(member);
    if (s === undefined) return 'removed';
    if (this.view.admin.get(member) === 'disabled') return 'disabled';
    // The primary reached through `when_empty: primary` keeps its sessions.
    if (member === this.view.primary && this.view.pool.whenEmpty === 'primary' && s.status !== 'down')
      return null;
    switch (s.status) {
      case 'down':
        return 'pool_down';
      case 'lagging':
        return this.view.pool.onLag === 'cut' ? 'pool_lag' : null;
      case 'primary':
        return this.view.pool.onPrimary === 'cut' ? 'pool_primary' : null;
      default:
        return null;
    }
  }
}

/** The share of a member that joined `elapsed` ago: growing linearly over the slow start. */
export function slowStartWeight(s: PoolMemberState, slowStartMs: number, now: number): number {
  if (s.inSince === null || slowStartMs <= 0) return 1;
  return Math.min(1, Math.max(SLOW_START_FLOOR, (now - s.inSince) / slowStartMs));
}
