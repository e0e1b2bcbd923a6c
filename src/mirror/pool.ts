import type { FdBudget } from './fd-budget.js';
import type { SessionLog } from './session-log.js';
import { performance } from 'node:perf_hooks';
import type { MirrorConfig, PoolConfig } from '../config/types.js';
import { formatHostPort } from '../config/types.js';
import {
  INITIAL_ROUND_MEMORY,
  observeRound,
  probePool,
  type PoolAnswer,
  type RoundMemory,
} from '../health/pool-probe.js';
import {
  connectFailedState,
  INITIAL_POOL_STATE,
  nextPoolState,
  takesClients,
  type PoolMemberState,
} from '../health/pool-state.js';
import type { AdminState } from '../health/types.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { Resolver } from '../proxy/resolver.js';
import type { PoolMemberSnapshot, PoolSnapshot } from '../snapshot.js';
import { PoolPlan } from './pool-plan.js';
import { PoolReport } from './pool-report.js';
import { Router } from './router.js';
import type { RouteEffect } from './plan.js';

export interface PoolDeps {
  readonly metrics: Metrics;
  readonly resolver: Resolver;
  /** The mirror's logger. */
  readonly log: Logger;
  readonly sessionLog: SessionLog;
  readonly budget?: FdBudget;
}

/** What a pool reads of its mirror: the primary taking clients and the members' admin states. */
export interface PoolContext {
  primary: string | null;
  readonly admin: ReadonlyMap<string, AdminState>;
}

/**
 * One read pool of a mirror at run time: its pool checks (one round over every member each
 * interval, a round at once after a failed connect), each member's pool state (the pure
 * reducer in pool-state.ts) and its own Router on its own listener, handed a PoolPlan after
 * every round and every change of the mirror's primary or admin states. Owned by its Mirror.
 */
export class Pool {
  private pool: PoolConfig;
  private mirror: MirrorConfig;
  private readonly router: Router;
  private readonly report: PoolReport;
  private readonly log: Logger;
  private states = new Map<string, PoolMemberState>();
  private readonly cursor = { next: 0 };
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private again = false;
  private stopped = false;
  /** Whether names match and the last primary seen, from round to round (pool-probe.ts). */
  private memory: RoundMemory = INITIAL_ROUND_MEMORY;

  constructor(
    pool: PoolConfig,
    mirror: MirrorConfig,
    private readonly ctx: PoolContext,
    deps: PoolDeps,
  ) {
    this.pool = pool;
    this.mirror = mirror;
    this.log = deps.log.child({ pool: pool.name });
    for (const m of poolMembers(mirror, pool)) this.states.set(m.name, INITIAL_POOL_STATE);
    this.report = new PoolReport(deps.metrics.registry, mirror.name, pool.name, this.log);
    this.router = new Router(routeConfig(mirror, pool), this.plan(), {
      metrics: deps.metrics,
      resolver: deps.resolver,
      log: this.log,
      owner: { connectFailed: (member) => this.connectFailed(member) },
      sessionLog: deps.sessionLog,
      budget: deps.budget,
    });
  }

  get name(): string {
    return this.pool.name;
  }

  get config(): PoolConfig {
    return this.pool;
  }

  listen(): Promise<void> {
    return this.router.listen();
  }

  start(): void {
    this.router.serve();
    const a = this.router.address();
    this.log.info(
      { listen: formatHostPort(a ? { host: this.pool.listen.host, port: a.port } : this.pool.listen) },
      'pool listening',
    );
    this.stopped = false;
    void this.round();
  }

  /** Reload, same listener: members kept by name keep their pool state. */
  update(pool: PoolConfig, mirror: MirrorConfig): RouteEffect {
    const old = this.states;
    this.states = new Map(
      poolMembers(mirror, pool).map((m) => [
        m.name,
        this.pool.checks[m.name] === pool.checks[m.name]
          ? (old.get(m.name) ?? INITIAL_POOL_STATE)
          : INITIAL_POOL_STATE,
      ]),
    );
    this.pool = pool;
    this.mirror = mirror;
    const effect = this.router.update(routeConfig(mirror, pool), this.plan());
    this.kick();
    return effect;
  }

  /** The mirror's primary or a member's admin state changed. */
  contextChanged(): RouteEffect {
    return this.apply();
  }

  /** A client's connect to `member` failed: it takes no new client until a check says so; checked now. */
  private connectFailed(member: string): void {
    const prev = this.states.get(member);
    if (prev !== undefined) {
      const next = connectFailedState(prev, performance.now());
      if (next !== prev) {
        this.states.set(member, next);
        this.report.member(member, prev, next, false);
        this.apply();
      }
    }
    this.kick();
  }

  /** A round now (or right after the one in flight). */
  kick(): void {
    if (this.running) this.again = true;
    else void this.round();
  }

  private async round(): Promise<void> {
    if (this.stopped) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.running = true;
    const { timeoutMs, intervalMs } = this.mirror.health;
    const members = poolMembers(this.mirror, this.pool);
    const answers = await Promise.all(
      members.map((m) => probePool(this.pool.checks[m.name]!, m.address, m.tls, timeoutMs)),
    );
    this.running = false;
    if (this.stopped) return;
    const seen = new Map<string, PoolAnswer>(members.map((m, i) => [m.name, answers[i]!]));
    const now = performance.now();
    const round = observeRound(seen, this.memory);
    this.memory = round.memory;
    for (const [member, obs] of round.observations) {
      const prev = this.states.get(member);
      if (prev === undefined) continue;
      const next = nextPoolState(prev, obs, this.pool, now);
      this.states.set(member, next);
      this.report.member(member, prev, next, takesClients(next));
    }
    this.apply();
    if (this.again) {
      this.again = false;
      return this.round();
    }
    this.timer = setTimeout(() => void this.round(), intervalMs);
  }

  private plan(): PoolPlan {
    return new PoolPlan({
      pool: this.pool,
      states: this.states,
      admin: this.ctx.admin,
      primary: this.ctx.primary,
      now: performance.now(),
      cursor: this.cursor,
    });
  }

  private apply(): RouteEffect {
    const effect = this.router.apply(this.plan());
    for (const m of poolMembers(this.mirror, this.pool))
      this.report.sessions(m.name, this.router.sessionCount(m.name), this.router.heldCount());
    return effect;
  }

  /** Whether a new client is sent somewhere now (GET /readyz?mirror=&pool=). */
  get accepting(): boolean {
    return this.plan().open !== null;
  }

  get bound(): boolean {
    return this.router.address() !== null;
  }

  snapshot(): PoolSnapshot {
    const a = this.router.address();
    const plan = this.plan();
    return Object.freeze({
      name: this.pool.name,
      listen: a && Object.freeze({ host: a.address, port: a.port }),
      open: plan.open,
      sessions: this.router.sessionCount(),
      held: this.router.heldCount(),
      members: Object.freeze(
        poolMembers(this.mirror, this.pool).map((m): PoolMemberSnapshot => {
          const s = this.states.get(m.name) ?? INITIAL_POOL_STATE;
          return Object.freeze({
            name: m.name,
            state: s.status,
            takesClients: plan.members.some((x) => x.name === m.name),
            lagBytes: s.lagBytes,
            sessions: this.router.sessionCount(m.name),
          });
        }),
      ),
    });
  }

  flushBytes(): void {
    this.router.flushBytes();
  }

  sessionCount(): number {
    return this.router.sessionCount();
  }

  /** No more checks, no more clients; sessions are left to `drain`. */
  close(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.router.close();
  }

  drain(timeoutMs: number): Promise<void> {
    return this.router.drain(timeoutMs);
  }

  /** Removed (by a reload, or with its mirror): closed, every session cut, its series gone. */
  remove(): number {
    this.close();
    const cut = this.router.cutAll('removed');
    this.report.removed(poolMembers(this.mirror, this.pool).map((m) => m.name));
    return cut;
  }
}

/** The members with a pool check: the pool's members (the others never take its clients). */
function poolMembers(mirror: MirrorConfig, pool: PoolConfig): MirrorConfig['members'] {
  return mirror.members.filter((m) => pool.checks[m.name] !== undefined);
}

/** The pool's route: the mirror's proxy settings on the pool's listener, its series as `mirror/pool`. */
function routeConfig(mirror: MirrorConfig, pool: PoolConfig): MirrorConfig {
  return { ...mirror, name: `${mirror.name}/${pool.name}`, listen: pool.listen, pools: [] };
}
