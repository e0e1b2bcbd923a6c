import type { MirrorConfig } from '../config/types.js';
import { formatHostPort } from '../config/types.js';
import type { EventLog } from '../events.js';
import { MirrorMonitor, type MonitorChange, type MonitorSink, type ProbeRunner } from '../health/monitor.js';
import type { AdminState, MemberHealth, ProbeResult } from '../health/types.js';
import type { Logger } from '../log.js';
import type { FdBudget } from './fd-budget.js';
import type { SessionLog } from './session-log.js';
import type { Metrics } from '../metrics.js';
import type { Resolver } from '../proxy/resolver.js';
import { freezeSnapshot, type MirrorSnapshot } from '../snapshot.js';
import { Reporter, type AdminAction } from './reporter.js';
import { NO_EFFECT, PrimaryPlan, type RouteEffect } from './plan.js';
import { Pool, type PoolContext } from './pool.js';
import { Router, type RouterOwner } from './router.js';

export interface MirrorDeps {
  readonly metrics: Metrics;
  readonly resolver: Resolver;
  readonly prober: ProbeRunner;
  readonly events: EventLog;
  /** The daemon's logger; the mirror's records carry `mirror`. */
  readonly log: Logger;
  /** Several data-plane loops: the route that serves on all of them (src/workers/); else a Router here. */
  readonly route?: (config: MirrorConfig, plan: PrimaryPlan, owner: RouterOwner, log: Logger) => Route;
  /** The daemon's `log.sessions` switch (session-log.ts). */
  readonly sessionLog: SessionLog;
  /** The process's descriptor ceiling (fd-budget.ts). */
  readonly budget?: FdBudget;
}

/**
 * What a route did with a plan: at once (a Router on this thread), or once every data-plane
 * loop has acted on it (the loops' answers added up), so the reports carry real counts.
 */
export type Applied = RouteEffect | Promise<RouteEffect>;

/** What a mirror asks of its route: a Router on this thread, or one served by every loop. */
export type Route = Pick<
  Router,
  | 'listen'
  | 'serve'
  | 'address'
  | 'fastAccept'
  | 'close'
  | 'drain'
  | 'cutAll'
  | 'sessionCount'
  | 'heldCount'
  | 'flushBytes'
> & {
  apply(plan: PrimaryPlan): Applied;
  update(config: MirrorConfig, plan: PrimaryPlan): Applied;
};

/**
 * One mirror at run time, as one unit: its health monitor, its router (the listener and its
 * clients) and its reporter. Every step of the monitor, every admin action and every failed
 * connect goes through here, by one explicit call each:
 *
 *   monitor → `changed(step)` → router.apply(plan) → reporter (with what the router did)
 *   router  → `connectFailed(member)` → monitor.kick()
 *
 * A reload replaces the monitor inside the unit (`update`), so neither the router nor the
 * daemon ever holds a monitor that may be stale. Owned by the daemon (the collection).
 */
export class Mirror implements MonitorSink, RouterOwner {
  private cfg: MirrorConfig;
  private monitor: MirrorMonitor;
  private readonly router: Route;
  private readonly reporter: Reporter;
  private readonly log: Logger;
  /**
   * The check before the latest probe's (its member's previous lastCheckAt) and when the
   * latest ended: a role change its step reports happened in between.
   */
  private lastProbe = { previousCheckAt: null as number | null, at: 0 };
  /** Reports waiting for a route's effect, so they are made in the order of their steps. */
  private reporting: Promise<void> | null = null;
  /** Its read pools by name, and what they read of the mirror (primary, admin states). */
  private pools = new Map<string, Pool>();
  private readonly poolContext: PoolContext & { admin: Map<string, AdminState> } = {
    primary: null,
    admin: new Map(),
  };

  constructor(
    config: MirrorConfig,
    private readonly deps: MirrorDeps,
  ) {
    this.cfg = config;
    this.log = deps.log.child({ mirror: config.name });
    this.monitor = new MirrorMonitor(config, deps.prober, this);
    const plan = new PrimaryPlan(this.monitor.decision);
    this.router = deps.route
      ? deps.route(config, plan, this, this.log)
      : new Router(config, plan, {
          metrics: deps.metrics,
          resolver: deps.resolver,
          log: this.log,
          owner: this,
          sessionLog: deps.sessionLog,
          budget: deps.budget,
        });
    this.reporter = new Reporter(config, deps.metrics, this.log, deps.events);
    this.syncPoolContext();
    for (const p of config.pools) this.pools.set(p.name, this.newPool(p.name, config));
  }

  private newPool(name: string, config: MirrorConfig): Pool {
    const p = config.pools.find((x) => x.name === name)!;
    return new Pool(p, config, this.poolContext, {
      metrics: this.deps.metrics,
      resolver: this.deps.resolver,
      log: this.log,
      sessionLog: this.deps.sessionLog,
      budget: this.deps.budget,
    });
  }

  /** The primary and admin states the pools read, from the monitor now. */
  private syncPoolContext(): void {
    const d = this.monitor.decision;
    this.poolContext.primary = d.accepting ? d.primary : null;
    this.poolContext.admin.clear();
    for (const m of this.monitor.members()) this.poolContext.admin.set(m.config.name, m.admin);
  }

  /** Every pool acts on the mirror's new primary or admin states. */
  private poolsChanged(): void {
    this.syncPoolContext();
    for (const p of this.pools.values()) p.contextChanged();
  }

  get config(): MirrorConfig {
    return this.cfg;
  }

  /** Binds the listener, not serving yet (no probes, no metric series): a reload may still refuse. */
  async listen(): Promise<void> {
    await this.router.listen();
    try {
      for (const p of this.pools.values()) await p.listen();
    } catch (err) {
      this.router.close();
      for (const p of this.pools.values()) p.close();
      throw err;
    }
  }

  /**
   * A reload: binds the listeners of pools this mirror does not have yet, before anything is
   * committed; returns the commit (used by `update`) and the undo (closes them).
   */
  async bindPools(config: MirrorConfig): Promise<{ undo(): void }> {
    const fresh: Pool[] = [];
    try {
      for (const p of config.pools) {
        const running = this.pools.get(p.name);
        if (running && formatHostPort(running.config.listen) === formatHostPort(p.listen)) continue;
        const pool = this.newPool(p.name, config);
        fresh.push(pool);
        await pool.listen();
      }
    } catch (err) {
      for (const p of fresh) p.close();
      throw err;
    }
    this.boundPools = fresh;
    return {
      undo: () => {
        this.boundPools = [];
        for (const p of fresh) p.close();
      },
    };
  }

  /** Pools bound by bindPools for the update to come. */
  private boundPools: Pool[] = [];

  /** Serves the bound listener and starts probing: the mirror is one of the daemon's from now on. */
  start(): void {
    this.router.serve();
    for (const p of this.pools.values()) p.start();
    const a = this.router.address();
    this.log.info(
      { listen: formatHostPort(a ? { host: this.cfg.listen.host, port: a.port } : this.cfg.listen) },
      'listening',
    );
    this.begin();
  }

  /**
   * A reload changed this mirror but not its listener. Same name at the same address is the
   * same member, even when its check URLs changed (a Web Gateway added): it keeps its role
   * until the new checks say otherwise, so no session is cut for it.
   */
  update(config: MirrorConfig): Applied {
    const seed = new Map<string, { health: MemberHealth; admin: AdminState }>();
    for (const s of this.monitor.members()) {
      const same = config.members.find((n) => n.name === s.config.name);
      if (same && formatHostPort(same.address) === formatHostPort(s.config.address))
        seed.set(s.config.name, { health: s.health, admin: s.admin });
    }
    this.monitor.stop();
    this.monitor = new MirrorMonitor(config, this.deps.prober, this, { seed });
    this.cfg = config;
    const effect = this.router.update(config, new PrimaryPlan(this.monitor.decision));
    this.syncPoolContext();
    // The reload's count of cut sessions includes the read pools' (removed or re-planned).
    const poolCut = this.updatePools(config);
    this.begin();
    const withPools = (e: RouteEffect): RouteEffect => ({ ...e, cut: e.cut + poolCut });
    return effect instanceof Promise ? effect.then(withPools) : withPools(effect);
  }

  /** Pools kept (same name and listener) are updated, new ones (bound by bindPools) start, others go; returns the sessions cut. */
  private updatePools(config: MirrorConfig): number {
    let cut = 0;
    const fresh = new Map(this.boundPools.map((p) => [p.name, p]));
    this.boundPools = [];
    const next = new Map<string, Pool>();
    for (const p of config.pools) {
      const running = this.pools.get(p.name);
      const pool = fresh.get(p.name);
      if (pool !== undefined) {
        cut += running?.remove() ?? 0;
        pool.start();
        next.set(p.name, pool);
      } else if (running !== undefined) {
        cut += running.update(p, config).cut;
        next.set(p.name, running);
      }
    }
    for (const [name, p] of this.pools) if (!next.has(name) && !fresh.has(name)) cut += p.remove();
    this.pools = next;
    return cut;
  }

  /** Series, resolved addresses and the first probes of the (new) monitor. */
  private begin(): void {
    this.reporter.configure(this.cfg, this.monitor.decision);
    for (const m of this.cfg.members) void this.deps.resolver.refresh(m.address);
    this.monitor.start();
  }

  /** MonitorSink: one probe, reported. */
  probed(member: string, result: ProbeResult, prev: MemberHealth, next: MemberHealth): void {
    this.lastProbe = { previousCheckAt: prev.lastCheckAt, at: next.lastCheckAt ?? 0 };
    this.reporter.probed(member, result, prev, next);
  }

  /** MonitorSink: one step. The decision goes to the router first, then what it did is reported. */
  changed(step: MonitorChange): void {
    const effect = step.decision ? this.router.apply(new PrimaryPlan(step.decision.next)) : NO_EFFECT;
    const { previousCheckAt, at } = this.lastProbe;
    const detectionMs = previousCheckAt === null ? null : Math.round(at - previousCheckAt);
    this.report(effect, (done) => {
      if (step.role) this.reporter.role(step.role, detectionMs, done, this.router.heldCount());
      if (step.decision) this.reporter.decision(step.decision, done);
    });
    if (step.decision) this.poolsChanged();
  }

  /**
   * Reports what a route did: at once when it knows at once, else when its loops have all
   * answered; either way after every earlier step's report.
   */
  private report(effect: Applied, then: (effect: RouteEffect) => void): void {
    if (this.reporting === null && !(effect instanceof Promise)) return then(effect);
    const next = (this.reporting ?? Promise.resolve()).then(() => effect).then(then);
    this.reporting = next;
    void next.finally(() => {
      if (this.reporting === next) this.reporting = null;
    });
  }

  /** RouterOwner: a connect to a member failed; every member is probed now. */
  connectFailed(): void {
    this.monitor.kick();
  }

  /** Probes every member now (as a failed connect does). */
  kick(): void {
    this.monitor.kick();
  }

  /** Maintenance through the admin API. False: no such member. */
  adminAction(member: string, action: AdminAction): boolean {
    const slot = this.monitor.members().find((m) => m.config.name === member);
    if (!slot) return false;
    const from = slot.admin;
    const to: AdminState = action === 'drain' ? 'draining' : action === 'disable' ? 'disabled' : 'enabled';
    const change = this.monitor.setAdmin(member, to);
    const effect = change ? this.router.apply(new PrimaryPlan(change.next)) : NO_EFFECT;
    this.report(effect, (done) => {
      this.reporter.admin(member, action, from, to, done, this.router.heldCount());
      if (change) this.reporter.decision(change, done);
    });
    // Drain and disable apply to every pool the member serves.
    this.poolsChanged();
    return true;
  }

  /** Whether its listener is bound. */
  get bound(): boolean {
    return this.router.address() !== null && [...this.pools.values()].every((p) => p.bound);
  }

  /** Whether pool `name` sends new clients somewhere now; undefined: no such pool. */
  poolAccepting(name: string): boolean | undefined {
    return this.pools.get(name)?.accepting;
  }

  /** Whether its primary takes clients now (GET /readyz?mirror=). */
  get accepting(): boolean {
    return this.monitor.decision.accepting;
  }

  /** Whether accepted sockets take the fast data path (null until listening). */
  get fastAccept(): boolean | null {
    return this.router.fastAccept;
  }

  sessionCount(): number {
    let n = this.router.sessionCount();
    for (const p of this.pools.values()) n += p.sessionCount();
    return n;
  }

  flushBytes(): void {
    this.router.flushBytes();
    for (const p of this.pools.values()) p.flushBytes();
  }

  /** A frozen copy of its state now (never the live monitor or router). */
  snapshot(): MirrorSnapshot {
    const a = this.router.address();
    return freezeSnapshot({
      config: this.cfg,
      decision: this.monitor.decision,
      listen: a && { host: a.address, port: a.port },
      sessions: this.router.sessionCount(),
      held: this.router.heldCount(),
      members: this.monitor.members().map((m) => ({
        config: m.config,
        health: m.health,
        admin: m.admin,
        sessions: this.router.sessionCount(m.config.name),
        resolution: this.deps.resolver.state(m.config.address),
      })),
      pools: [...this.pools.values()].map((p) => p.snapshot()),
    });
  }

  /** Shutdown: no more probes, no more clients; open sessions are left to `drain`. */
  close(): void {
    this.monitor.stop();
    this.router.close();
    for (const p of this.pools.values()) p.close();
  }

  async drain(timeoutMs: number): Promise<void> {
    await Promise.all([
      this.router.drain(timeoutMs),
      ...[...this.pools.values()].map((p) => p.drain(timeoutMs)),
    ]);
  }

  /** Removed by a reload: closed, every session cut, its routing series gone. Returns sessions cut. */
  remove(): number {
    this.close();
    let cut = this.router.cutAll('removed');
    for (const p of this.pools.values()) cut += p.remove();
    this.reporter.removed();
    return cut;
  }
}
