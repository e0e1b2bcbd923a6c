import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { MemberConfig, MirrorConfig } from '../config/types.js';
import { formatHostPort, membersByName } from '../config/types.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { ignoreUntilLinked } from '../proxy/link.js';
import type { RawTcp } from '../proxy/raw.js';
import type { Resolver } from '../proxy/resolver.js';
import { SessionTable } from '../proxy/sessions.js';
import { Client, ClientTable, type SharedLimits } from './client.js';
import { Connector, type ConnectorOwner } from './connector.js';
import { toSocket } from './dial.js';
import { Listener, type Acceptor } from './listener.js';
import { newEffect, type CutReason, type MutableEffect, type RouteEffect, type RoutePlan } from './plan.js';
import { connectReason, RouteReport } from './route-report.js';
import type { FdBudget } from './fd-budget.js';
import type { SessionLog } from './session-log.js';
import { Watch } from './watch.js';

/** Who the router tells that a member failed a connect (the mirror probes it now). */
export interface RouterOwner {
  connectFailed(member: string): void;
}

export interface RouterDeps {
  readonly metrics: Metrics;
  readonly resolver: Resolver;
  readonly log: Logger;
  readonly owner: RouterOwner;
  /** Set in a data-plane loop: limits that hold for the whole process (src/workers/). */
  readonly shared?: SharedLimits;
  /** The daemon's `log.sessions` switch (session-log.ts) and descriptor ceiling (fd-budget.ts). */
  readonly sessionLog: SessionLog;
  readonly budget?: FdBudget;
}

/** Retry backoff for failed backend connects while the hold timeout lasts. */
const RETRY_MIN_MS = 20;
const RETRY_MAX_MS = 250;

/**
 * The TCP front of one route: moves each client through its states (client.ts) under the plan
 * in force: sent where the plan picks, held while it picks none, gated, connecting, linked.
 * A new plan is acted on in one step (`apply`: sessions and connects of members it no longer
 * keeps cut or moved, held clients released). It never asks the monitor anything.
 */
export class Router implements ConnectorOwner, Acceptor {
  private config: MirrorConfig;
  private plan: RoutePlan;
  private members: Map<string, MemberConfig>;
  private readonly listener: Listener;
  private readonly report: RouteReport;
  private readonly clients: ClientTable;
  /** Linked clients' sessions by member, with their counters and the idle timeout. */
  private readonly sessions: SessionTable<Client>;
  /** Takes clients to members: the connect gate, the dials, the links (connector.ts). */
  private readonly connector: Connector;
  /** Resolves drain() when the last session closes. */
  private onIdle: (() => void) | null = null;
  /** A member's load as plans balance it (sessions + connects): made once, not per client. */
  private readonly load = (m: string): number => this.sessions.count(m) + this.clients.countFor(m);

  constructor(
    config: MirrorConfig,
    plan: RoutePlan,
    private readonly deps: RouterDeps,
  ) {
    this.config = config;
    this.plan = plan;
    this.members = membersByName(config.members);
    this.clients = new ClientTable(deps.budget);
    this.sessions = new SessionTable<Client>(config.name, deps.metrics, config.proxy.idleTimeoutMs);
    this.connector = new Connector(this.clients, this.sessions, deps.resolver, this);
    this.connector.configure(this.members, config.proxy.connectTimeoutMs, config.proxy.maxConnecting);
    this.report = new RouteReport(config.name, deps.metrics, deps.log, deps.sessionLog);
    this.sessions.onIdleCut = (member) => this.report.idleCut(member);
    this.sessions.onClosed = (s) => {
      const c = s.owner;
      if (c !== null && deps.sessionLog.on) this.report.sessionClosed(c, s);
      if (c !== null && c.session === s) {
        c.session = null;
        this.clients.move(c, 'closed');
      }
      if (this.onIdle !== null && this.sessions.count() === 0) this.onIdle();
    };
    // A dying primary accepts for a moment and then resets: its client is retried like a
    // failed connect (probe now, back off, held while the hold lasts), with its bytes.
    this.sessions.onBackendLost = (s, socket, replay, code) => {
      const c = s.owner!;
      this.restart(c, socket, replay);
      this.connectFailed(c, s.member.name, code);
    };
    this.listener = new Listener(config.name, this, deps.budget, deps.shared?.reusePort);
    this.clients.limits = deps.shared ?? null;
  }

  /** Binds the listener; clients are served from `serve()` on, earlier ones wait (listener.ts). */
  listen(): Promise<void> {
    return this.listener.listen(this.config.listen);
  }

  /** Starts serving (the reload that bound this listener is committed). */
  serve(): void {
    if (this.listener.serve()) for (const c of this.clients.list('accepted')) this.route(c);
  }

  address(): net.AddressInfo | null {
    return this.listener.address();
  }

  get fastAccept(): boolean | null {
    return this.listener.fastAccept;
  }

  /**
   * One plan, acted on in one step: sessions of every member it does not keep are cut (or
   * moved, when their member never answered), clients waiting at the gate for or connecting
   * to such a member go where new clients go, and held clients are released once the plan
   * opens to a member.
   */
  apply(next: RoutePlan): RouteEffect {
    const prev = this.plan;
    this.plan = next;
    const effect = newEffect();
    for (const member of [...this.sessions.members()])
      if (!next.keeps(member)) this.cut(member, next.cutReason(member), true, effect);
    this.rerouteWaiting();
    if (next.open !== null && next.open !== prev.open) effect.released = this.releaseHeld();
    return effect;
  }

  /**
   * Reload: the same listener serves a new config and plan. Sessions on members that are
   * gone or whose address changed are cut; others stay untouched.
   */
  update(config: MirrorConfig, plan: RoutePlan): RouteEffect {
    const old = this.config;
    this.config = config;
    this.plan = plan;
    this.members = membersByName(config.members);
    this.sessions.setIdleTimeout(config.proxy.idleTimeoutMs);
    const effect = newEffect();
    for (const m of old.members) {
      const now = this.members.get(m.name);
      if (!now || formatHostPort(now.address) !== formatHostPort(m.address))
        this.cut(m.name, 'removed', false, effect);
    }
    for (const member of [...this.sessions.members()])
      if (!plan.keeps(member)) this.cut(member, 'removed', false, effect);
    this.rerouteWaiting();
    this.connector.configure(this.members, config.proxy.connectTimeoutMs, config.proxy.maxConnecting);
    if (plan.open !== null) effect.released = this.releaseHeld();
    return effect;
  }

  /** Stops accepting at once; waiting and connecting clients are closed; sessions are left to drain. */
  close(): void {
    if (this.listener.phase === 'closed') return;
    this.listener.close();
    // Never served: closed uncounted.
    for (const c of this.clients.list('accepted')) this.drop(c);
    for (const c of this.clients.list('held')) this.reject(c, 'shutdown');
    for (const c of this.connector.close()) this.reject(c, 'shutdown');
    this.updateGauges();
  }

  /** Waits up to `timeoutMs` for open sessions to end (the last close resolves it), then cuts the rest. */
  async drain(timeoutMs: number): Promise<void> {
    if (this.sessions.count() > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => (this.onIdle = resolve)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
      ]);
      clearTimeout(timer);
      this.onIdle = null;
    }
    this.cutAll('shutdown');
  }

  /** Cuts every session (the mirror is removed, or the drain timed out); returns how many. */
  cutAll(reason: 'removed' | 'shutdown'): number {
    const effect = newEffect();
    for (const member of [...this.sessions.members()]) this.cut(member, reason, false, effect);
    return effect.cut;
  }

  sessionCount(member?: string): number {
    return this.sessions.count(member);
  }

  heldCount(): number {
    return this.clients.count('held');
  }

  /** Adds bytes forwarded since the last flush to the members' counters (called at scrape time). */
  flushBytes(): void {
    this.sessions.flushBytes();
  }

  // ------------------------------------------------------------------ a new client

  /** Acceptor: a client as a socket (the socket path, or raw bindings not in use). */
  acceptSocket(socket: net.Socket): void {
    // Until a link owns the socket, an error (a client that resets while held) is only counted.
    socket.on('error', ignoreUntilLinked);
    this.admit(new Client(socket, null, performance.now(), 0));
  }

  /** The raw path: the client stays a handle (no socket) unless it has to wait (raw.ts). */
  acceptHandle(handle: RawTcp): void {
    this.admit(new Client(null, handle, performance.now(), 0));
  }

  acceptFailed(err: NodeJS.ErrnoException): void {
    this.report.acceptFailed(err);
  }

  private admit(c: Client): void {
    c.deadline = c.acceptedAt + this.config.proxy.holdTimeoutMs;
    if (this.deps.sessionLog.on) this.deps.sessionLog.accepted(c);
    if (this.listener.phase === 'bound') return this.clients.add(c);
    if (this.listener.phase !== 'listening') return this.drop(c);
    const max = this.config.proxy.maxConnections;
    if (max > 0 && !this.clients.admits(max)) {
      this.report.rejected('max_connections', c);
      return this.drop(c);
    }
    this.clients.add(c);
    this.route(c);
  }

  /** Sends an `accepted` client where the plan says, or holds it until its deadline. */
  private route(c: Client): void {
    if (c.gone) return this.clients.move(c, 'closed');
    const to = this.plan.pick(this.load);
    if (to !== null) this.dial(c, to);
    else if (this.plan.refuses === true) this.reject(c, 'pool_empty');
    else this.hold(c, c.deadline - performance.now());
  }

  private hold(c: Client, wakeInMs: number): void {
    if (this.listener.phase !== 'listening') return this.reject(c, 'shutdown');
    if (this.clients.held() >= this.config.proxy.maxHeld) return this.reject(c, 'hold_full');
    // A client whose FIN was read before it came to wait has left: it waits for nothing.
    if (toSocket(c).readableEnded) return this.heldLeft(c);
    this.clients.move(c, 'held');
    new Watch(
      c,
      wakeInMs,
      (w) => this.wake(w),
      (l) => this.heldLeft(l),
    );
    this.updateGauges();
  }

  /** A held client's timer fired: a connect retry is due, or its hold timeout ended. */
  private wake(c: Client): void {
    this.clients.move(c, 'accepted');
    this.updateGauges();
    if (performance.now() < c.deadline) return this.route(c);
    // At the hold timeout: where the plan sends such clients (a suspect primary), else closed.
    const to = this.plan.fallback;
    if (to !== null) return this.dial(c, to);
    this.reject(c, 'hold_timeout');
  }

  private dial(c: Client, member: string): void {
    const cfg = this.members.get(member);
    if (!cfg) return this.hold(c, c.deadline - performance.now());
    this.connector.connect(c, cfg);
  }

  /** ConnectorOwner: the plan in force decides. */
  admits(member: string): boolean {
    return this.plan.admits(member);
  }

  get serving(): boolean {
    return this.listener.phase !== 'closed';
  }

  reroute(c: Client): void {
    this.route(c);
  }

  waitingChanged(): void {
    this.updateGauges();
  }

  /** ConnectorOwner: a backend connect failed: probe the mirror now, retry with backoff while the hold lasts. */
  connectFailed(c: Client, member: string, code: string): void {
    this.report.connectFailed(member, code);
    this.deps.owner.connectFailed(member);
    const cfg = this.members.get(member);
    if (cfg) void this.deps.resolver.refresh(cfg.address);
    const left = c.deadline - performance.now();
    // A client is counted as failed once, when it is given up (reject counts it).
    if (left <= 0 || c.gone) return this.reject(c, connectReason(code));
    this.report.retried(member);
    const backoff = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** c.attempts++);
    this.hold(c, Math.min(backoff, left));
  }

  /** Clients waiting for, or connecting to, a member the plan no longer keeps go where new clients go. */
  private rerouteWaiting(): void {
    for (const c of this.connector.abandon((m) => this.plan.keeps(m))) this.route(c);
  }

  // ------------------------------------------------------------------ held clients

  /**
   * Releases the held clients still connected; returns how many. A client whose socket is
   * already gone (closed before its close event ran) is counted as one that left.
   */
  private releaseHeld(): number {
    const live: Client[] = [];
    for (const c of this.clients.list('held')) {
      c.watch?.end();
      this.clients.move(c, 'accepted');
      if (c.gone) {
        this.clients.move(c, 'closed');
        this.report.leftWhileHeldOne(c);
      } else live.push(c);
    }
    this.updateGauges();
    this.report.released(this.plan.open, live.length);
    for (const c of live) this.route(c);
    return live.length;
  }

  /** A held client disconnected: it left at once; count it, never as released. */
  private heldLeft(c: Client): void {
    c.socket?.destroy();
    this.clients.move(c, 'closed');
    this.report.leftWhileHeldOne(c);
    this.updateGauges();
  }

  // ------------------------------------------------------------------ cuts and ends

  /**
   * Cuts every session of `member` in one step, adding to `effect`. With `redispatch`, a
   * session the member never sent a byte to (a hung member, a connect that raced the
   * demotion) is not cut: its client goes where new clients go, with its bytes so far
   * replayed (see Link.detachClient).
   */
  private cut(member: string, reason: CutReason, redispatch: boolean, effect: MutableEffect): void {
    // Gone from the count at once: their sockets close later, and a second plan before they
    // do must not cut (and count) them again.
    const taken = this.sessions.take(member, reason);
    if (taken.length === 0) return;
    let cut = 0;
    const moved: Client[] = [];
    for (const s of taken) {
      const c = s.owner!;
      const detached = redispatch ? this.sessions.detach(s) : null;
      if (detached === null) {
        s.link.destroy();
        c.session = null;
        this.clients.move(c, 'closed');
        cut++;
        continue;
      }
      this.restart(c, detached.socket, detached.replay);
      moved.push(c);
    }
    effect.cut += cut;
    effect.moved += moved.length;
    effect.cutBy[member] = (effect.cutBy[member] ?? 0) + cut;
    this.report.cut(member, reason, cut, moved.length);
    for (const c of moved) this.route(c);
  }

  /** A linked client given back by its member (it never answered): in hand again, with a new hold. */
  private restart(c: Client, socket: net.Socket, replay: readonly Buffer[]): void {
    c.givenBack(socket, replay, performance.now(), this.config.proxy.holdTimeoutMs);
    this.clients.move(c, 'accepted');
  }

  /** Gives a client up, counted under `reason` (unless it was gone already). */
  private reject(c: Client, reason: string): void {
    if (!c.gone) this.report.rejected(reason, c);
    this.drop(c);
  }

  /** Closes a client that is not linked, uncounted. */
  private drop(c: Client): void {
    c.watch?.end();
    if (c.handle !== null) c.handle.close();
    else c.socket?.destroy();
    c.handle = null;
    this.clients.move(c, 'closed');
  }

  private updateGauges(): void {
    this.report.waiting(this.clients.count('held'), this.clients.count('gated'));
  }
}
