import { Gauge, type Registry } from 'prom-client';
import type { PoolMemberState, PoolMemberStatus } from '../health/pool-state.js';
import type { Logger } from '../log.js';

type L = 'mirror' | 'pool' | 'member';

/** The read pools' own series (the contract's per-mirror series are left as they are). */
interface PoolGauges {
  readonly memberIn: Gauge<L>;
  readonly memberState: Gauge<L | 'state'>;
  readonly lag: Gauge<L>;
  readonly sessions: Gauge<L>;
  readonly held: Gauge<'mirror' | 'pool'>;
}

const GAUGES = new WeakMap<Registry, PoolGauges>();

const STATES: readonly PoolMemberStatus[] = [
  'unknown',
  'joining',
  'in',
  'lagging',
  'not_streaming',
  'out',
  'primary',
  'failing',
  'down',
];

function gauges(registry: Registry): PoolGauges {
  let g = GAUGES.get(registry);
  if (g === undefined) {
    const r = [registry];
    g = {
      memberIn: new Gauge({
        name: 'mirrorlb_pool_member_in',
        help: 'Whether the member takes new clients of the read pool (1/0).',
        labelNames: ['mirror', 'pool', 'member'],
        registers: r,
      }),
      memberState: new Gauge({
        name: 'mirrorlb_pool_member_state',
        help: 'The member\'s read-pool state (1 for the current one); "primary" is not "down".',
        labelNames: ['mirror', 'pool', 'member', 'state'],
        registers: r,
      }),
      lag: new Gauge({
        name: 'mirrorlb_pool_member_lag_bytes',
        help: "Bytes the member's replay is behind the primary, as last measured.",
        labelNames: ['mirror', 'pool', 'member'],
        registers: r,
      }),
      sessions: new Gauge({
        name: 'mirrorlb_pool_sessions',
        help: 'Sessions of the read pool per member.',
        labelNames: ['mirror', 'pool', 'member'],
        registers: r,
      }),
      held: new Gauge({
        name: 'mirrorlb_pool_held_connections',
        help: 'Clients of the read pool held while no member qualifies.',
        labelNames: ['mirror', 'pool'],
        registers: r,
      }),
    };
    GAUGES.set(registry, g);
  }
  return g;
}

/** Metrics and log records of one read pool: a line per state change, with the lag that caused it. */
export class PoolReport {
  private readonly g: PoolGauges;

  constructor(
    registry: Registry,
    private readonly mirror: string,
    private readonly pool: string,
    private readonly log: Logger,
  ) {
    this.g = gauges(registry);
  }

  member(member: string, prev: PoolMemberState, next: PoolMemberState, takes: boolean): void {
    const labels = { mirror: this.mirror, pool: this.pool, member };
    this.g.memberIn.set(labels, takes ? 1 : 0);
    if (next.lagBytes !== null) this.g.lag.set(labels, next.lagBytes);
    for (const s of STATES) this.g.memberState.set({ ...labels, state: s }, s === next.status ? 1 : 0);
    if (prev.status === next.status) return;
    const rec = { member, from: prev.status, to: next.status, lag_bytes: next.lagBytes };
    if (next.status === 'down' || next.status === 'lagging' || next.status === 'not_streaming')
      this.log.warn(rec, 'pool member left');
    else if (next.status === 'in') this.log.info(rec, 'pool member joined');
    else this.log.info(rec, 'pool member changed');
  }

  sessions(member: string, n: number, held: number): void {
    this.g.sessions.set({ mirror: this.mirror, pool: this.pool, member }, n);
    this.g.held.set({ mirror: this.mirror, pool: this.pool }, held);
  }

  /** The pool's series go with it (removed by a reload, or the daemon stopped). */
  removed(members: readonly string[]): void {
    for (const member of members) {
      const labels = { mirror: this.mirror, pool: this.pool, member };
      this.g.memberIn.remove(labels);
      this.g.lag.remove(labels);
      this.g.sessions.remove(labels);
      for (const state of STATES) this.g.memberState.remove({ ...labels, state });
    }
    this.g.held.remove({ mirror: this.mirror, pool: this.pool });
  }
}
