import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Config, MirrorConfig } from './config/types.js';
import { formatHostPort } from './config/types.js';
import { EventLog } from './events.js';
import {
  MirrorMonitor,
  type DecisionChange,
  type MonitorChange,
  type ProbeRunner,
  type RoleChange,
} from './health/monitor.js';
import type { AdminState, Decision, MemberHealth, ProbeResult } from './health/types.js';
import type { Logger } from './log.js';
import { Metrics, type CheckCounters } from './metrics.js';
import { fastPathDefault } from './proxy/fastpath.js';
import { rawAvailable } from './proxy/raw.js';
import { MirrorProxy, type ProxyEffect } from './proxy/mirror-proxy.js';
import { Resolver } from './proxy/resolver.js';
import { freezeSnapshot, type MirrorSnapshot } from './snapshot.js';

/** One mirror at run time: its config, its health loop and its listener. Daemon-private. */
interface MirrorRuntime {
  config: MirrorConfig;
  monitor: MirrorMonitor;
  readonly proxy: MirrorProxy;
  readonly log: Logger;
  /** The last member that accepted clients (to count failovers, not every suspicion). */
  lastAccepting: string | null;
  /** What is kept of each member's checks, made at its first check. */
  readonly checks: Map<string, MemberChecks>;
}

/**
 * One member's checks as the daemon reports them, kept from one probe to the next so that a
 * probe only adds to numbers and compares with what it last reported (no label set built or
 * looked up per probe). Daemon-private.
 */
interface MemberChecks {
  readonly counters: CheckCounters;
  /**
   * When the check before the latest one ended. A role change happened after it, so
   * `now - previous` bounds how long the change went unseen.
   */
  previous: number | null;
  latest: number | null;
  /** What mirrorlb_member_reachable was last set to (null: never); set only when it changes. */
  reachable: boolean | null;
  /**
   * Per check URL: its last answer class (logged once per change) and what
   * mirrorlb_check_url_unexpected was last set to.
   */
  readonly urls: Map<string, { answer: string; unexpected: boolean }>;
  /** Its URLs contradicted each other in the last round (logged when that starts). */
  contradicted: boolean;
}

export interface DaemonDeps {
  readonly log: Logger;
  readonly prober: ProbeRunner & { close?(): void };
  readonly metrics?: Metrics;
}

export type AdminAction = 'drain' | 'disable' | 'enable';

const NO_EFFECT: ProxyEffect = Object.freeze({ cut: 0, cutBy: Object.freeze({}), moved: 0, released: 0 });

/**
 * The balancer: one MirrorRuntime per configured mirror, wired to metrics, logs and the
 * transitions log. It is the one subscriber of each monitor: a decision goes from the
 * monitor to `proxy.apply`, and what the proxy did goes to logs and events.
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
  private readonly mirrors = new Map<string, MirrorRuntime>();
  private state: 'new' | 'running' | 'grace' | 'stopping' | 'stopped' = 'new';
  /** The shutdown under way (stop() called again returns it) and the way to cut its grace short. */
  private stopping: Promise<void> | null = null;
  private cutGrace: (() => void) | null = null;
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
    for (const m of this.config.mirrors) this.attach(await this.bind(m));
    this.logDataPath();
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
    const { replaced, added, late } = this.planReload(next);
    const bound: MirrorRuntime[] = [];
    try {
      for (const m of added) if (!late.includes(m)) bound.push(await this.bind(m));
      if (this.state !== 'running') throw new Error(`reload abandoned: the daemon is ${this.state}`);
    } catch (err) {
      for (const rt of bound) rt.proxy.close();
      throw err;
    }
    // Commit: nothing below can be refused.
    this.config = next;
    let cut = 0;
    for (const rt of replaced) cut += this.removeMirror(rt.config.name);
    for (const m of next.mirrors) {
      const rt = this.mirrors.get(m.name);
      if (rt && JSON.stringify(rt.config) !== JSON.stringify(m)) cut += this.updateMirror(rt, m).cut;
    }
    for (const rt of bound) this.attach(rt);
    for (const m of late) await this.bindLate(m);
    this.reloaded(old, next, cut);
  }

  /**
   * What a reload does to the listeners: running mirrors that go (removed, or `listen`
   * changed), mirrors that need a new listener, and of those the `late` ones, whose port a
   * going mirror holds (a rename, two mirrors swapping ports, or a wildcard beside a
   * loopback address): they can only be bound once it closed.
   */
  private planReload(next: Config): {
    replaced: MirrorRuntime[];
    added: MirrorConfig[];
    late: MirrorConfig[];
  } {
    const wanted = new Map(next.mirrors.map((m) => [m.name, m]));
    const replaced = [...this.mirrors.values()].filter((rt) => {
      const m = wanted.get(rt.config.name);
      return !m || formatHostPort(m.listen) !== formatHostPort(rt.config.listen);
    });
    const added = next.mirrors.filter(
      (m) => !this.mirrors.has(m.name) || replaced.some((r) => r.config.name === m.name),
    );
    const freed = new Set(replaced.map((r) => r.config.listen.port).filter((p) => p !== 0));
    const late = added.filter((m) => freed.has(m.listen.port));
    return { replaced, added, late };
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
    this.cutGrace?.();
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
        this.cutGrace = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.cutGrace = null;
    }
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
    const slot = rt?.monitor.members().find((m) => m.config.name === member);
    if (!rt || !slot) return false;
    const from = slot.admin;
    const to: AdminState = action === 'drain' ? 'draining' : action === 'disable' ? 'disabled' : 'enabled';
    const decision = rt.monitor.setAdmin(member, to);
    const effect = decision ? rt.proxy.apply(decision.next) : NO_EFFECT;
    const cutSessions = effect.cut;
    this.log.warn({ mirror, member, action, from, to, cut: cutSessions }, 'admin action');
    this.events.push({
      kind: 'admin',
      mirror,
      member,
      from,
      to,
      detectionMs: null,
      heldClients: rt.proxy.heldCount(),
      cutSessions,
      detail: action,
    });
    if (decision) this.onDecision(rt, decision, effect);
    return true;
  }

  /** Probes every member of `mirror` now (as a failed connect does). False: no such mirror. */
  probeNow(mirror: string): boolean {
    const rt = this.mirrors.get(mirror);
    rt?.monitor.kick();
    return rt !== undefined;
  }

  /** A read-only snapshot of every mirror, taken now (see MirrorSnapshot). */
  runtimes(): ReadonlyMap<string, MirrorSnapshot> {
    const out = new Map<string, MirrorSnapshot>();
    for (const [name, rt] of this.mirrors) {
      const a = rt.proxy.address();
      out.set(
        name,
        freezeSnapshot({
          config: rt.config,
          decision: rt.monitor.decision,
          listen: a && { host: a.address, port: a.port },
          sessions: rt.proxy.sessionCount(),
          held: rt.proxy.heldCount(),
          members: rt.monitor.members().map((m) => ({
            config: m.config,
            health: m.health,
            admin: m.admin,
            sessions: rt.proxy.sessionCount(m.config.name),
            resolution: this.resolver.state(m.config.address),
          })),
        }),
      );
    }
    return out;
  }

  /**
   * Replica readiness (GET /readyz): running (config loaded, not shutting down) and every
   * configured listener bound. A mirror without a primary does not count: its clients are
   * held, and an outer load balancer should keep sending them here rather than nowhere.
   */
  ready(): boolean {
    if (this.state !== 'running' || this.mirrors.size !== this.config.mirrors.length) return false;
    for (const rt of this.mirrors.values()) if (!rt.proxy.address()) return false;
    return true;
  }

  /** GET /readyz?mirror=NAME: ready, and that mirror has a primary taking clients; null: no such mirror. */
  mirrorReady(name: string): boolean | null {
    const rt = this.mirrors.get(name);
    if (!rt) return null;
    return this.ready() && rt.monitor.decision.accepting;
  }

  /** Bytes of open sessions are added at scrape time, so long sessions show traffic live. */
  flushBytes(): void {
    for (const rt of this.mirrors.values()) rt.proxy.flushBytes();
  }

  /** A runtime for `m` with its listener bound, not yet serving (no probes, no metric series). */
  private async bind(m: MirrorConfig): Promise<MirrorRuntime> {
    const log = this.log.child({ mirror: m.name });
    const monitor = new MirrorMonitor(m, this.prober);
    let rt: MirrorRuntime | null = null;
    const proxy = new MirrorProxy(m, monitor.decision, {
      metrics: this.metrics,
      resolver: this.resolver,
      log,
      // The runtime's monitor at the time of the failure (a reload may have replaced it).
      onConnectFailed: () => rt?.monitor.kick(),
    });
    await proxy.listen();
    rt = { config: m, monitor, proxy, log, lastAccepting: null, checks: new Map() };
    return rt;
  }

  /** Serves a bound runtime: it becomes one of the daemon's mirrors and starts probing. */
  private attach(rt: MirrorRuntime): void {
    this.mirrors.set(rt.config.name, rt);
    rt.proxy.serve();
    const a = rt.proxy.address();
    rt.log.info(
      { listen: formatHostPort(a ? { host: rt.config.listen.host, port: a.port } : rt.config.listen) },
      'listening',
    );
    this.run(rt);
  }

  /** A listener that took over the address of a removed mirror (bound after it closed). */
  private async bindLate(m: MirrorConfig): Promise<void> {
    try {
      this.attach(await this.bind(m));
    } catch (err) {
      this.log.error(
        { mirror: m.name, listen: formatHostPort(m.listen), err: (err as Error).message },
        'mirror not started: its listen address was taken when the old listener closed',
      );
    }
  }

  private updateMirror(rt: MirrorRuntime, m: MirrorConfig): ProxyEffect {
    const seed = new Map<string, { health: MemberHealth; admin: AdminState }>();
    // Same name at the same address is the same member, even when its check URLs changed (a Web
    // Gateway added): it keeps its role until the new checks say otherwise, so no session is cut.
    for (const s of rt.monitor.members()) {
      const same = m.members.find((n) => n.name === s.config.name);
      if (same && formatHostPort(same.address) === formatHostPort(s.config.address))
        seed.set(s.config.name, { health: s.health, admin: s.admin });
    }
    rt.monitor.stop();
    rt.monitor.removeAllListeners();
    rt.monitor = new MirrorMonitor(m, this.prober, { seed });
    rt.config = m;
    const effect = rt.proxy.update(m, rt.monitor.decision);
    this.run(rt);
    return effect;
  }

  /** Metric series, resolved addresses and event wiring for a runtime's (new) monitor, then its first probes. */
  private run(rt: MirrorRuntime): void {
    const m = rt.config;
    this.metrics.seedMirror(
      m.name,
      m.members.map((x) => x.name),
    );
    for (const mem of m.members) void this.resolver.refresh(mem.address);
    rt.monitor.on('probe', (member, r, health) => this.onProbe(rt, member, r, health));
    rt.monitor.on('change', (c) => this.onChange(rt, c));
    this.publishDecision(rt, rt.monitor.decision);
    rt.monitor.start();
  }

  /** Stops a mirror: listener closed, sessions cut, its metric series gone. Returns sessions cut. */
  private removeMirror(name: string): number {
    const rt = this.mirrors.get(name);
    if (!rt) return 0;
    this.mirrors.delete(name);
    rt.monitor.stop();
    rt.monitor.removeAllListeners();
    rt.proxy.close();
    const cut = rt.proxy.cutAll('removed');
    for (const m of rt.config.members) this.metrics.memberPrimary.remove({ mirror: name, member: m.name });
    this.metrics.mirrorHasPrimary.remove({ mirror: name });
    return cut;
  }

  private reloaded(old: Config, next: Config, cutSessions: number): void {
    const before = new Map(old.mirrors.map((m) => [m.name, JSON.stringify(m)]));
    const after = new Map(next.mirrors.map((m) => [m.name, JSON.stringify(m)]));
    const added = [...after.keys()].filter((n) => !before.has(n));
    const removed = [...before.keys()].filter((n) => !after.has(n));
    const changed = [...after].filter(([n, s]) => before.has(n) && before.get(n) !== s).map(([n]) => n);
    const from = digest(old);
    const to = digest(next);
    this.log.info(
      { source: next.source, from, to, added, removed, changed, cut_sessions: cutSessions },
      'config reloaded',
    );
    this.metrics.configReloads.inc({ result: 'ok' });
    const what = [
      added.length ? `added ${added.join(', ')}` : '',
      removed.length ? `removed ${removed.join(', ')}` : '',
      changed.length ? `changed ${changed.join(', ')}` : '',
    ].filter(Boolean);
    this.events.push({
      kind: 'reload',
      mirror: '*',
      member: null,
      from,
      to,
      detectionMs: null,
      heldClients: 0,
      cutSessions,
      detail: what.length ? what.join('; ') : 'no mirror changed',
    });
  }

  /** Once at start: which data path sockets take (src/proxy/fastpath.ts, raw.ts), since it changes what to expect of CPU. */
  private logDataPath(): void {
    const connect = fastPathDefault();
    const accept = [...this.mirrors.values()].every((rt) => rt.proxy.fastAccept === true);
    const fast = connect && accept;
    // Raw handles need the fast accept hook (the handle arrives there) and the bindings.
    const raw = fast && rawAvailable();
    this.log.info(
      {
        data_path: raw ? 'raw' : fast ? 'fast' : 'plain',
        accept: accept ? 'fast' : 'plain',
        connect: connect ? 'fast' : 'plain',
        reason: raw
          ? null
          : !connect
            ? 'MIRRORLB_DATAPATH=plain'
            : !accept
              ? 'server internals of this Node.js not as expected'
              : process.env.MIRRORLB_DATAPATH === 'stream'
                ? 'MIRRORLB_DATAPATH=stream'
                : "this Node.js's TCP bindings not as expected",
      },
      'data path',
    );
  }

  private onProbe(rt: MirrorRuntime, member: string, r: ProbeResult, health: MemberHealth): void {
    let c = rt.checks.get(member);
    if (!c) {
      const counters = this.metrics.checks(rt.config.name, member);
      c = { counters, previous: null, latest: null, reachable: null, urls: new Map(), contradicted: false };
      rt.checks.set(member, c);
    }
    c.previous = c.latest;
    c.latest = performance.now();
    c.counters.result(r.kind).n++;
    this.metrics.healthCheckDuration.observe(c.counters.labels, r.latencyMs / 1000);
    if (c.reachable !== health.reachable) {
      c.reachable = health.reachable;
      this.metrics.memberReachable.set(c.counters.labels, health.reachable ? 1 : 0);
    }
    this.onUrlAnswers(rt, c, member, r);
  }

  /**
   * Per check URL: counted by class, and logged once per change of class (an unexpected answer
   * with its status: "one gateway is broken"); contradicting URLs are logged when they start.
   */
  private onUrlAnswers(rt: MirrorRuntime, c: MemberChecks, member: string, r: ProbeResult): void {
    for (const a of r.answers ?? []) {
      if (a.outcome === 'skipped') continue;
      c.counters.answer(a.url, a.outcome).n++;
      const unexpected = a.outcome === 'unexpected';
      const last = c.urls.get(a.url);
      const was = last?.answer;
      if (last === undefined || last.unexpected !== unexpected) {
        this.metrics.checkUrlUnexpected.set({ ...c.counters.labels, url: a.url }, unexpected ? 1 : 0);
      }
      if (last === undefined) c.urls.set(a.url, { answer: a.outcome, unexpected });
      else {
        last.answer = a.outcome;
        last.unexpected = unexpected;
      }
      if (was === a.outcome || (was === undefined && a.outcome !== 'unexpected')) continue;
      const fields = {
        member,
        url: a.url,
        answer: a.outcome,
        status: a.status,
        code: a.code,
        was: was ?? null,
      };
      if (a.outcome === 'unexpected')
        rt.log.warn(fields, 'check URL answered unexpectedly (a failed check of that URL, not a demotion)');
      else if (was === 'unexpected') rt.log.info(fields, 'check URL answers as expected again');
    }
    const contradicted = (r.kind === 'primary' || r.kind === 'not_primary') && r.contradicted === true;
    if (contradicted && !c.contradicted) {
      rt.log.warn(
        {
          member,
          decided_by: r.kind === 'primary' || r.kind === 'not_primary' ? r.url : null,
          answers: r.answers,
        },
        'check URLs contradict each other; no new clients for this member until they agree',
      );
    }
    c.contradicted = contradicted;
  }

  /** One monitor step: the decision goes to the proxy first, then what it did is reported. */
  private onChange(rt: MirrorRuntime, c: MonitorChange): void {
    const effect = c.decision ? rt.proxy.apply(c.decision.next) : NO_EFFECT;
    if (c.role) this.onRole(rt, c.role, effect);
    if (c.decision) this.onDecision(rt, c.decision, effect);
  }

  private onRole(rt: MirrorRuntime, c: RoleChange, effect: ProxyEffect): void {
    const prevCheck = rt.checks.get(c.member)?.previous ?? null;
    const level = c.from === 'primary' || c.from === 'suspect' || c.to === 'suspect' ? 'warn' : 'info';
    const what =
      c.to === 'primary'
        ? 'member promoted'
        : c.from === 'primary'
          ? 'member demoted'
          : 'member role changed';
    rt.log[level]({ member: c.member, from: c.from, to: c.to, check: c.result }, what);
    this.events.push({
      kind: 'role',
      mirror: rt.config.name,
      member: c.member,
      from: c.from,
      to: c.to,
      detectionMs: prevCheck === null ? null : Math.round(performance.now() - prevCheck),
      heldClients: rt.proxy.heldCount(),
      // What this step's cut did (a promotion cuts the loser's sessions), never a prediction.
      cutSessions: effect.cut,
      detail: c.result ?? undefined,
    });
  }

  private onDecision(rt: MirrorRuntime, change: DecisionChange, effect: ProxyEffect): void {
    const { prev, next } = change;
    this.publishDecision(rt, next);
    if (next.conflict.length > 0 && prev.conflict.length === 0) this.onConflict(rt, next);
    if (!next.accepting && prev.accepting) {
      rt.log.warn(
        { primary: next.primary, reason: next.primary ? 'suspect, draining or conflict' : 'no primary' },
        'mirror not accepting: holding new clients',
      );
    }
    if (next.accepting && next.primary !== null && next.primary !== rt.lastAccepting) {
      this.onNewPrimary(rt, next.primary, change.withoutPrimaryMs, effect);
    } else if (next.accepting && change.withoutPrimaryMs !== null) {
      rt.log.info(
        {
          primary: next.primary,
          without_primary_ms: Math.round(change.withoutPrimaryMs),
          released: effect.released,
        },
        'primary accepting again',
      );
    }
  }

  private onConflict(rt: MirrorRuntime, next: Decision): void {
    this.metrics.primaryConflicts.inc({ mirror: rt.config.name });
    rt.log.error(
      {
        claimants: [next.primary, ...next.conflict].filter(Boolean),
        kept: next.primary,
        policy: rt.config.onConflict,
      },
      'two members claim primary',
    );
  }

  /** A member other than the last one accepts clients: the first primary found, or a failover. */
  private onNewPrimary(
    rt: MirrorRuntime,
    primary: string,
    withoutPrimaryMs: number | null,
    effect: ProxyEffect,
  ): void {
    const mirror = rt.config.name;
    const from = rt.lastAccepting;
    rt.lastAccepting = primary;
    if (from !== null) this.metrics.failovers.inc({ mirror });
    if (withoutPrimaryMs !== null) this.metrics.noPrimarySeconds.observe({ mirror }, withoutPrimaryMs / 1000);
    const ms = withoutPrimaryMs === null ? null : Math.round(withoutPrimaryMs);
    rt.log[from === null ? 'info' : 'warn'](
      {
        from,
        to: primary,
        without_primary_ms: ms,
        released: effect.released,
        cut: effect.cut,
        moved: effect.moved,
      },
      from === null ? 'primary found' : 'failover',
    );
    this.events.push({
      kind: 'failover',
      mirror,
      member: primary,
      from,
      to: primary,
      detectionMs: ms,
      heldClients: effect.released,
      cutSessions: effect.cut,
    });
  }

  private publishDecision(rt: MirrorRuntime, d: Decision): void {
    const mirror = rt.config.name;
    this.metrics.mirrorHasPrimary.set({ mirror }, d.accepting ? 1 : 0);
    for (const m of rt.config.members)
      this.metrics.memberPrimary.set({ mirror, member: m.name }, d.primary === m.name ? 1 : 0);
  }
}

/** A short fingerprint of a config (its source path left out), so a reload log says from what to what. */
function digest(c: Config): string {
  const { source: _source, ...rest } = c;
  return `sha256:${createHash('sha256').update(JSON.stringify(rest)).digest('hex').slice(0, 12)}`;
}
