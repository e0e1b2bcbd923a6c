import type { Config, MirrorConfig } from './config/types.js';
import { formatHostPort } from './config/types.js';
import { MlbError } from './errors.js';
import { EventLog } from './events.js';
import type { ProbeRunner } from './health/monitor.js';
import type { Logger } from './log.js';
import { Metrics } from './metrics.js';
import { Mirror } from './mirror/mirror.js';
import { describeReload, planReload, type ReloadPlan } from './mirror/reload-plan.js';
import { SessionLog } from './mirror/session-log.js';
import { FdBudget, planFds } from './mirror/fd-budget.js';
import { readOpenFilesLimit } from './proxy/fd-limit.js';
import type { AdminAction } from './mirror/reporter.js';
import { describeDataPath } from './proxy/data-path.js';
import { Resolver } from './proxy/resolver.js';
import type { MirrorSnapshot } from './snapshot.js';
import { DataPlane, type LoopConnections } from './workers/data-plane.js';

export type { AdminAction } from './mirror/reporter.js';

export interface DaemonDeps {
  readonly log: Logger;
  readonly prober: ProbeRunner & { close?(): void };
  readonly metrics?: Metrics;
  /** The open-files soft limit (default: read from /proc/self/limits); null for none. */
  readonly openFilesLimit?: number | null;
}

/**
 * The balancer: the collection of its mirrors (src/mirror/mirror.ts), each a unit of monitor,
 * router and reporter. The daemon only starts them, reloads (bind every new listener first,
 * then commit), stops them, and answers the admin API's questions across them.
 * Lifecycle: start() once, reload() any number of times, stop() idempotent.
 * The admin HTTP server (src/admin/) is a client of this class, not part of it.
 */
export class Daemon {
  private config: Config;
  readonly metrics: Metrics;
  readonly events = new EventLog(200);
  private readonly log: Logger;
  private readonly prober: DaemonDeps['prober'];
  private readonly resolver = new Resolver();
  /** `log.sessions`, shared by every route; a reload turns it on or off for sessions that start after. */
  private readonly sessionLog: SessionLog;
  /** The descriptor ceiling, from the open-files limit read at start; shared by every route. */
  readonly budget: FdBudget;
  private readonly mirrors = new Map<string, Mirror>();
  private state: 'new' | 'running' | 'grace' | 'stopping' | 'stopped' = 'new';
  /** The shutdown under way (stop() called again returns it) and the way to end its grace early. */
  private stopping: Promise<void> | null = null;
  private endGraceNow: (() => void) | null = null;
  readonly startedAt = Date.now();
  /** With `workers` above 1: the data-plane loops every mirror is served on (src/workers/). */
  private loops: DataPlane | null = null;

  constructor(config: Config, deps: DaemonDeps) {
    this.config = config;
    this.log = deps.log;
    this.prober = deps.prober;
    this.sessionLog = new SessionLog(config.log.sessions);
    this.metrics = deps.metrics ?? new Metrics(undefined, { hotPath: config.metrics.enabled });
    const limit = deps.openFilesLimit === undefined ? readOpenFilesLimit() : deps.openFilesLimit;
    this.budget = new FdBudget(planFds(limit, config), this.log, this.metrics.registry);
  }

  get currentConfig(): Config {
    return this.config;
  }

  async start(): Promise<void> {
    if (this.state !== 'new') throw new MlbError('MLB_ERR_ALREADY_STARTED', `daemon already ${this.state}`);
    this.state = 'running';
    if (this.config.workers > 1) this.loops = await DataPlane.start(this.config, this.metrics, this.log);
    for (const m of this.config.mirrors) this.add(await this.bind(m));
    this.logDataPath();
    const { limit, reserve, ceiling } = this.budget.plan;
    this.log.info({ open_files_limit: limit, reserve, ceiling }, 'descriptor budget');
  }

  /**
   * Applies a new, already validated config: mirrors added, removed, or updated in place.
   * An unchanged mirror is not touched at all; a changed one keeps its listener when the
   * listen address is the same, and its members' health where member and checks are the same.
   *
   * Atomic: every new listener is bound before anything changes. If one cannot be bound
   * (EADDRINUSE), the ones bound are closed and the error is thrown, with the running
   * mirrors, config and metric series exactly as they were.
   */
  async reload(next: Config): Promise<void> {
    if (this.state !== 'running') throw new Error(`cannot reload a daemon that is ${this.state}`);
    const old = this.config;
    const plan = planReload(this.config, new Set(this.mirrors.keys()), next);
    const bound: Mirror[] = [];
    const pools: { undo(): void }[] = [];
    try {
      for (const m of plan.added) if (!plan.late.includes(m)) bound.push(await this.bind(m));
      // New read-pool listeners of changed mirrors are bound before the commit too.
      for (const name of plan.changed)
        pools.push(await this.mirrors.get(name)!.bindPools(plan.wanted.get(name)!));
      if (this.state !== 'running') throw new Error(`reload abandoned: the daemon is ${this.state}`);
    } catch (err) {
      for (const mirror of bound) mirror.close();
      for (const p of pools) p.undo();
      throw err;
    }
    // Commit: nothing below can be refused.
    this.config = next;
    this.sessionLog.on = next.log.sessions;
    let cut = 0;
    for (const name of plan.replaced) {
      cut += this.mirrors.get(name)?.remove() ?? 0;
      this.mirrors.delete(name);
    }
    // With several loops a change's effect is known once every loop acted on it.
    const updated = plan.changed.flatMap(
      (name) => this.mirrors.get(name)?.update(plan.wanted.get(name)!) ?? [],
    );
    for (const mirror of bound) this.add(mirror);
    for (const m of plan.late) await this.bindLate(m);
    for (const effect of updated) cut += (await effect).cut;
    this.reloaded(old, next, plan, cut);
  }

  /** Counts and logs a refused reload; the running config stays. */
  reloadRefused(message: string): void {
    this.metrics.configReloads.inc({ result: 'invalid' });
    this.log.error({ problems: message.split('\n') }, 'config reload refused; keeping the running config');
  }

  /**
   * SIGTERM. With a grace: unready at once (GET /readyz 503) while listeners keep accepting and
   * checks keep routing, so an outer load balancer sees the 503 and stops sending new clients
   * before the port closes. Then: stop accepting everywhere at once, let sessions finish for
   * up to `drainTimeoutMs`, cut the rest. Calling it again returns the same shutdown.
   */
  stop(drainTimeoutMs = this.config.shutdown.drainTimeoutMs, graceMs = 0): Promise<void> {
    return (this.stopping ??= this.shutdown(drainTimeoutMs, graceMs));
  }

  /** Ends a shutdown's grace now (a second SIGTERM); no-op otherwise. */
  endGrace(): void {
    this.endGraceNow?.();
  }

  /** Where the lifecycle is: `grace` = unready but still accepting, `stopping` = draining. */
  get phase(): 'new' | 'running' | 'grace' | 'stopping' | 'stopped' {
    return this.state;
  }

  private async shutdown(drainTimeoutMs: number, graceMs: number): Promise<void> {
    const wasRunning = this.state === 'running';
    if (wasRunning && graceMs > 0) {
      this.state = 'grace';
      this.log.info({ grace_ms: graceMs }, 'stopping: unready, still accepting for the grace period');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.endGraceNow = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.endGraceNow = null;
    }
    this.state = 'stopping';
    const all = [...this.mirrors.values()];
    for (const mirror of all) mirror.close();
    if (wasRunning) {
      const open = all.reduce((n, mirror) => n + mirror.sessionCount(), 0);
      this.log.info(
        { sessions: open, drain_timeout_ms: drainTimeoutMs },
        'stopping: listeners closed, draining',
      );
    }
    await Promise.all(all.map((mirror) => mirror.drain(drainTimeoutMs)));
    await this.loops?.stop();
    this.mirrors.clear();
    this.prober.close?.();
    this.state = 'stopped';
    this.log.info('stopped');
  }

  /** Maintenance through the admin API. Returns false for an unknown mirror or member. */
  adminAction(mirror: string, member: string, action: AdminAction): boolean {
    return this.mirrors.get(mirror)?.adminAction(member, action) ?? false;
  }

  /** Probes every member of `mirror` now (as a failed connect does). False: no such mirror. */
  probeNow(mirror: string): boolean {
    const m = this.mirrors.get(mirror);
    m?.kick();
    return m !== undefined;
  }

  /** A read-only snapshot of every mirror, taken now (see MirrorSnapshot). */
  snapshots(): ReadonlyMap<string, MirrorSnapshot> {
    const out = new Map<string, MirrorSnapshot>();
    for (const [name, mirror] of this.mirrors) out.set(name, mirror.snapshot());
    return out;
  }

  /**
   * Replica readiness (GET /readyz): running (config loaded, not shutting down) and every
   * configured listener bound. A mirror without a primary does not count: its clients are
   * held, and an outer load balancer should keep sending them here rather than nowhere.
   */
  ready(): boolean {
    if (this.state !== 'running' || this.mirrors.size !== this.config.mirrors.length) return false;
    for (const mirror of this.mirrors.values()) if (!mirror.bound) return false;
    return true;
  }

  /** GET /readyz?mirror=NAME: ready, and that mirror has a primary taking clients; null: no such mirror. */
  mirrorReady(name: string): boolean | null {
    const mirror = this.mirrors.get(name);
    if (!mirror) return null;
    return this.ready() && mirror.accepting;
  }

  /** Whether read pool `pool` of `mirror` sends new clients somewhere now; null: no such pool. */
  poolReady(mirror: string, pool: string): boolean | null {
    const accepting = this.mirrors.get(mirror)?.poolAccepting(pool);
    return accepting === undefined ? null : this.ready() && accepting;
  }

  /** Bytes of open sessions are added at scrape time, so long sessions show traffic live. */
  flushBytes(): void {
    for (const mirror of this.mirrors.values()) mirror.flushBytes();
  }

  /** GET /metrics: the process as one (every loop's data-path figures added up). */
  metricsText(): Promise<string> {
    this.flushBytes();
    return this.loops ? this.loops.metricsText() : this.metrics.registry.metrics();
  }

  /** Each data-plane loop's connections, open and accepted (empty with one loop on the main thread). */
  loopConnections(): readonly LoopConnections[] {
    return this.loops?.perLoop() ?? [];
  }

  /** A mirror for `m` with its listener bound, not yet serving (no probes, no metric series). */
  private async bind(m: MirrorConfig): Promise<Mirror> {
    const mirror = new Mirror(m, {
      metrics: this.metrics,
      resolver: this.resolver,
      prober: this.prober,
      events: this.events,
      log: this.log,
      route: this.loops?.route,
      sessionLog: this.sessionLog,
      budget: this.budget,
    });
    await mirror.listen();
    return mirror;
  }

  /** A bound mirror becomes one of the daemon's: it serves and starts probing. */
  private add(mirror: Mirror): void {
    this.mirrors.set(mirror.config.name, mirror);
    mirror.start();
  }

  /** A listener that took over the address of a removed mirror (bound after it closed). */
  private async bindLate(m: MirrorConfig): Promise<void> {
    try {
      this.add(await this.bind(m));
    } catch (err) {
      this.log.error(
        { mirror: m.name, listen: formatHostPort(m.listen), err: (err as Error).message },
        'mirror not started: its listen address was taken when the old listener closed',
      );
    }
  }

  private reloaded(old: Config, next: Config, plan: ReloadPlan, cutSessions: number): void {
    const r = describeReload(old, next, plan);
    this.log.info({ source: next.source, ...r.fields, cut_sessions: cutSessions }, 'config reloaded');
    this.metrics.configReloads.inc({ result: 'ok' });
    this.events.push({
      kind: 'reload',
      mirror: '*',
      member: null,
      from: r.fields.from,
      to: r.fields.to,
      detectionMs: null,
      heldClients: 0,
      cutSessions,
      detail: r.detail,
    });
  }

  /** Once at start: which data path sockets take (src/proxy/data-path.ts), since it changes what to expect of CPU. */
  private logDataPath(): void {
    const accept = [...this.mirrors.values()].every((mirror) => mirror.fastAccept === true);
    this.log.info(describeDataPath(accept), 'data path');
  }
}
