import { performance } from 'node:perf_hooks';
import type { Config, MirrorConfig } from './config/types.js';
import { formatHostPort } from './config/types.js';
import { EventLog } from './events.js';
import { MirrorMonitor, type ProbeRunner } from './health/monitor.js';
import type { AdminState, Decision, MemberHealth } from './health/types.js';
import type { Logger } from './log.js';
import { Metrics } from './metrics.js';
import { MirrorProxy } from './proxy/mirror-proxy.js';
import { Resolver } from './proxy/resolver.js';

/** One mirror at run time: its config, its health loop and its listener. */
interface MirrorRuntime {
  config: MirrorConfig;
  monitor: MirrorMonitor;
  readonly proxy: MirrorProxy;
  /** The last member that accepted clients (to count failovers, not every suspicion). */
  lastAccepting: string | null;
}

export interface DaemonDeps {
  readonly log: Logger;
  readonly prober: ProbeRunner & { close?(): void };
  readonly metrics?: Metrics;
}

export type AdminAction = 'drain' | 'disable' | 'enable';

/**
 * The balancer: one MirrorRuntime per configured mirror, wired to metrics, logs and the
 * transitions log. Lifecycle: start() once, reload() any number of times, stop() idempotent.
 * The admin HTTP server (src/admin/) is a client of this class, not part of it.
 */
export class Daemon {
  private config: Config;
  readonly metrics: Metrics;
  readonly events = new EventLog(200);
  private readonly log: Logger;
  private readonly prober: DaemonDeps['prober'];
  /** Read by /status (a member whose name does not resolve); dialling stays the proxy's. */
  readonly resolver = new Resolver();
  private readonly mirrors = new Map<string, MirrorRuntime>();
  private state: 'new' | 'running' | 'stopping' | 'stopped' = 'new';
  readonly startedAt = Date.now();

  constructor(config: Config, deps: DaemonDeps) {
    this.config = config;
    this.log = deps.log;
    this.prober = deps.prober;
    this.metrics = deps.metrics ?? new Metrics(undefined, { hotPath: config.metrics.enabled });
  }

  get currentConfig(): Config {
    return this.config;
  }

  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`daemon already ${this.state}`);
    this.state = 'running';
    for (const m of this.config.mirrors) await this.addMirror(m);
  }

  /**
   * Applies a new, already validated config: mirrors added, removed, or updated in place.
   * An unchanged mirror is not touched at all; a changed one keeps its listener when the
   * listen address is the same, and its members' health where member and checks are the same.
   */
  async reload(next: Config): Promise<void> {
    if (this.state !== 'running') throw new Error(`cannot reload a daemon that is ${this.state}`);
    const old = this.config;
    this.config = next;
    const wanted = new Map(next.mirrors.map((m) => [m.name, m]));
    for (const [name, rt] of [...this.mirrors]) {
      const m = wanted.get(name);
      if (!m || formatHostPort(m.listen) !== formatHostPort(rt.config.listen)) await this.removeMirror(name);
    }
    for (const m of next.mirrors) {
      const rt = this.mirrors.get(m.name);
      if (!rt) await this.addMirror(m);
      else if (JSON.stringify(rt.config) !== JSON.stringify(m)) this.updateMirror(rt, m);
    }
    this.log.info(
      { mirrors: next.mirrors.map((m) => m.name), from: old.source, to: next.source },
      'config reloaded',
    );
    this.metrics.configReloads.inc({ result: 'ok' });
    this.events.push({
      kind: 'reload',
      mirror: '*',
      member: null,
      from: null,
      to: null,
      detectionMs: null,
      heldClients: 0,
      cutSessions: 0,
    });
  }

  /** Counts and logs a refused reload; the running config stays. */
  reloadRefused(message: string): void {
    this.metrics.configReloads.inc({ result: 'invalid' });
    this.log.error({ problems: message.split('\n') }, 'config reload refused; keeping the running config');
  }

  /** SIGTERM: stop accepting everywhere at once, let sessions finish, then cut the rest. */
  async stop(drainTimeoutMs = this.config.shutdown.drainTimeoutMs): Promise<void> {
    if (this.state === 'stopping' || this.state === 'stopped') return;
    const wasRunning = this.state === 'running';
    this.state = 'stopping';
    const rts = [...this.mirrors.values()];
    for (const rt of rts) rt.monitor.stop();
    for (const rt of rts) rt.proxy.close();
    if (wasRunning) {
      const open = rts.reduce((n, rt) => n + rt.proxy.sessionCount(), 0);
      this.log.info(
        { sessions: open, drain_timeout_ms: drainTimeoutMs },
        'stopping: listeners closed, draining',
      );
    }
    await Promise.all(rts.map((rt) => rt.proxy.drain(drainTimeoutMs)));
    this.mirrors.clear();
    this.prober.close?.();
    this.state = 'stopped';
    this.log.info('stopped');
  }

  /** Maintenance through the admin API. Returns false for an unknown mirror or member. */
  adminAction(mirror: string, member: string, action: AdminAction): boolean {
    const rt = this.mirrors.get(mirror);
    if (!rt || !rt.config.members.some((m) => m.name === member)) return false;
    const admin: AdminState = action === 'drain' ? 'draining' : action === 'disable' ? 'disabled' : 'enabled';
    rt.monitor.setAdmin(member, admin);
    this.log.warn({ mirror, member, action }, 'admin action');
    this.events.push({
      kind: 'admin',
      mirror,
      member,
      from: null,
      to: admin,
      detectionMs: null,
      heldClients: rt.proxy.heldCount(),
      cutSessions: 0,
      detail: action,
    });
    return true;
  }

  runtimes(): ReadonlyMap<string, MirrorRuntime> {
    return this.mirrors;
  }

  /** Every mirror has a primary accepting clients (GET /readyz). */
  ready(): boolean {
    if (this.state !== 'running') return false;
    for (const rt of this.mirrors.values()) if (!rt.monitor.decision.accepting) return false;
    return true;
  }

  /** Bytes of open sessions are added at scrape time, so long sessions show traffic live. */
  flushBytes(): void {
    for (const rt of this.mirrors.values()) rt.proxy.flushBytes();
  }

  private async addMirror(m: MirrorConfig): Promise<void> {
    const log = this.log.child({ mirror: m.name });
    const monitor = new MirrorMonitor(m, this.prober);
    const proxy = new MirrorProxy(m, monitor, this.metrics, this.resolver, log);
    const rt: MirrorRuntime = { config: m, monitor, proxy, lastAccepting: null };
    await proxy.listen();
    this.mirrors.set(m.name, rt);
    this.run(rt, log);
  }

  private updateMirror(rt: MirrorRuntime, m: MirrorConfig): void {
    const seed = new Map<string, { health: MemberHealth; admin: AdminState }>();
    // Same name at the same address is the same member, even when its check URLs changed (a Web
    // Gateway added): it keeps its role until the new checks say otherwise, so no session is cut.
    for (const s of rt.monitor.members()) {
      const same = m.members.find((n) => n.name === s.config.name);
      if (same && formatHostPort(same.address) === formatHostPort(s.config.address))
        seed.set(s.config.name, { health: s.health, admin: s.admin });
    }
    rt.monitor.stop();
    const monitor = new MirrorMonitor(m, this.prober, seed);
    rt.config = m;
    rt.monitor = monitor;
    rt.proxy.setMonitor(m, monitor);
    this.run(rt, this.log.child({ mirror: m.name }));
  }

  /** Metric series, resolved addresses and event wiring for a runtime's (new) monitor, then its first probes. */
  private run(rt: MirrorRuntime, log: Logger): void {
    const m = rt.config;
    this.metrics.seedMirror(
      m.name,
      m.members.map((x) => x.name),
    );
    for (const mem of m.members) void this.resolver.refresh(mem.address);
    this.watch(rt, log);
    rt.monitor.start();
  }

  private async removeMirror(name: string): Promise<void> {
    const rt = this.mirrors.get(name);
    if (!rt) return;
    this.mirrors.delete(name);
    rt.monitor.stop();
    rt.proxy.close();
    for (const m of rt.config.members) rt.proxy.cut(m.name, 'removed');
    for (const m of rt.config.members) this.metrics.memberPrimary.remove({ mirror: name, member: m.name });
    this.metrics.mirrorHasPrimary.remove({ mirror: name });
  }

  /** Turns monitor events into logs, metrics and transition events. */
  private watch(rt: MirrorRuntime, log: Logger): void {
    const mirror = rt.config.name;
    const { monitor } = rt;
    // Per member: when the check before the latest one ended. A role change happened after it,
    // so `now - previous` bounds how long the change went unseen.
    const checks = new Map<string, { previous: number | null; latest: number }>();
    monitor.on('probe', (member, r) => {
      checks.set(member, { previous: checks.get(member)?.latest ?? null, latest: performance.now() });
      const labels = { mirror, member };
      this.metrics.healthChecks.inc({ ...labels, result: r.kind });
      this.metrics.healthCheckDuration.observe(labels, r.latencyMs / 1000);
      this.metrics.memberReachable.set(labels, r.kind === 'primary' || r.kind === 'not_primary' ? 1 : 0);
    });
    monitor.on('role', (c) => {
      const now = performance.now();
      const prevCheck = checks.get(c.member)?.previous ?? null;
      const level = c.from === 'primary' || c.from === 'suspect' || c.to === 'suspect' ? 'warn' : 'info';
      const what =
        c.to === 'primary'
          ? 'member promoted'
          : c.from === 'primary'
            ? 'member demoted'
            : 'member role changed';
      log[level]({ member: c.member, from: c.from, to: c.to, check: c.result }, what);
      this.events.push({
        kind: 'role',
        mirror,
        member: c.member,
        from: c.from,
        to: c.to,
        detectionMs: prevCheck === null ? null : Math.round(now - prevCheck),
        heldClients: rt.proxy.heldCount(),
        cutSessions: c.from === 'primary' || c.from === 'suspect' ? rt.proxy.sessionCount(c.member) : 0,
        detail: c.result ?? undefined,
      });
    });
    monitor.on('decision', ({ prev, next, withoutPrimaryMs }) => {
      this.publishDecision(rt, next);
      if (next.conflict.length > 0 && prev.conflict.length === 0) {
        this.metrics.primaryConflicts.inc({ mirror });
        log.error(
          {
            claimants: [next.primary, ...next.conflict].filter(Boolean),
            kept: next.primary,
            policy: rt.config.onConflict,
          },
          'two members claim primary',
        );
      }
      if (!next.accepting && prev.accepting) {
        log.warn(
          { primary: next.primary, reason: next.primary ? 'suspect, draining or conflict' : 'no primary' },
          'mirror not accepting: holding new clients',
        );
      }
      if (next.accepting && next.primary !== null && next.primary !== rt.lastAccepting) {
        const from = rt.lastAccepting;
        rt.lastAccepting = next.primary;
        if (from !== null) this.metrics.failovers.inc({ mirror });
        if (withoutPrimaryMs !== null)
          this.metrics.noPrimarySeconds.observe({ mirror }, withoutPrimaryMs / 1000);
        log[from === null ? 'info' : 'warn'](
          {
            from,
            to: next.primary,
            without_primary_ms: withoutPrimaryMs === null ? null : Math.round(withoutPrimaryMs),
            released: rt.proxy.lastEffect.released,
            cut: rt.proxy.lastEffect.cut,
          },
          from === null ? 'primary found' : 'failover',
        );
        this.events.push({
          kind: 'failover',
          mirror,
          member: next.primary,
          from,
          to: next.primary,
          detectionMs: withoutPrimaryMs === null ? null : Math.round(withoutPrimaryMs),
          heldClients: rt.proxy.lastEffect.released,
          cutSessions: rt.proxy.lastEffect.cut,
        });
      } else if (next.accepting && withoutPrimaryMs !== null) {
        log.info(
          {
            primary: next.primary,
            without_primary_ms: Math.round(withoutPrimaryMs),
            released: rt.proxy.lastEffect.released,
          },
          'primary accepting again',
        );
      }
    });
    this.publishDecision(rt, monitor.decision);
  }

  private publishDecision(rt: MirrorRuntime, d: Decision): void {
    const mirror = rt.config.name;
    this.metrics.mirrorHasPrimary.set({ mirror }, d.accepting ? 1 : 0);
    for (const m of rt.config.members)
      this.metrics.memberPrimary.set({ mirror, member: m.name }, d.primary === m.name ? 1 : 0);
  }
}
