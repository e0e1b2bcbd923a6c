import { once } from 'node:events';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import util from 'node:util';
import type { MemberConfig, MirrorConfig } from '../config/types.js';
import { formatHostPort } from '../config/types.js';
import type { Decision, DemoteReason } from '../health/types.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { ConnectGate } from './connect-gate.js';
import { HoldQueue, type PendingClient } from './hold.js';
import type { Resolver } from './resolver.js';
import { DeadlineQueue } from './deadline-queue.js';
import { ignoreUntilLinked } from './link.js';
import { rawAvailable, rawDial, type RawAttempt, type RawDialer, type RawTcp } from './raw.js';
import { SessionTable } from './sessions.js';
import { connectBackend, ConnectError, createProxyServer, isFastSocket, socketForHandle } from './sockets.js';

export type CutReason = DemoteReason | 'removed' | 'shutdown';

/** What one decision (or reload) did to the data path: returned by `apply` and `update`. */
export interface ProxyEffect {
  /** Sessions closed, in all and per member. */
  readonly cut: number;
  readonly cutBy: Readonly<Record<string, number>>;
  /** Sessions the old member never answered, sent on to where new clients go (not cut). */
  readonly moved: number;
  /** Held clients released to the primary. */
  readonly released: number;
}

export interface ProxyDeps {
  readonly metrics: Metrics;
  readonly resolver: Resolver;
  readonly log: Logger;
  /** A backend connect failed: the daemon probes the mirror now (monitor.kick). */
  readonly onConnectFailed: (member: string) => void;
}

/** Retry backoff for failed backend connects while the hold timeout lasts. */
const RETRY_MIN_MS = 20;
const RETRY_MAX_MS = 250;

/**
 * The TCP front of one mirror: accepts clients, sends each to the primary of the decision
 * in force, holds them while there is none, and cuts every session of a member the moment
 * it stops being primary (one step per decision, docs/routing.md).
 *
 * Owned by the daemon, which hands it every decision through `apply` (and a reload through
 * `update`) and gets back what was done. It never asks the health monitor anything.
 */
export class MirrorProxy implements RawDialer {
  private config: MirrorConfig;
  private decision: Decision;
  private readonly server: net.Server;
  private readonly held = new HoldQueue(() => this.heldClientLeft());
  /** Clients that disconnected while held since the last release (counted apart from the released). */
  private leftWhileHeld = 0;
  /** Proxied sessions by member, with their counters and the idle timeout (sessions.ts). */
  private readonly sessions: SessionTable;
  /** Clients whose backend connect is under way, with the attempt that owns them. */
  private readonly connecting = new Map<PendingClient, { readonly member: string }>();
  /** The same on the raw path (raw.ts): clients dialled straight from accept, not yet sockets. */
  private readonly rawConnecting = new Set<RawAttempt>();
  /** Connect timeouts of the raw attempts, on one timer. */
  private readonly rawDeadlines = new DeadlineQueue<RawAttempt>(
    (a) => this.rawTimedOut(a),
    () => performance.now(),
  );
  /** proxy.max_connecting: connects in flight per member; the clients past it wait in `gated`. */
  private readonly gate: ConnectGate<net.Socket>;
  /** Clients waiting at the gate, watched like held ones (one that leaves is dropped at once). */
  private readonly gated = new HoldQueue((c) => this.gatedClientLeft(c));
  /** When a connect failure was last logged per member (a crash fails hundreds at once). */
  private readonly failLoggedAt = new Map<string, number>();
  /** bound: listening, but not yet serving (a reload not committed yet); see serve(). */
  private state: 'new' | 'bound' | 'listening' | 'closed' = 'new';
  /** Clients accepted while bound, routed by serve() or closed, uncounted, with the proxy. */
  private early: net.Socket[] = [];
  /** Resolves drain() when the last session closes. */
  private onIdle: (() => void) | null = null;
  private readonly metrics: Metrics;
  private readonly resolver: Resolver;
  private readonly log: Logger;
  private readonly onConnectFailed: (member: string) => void;
  /** Whether accepted sockets take the fast data path (null until listening). */
  fastAccept: boolean | null = null;

  constructor(config: MirrorConfig, decision: Decision, deps: ProxyDeps) {
    this.config = config;
    this.decision = decision;
    this.metrics = deps.metrics;
    this.resolver = deps.resolver;
    this.log = deps.log;
    this.onConnectFailed = deps.onConnectFailed;
    this.gate = new ConnectGate(config.proxy.maxConnecting);
    this.sessions = new SessionTable(config.name, deps.metrics, config.proxy.idleTimeoutMs);
    this.sessions.onIdleCut = (member) =>
      this.metrics.sessionsCut.inc({ mirror: this.config.name, member, reason: 'idle' });
    // A dying primary accepts for a moment and then resets: its clients are retried like a
    // failed connect (probe now, back off, held while the hold lasts), with their bytes.
    this.sessions.onBackendLost = (member, socket, replay, code) => {
      const now = performance.now();
      const c = {
        socket,
        acceptedAt: now,
        deadline: now + this.config.proxy.holdTimeoutMs,
        attempts: 0,
        replay,
      };
      this.dialFailed(c, member, code);
    };
    this.sessions.onClosed = () => {
      if (this.onIdle !== null && this.sessions.count() === 0) this.onIdle();
    };
    this.server = createProxyServer((socket) => this.accept(socket), {
      onListening: (fast) => (this.fastAccept = fast),
      takeHandle: rawAvailable() ? (handle) => this.acceptRaw(handle as RawTcp) : undefined,
    });
  }

  get name(): string {
    return this.config.name;
  }

  /**
   * Binds the listener. A bind error (EADDRINUSE) rejects and leaves no trace: nothing is
   * counted or logged here, the proxy is closed, and the caller decides (a refused reload).
   * Clients are served from `serve()` on; those that come before wait for it.
   */
  async listen(): Promise<void> {
    if (this.state !== 'new') throw new Error(`proxy ${this.config.name} already ${this.state}`);
    const { host, port } = this.config.listen;
    this.server.listen({ host, port, backlog: 4096 });
    try {
      await once(this.server, 'listening');
    } catch (err) {
      this.state = 'closed';
      throw err;
    }
    // Accept errors (EMFILE, ENFILE) must never kill the daemon; libuv keeps listening.
    this.server.on('error', (err: NodeJS.ErrnoException) => {
      this.metrics.connectionErrors.inc({
        mirror: this.config.name,
        reason: `accept_${err.code ?? 'error'}`,
      });
      this.log.error({ err: err.message, code: err.code }, 'accept failed');
    });
    // close() may have come while the bind was under way: then the listener goes at once.
    if ((this.state as MirrorProxy['state']) === 'closed') this.server.close();
    else this.state = 'bound';
  }

  /** Starts serving (the reload that bound this listener is committed). */
  serve(): void {
    if (this.state !== 'bound') return;
    this.state = 'listening';
    const early = this.early;
    this.early = [];
    for (const socket of early) this.accept(socket);
  }

  /** The bound address (port 0 in tests becomes a real port); null while not listening. */
  address(): net.AddressInfo | null {
    const a = this.server.address();
    return a !== null && typeof a === 'object' ? a : null;
  }

  /**
   * One decision, acted on in one step: sessions of every member but the new primary are cut
   * (or moved, when their member never answered), connects under way to such a member are
   * abandoned, and held clients are released once a primary accepts.
   */
  apply(next: Decision): ProxyEffect {
    const prev = this.decision;
    this.decision = next;
    const effect = newEffect();
    for (const member of [...this.sessions.members()]) {
      if (member === next.primary) continue;
      this.cut(member, next.cutReason[member] ?? 'removed', true, effect);
    }
    // Connects still under way to a member that lost the role (a blackholed primary never
    // answers the SYN) are abandoned: their clients go where new clients go, now.
    for (const [c, attempt] of [...this.connecting]) {
      if (attempt.member === next.primary) continue;
      this.connecting.delete(c);
      this.route(c);
    }
    this.rerouteRaw(next.primary);
    for (const c of this.takeGated((m) => m !== next.primary)) this.route(c);
    if (next.primary !== null && next.accepting && !(prev.primary === next.primary && prev.accepting)) {
      effect.released = this.releaseHeld(next.primary);
    }
    return effect;
  }

  /**
   * Reload: the same listener serves a new config and its decision. Sessions on members that
   * are gone or whose address changed are cut; others stay untouched.
   */
  update(config: MirrorConfig, decision: Decision): ProxyEffect {
    const old = this.config;
    this.config = config;
    this.decision = decision;
    this.sessions.setIdleTimeout(config.proxy.idleTimeoutMs);
    const effect = newEffect();
    for (const m of old.members) {
      const now = config.members.find((n) => n.name === m.name);
      if (!now || formatHostPort(now.address) !== formatHostPort(m.address))
        this.cut(m.name, 'removed', false, effect);
    }
    for (const member of [...this.sessions.members()])
      if (member !== decision.primary) this.cut(member, 'removed', false, effect);
    for (const [c, attempt] of [...this.connecting]) {
      if (attempt.member === decision.primary) continue;
      this.connecting.delete(c);
      this.route(c);
    }
    this.rerouteRaw(decision.primary);
    for (const c of this.takeGated((m) => m !== decision.primary)) this.route(c);
    for (const [member, socket] of this.gate.setLimit(config.proxy.maxConnecting))
      this.startGated(member, socket);
    if (decision.primary && decision.accepting) effect.released = this.releaseHeld(decision.primary);
    return effect;
  }

  /** Stops accepting at once; held and connecting clients are closed; sessions are left to drain. */
  close(): void {
    if (this.state === 'closed') return;
    const wasListening = this.state === 'listening' || this.state === 'bound';
    this.state = 'closed';
    for (const socket of this.early) socket.destroy();
    this.early = [];
    for (const c of this.held.release()) this.reject(c, 'shutdown');
    for (const c of [...this.connecting.keys()]) this.reject(c, 'shutdown');
    this.connecting.clear();
    for (const c of this.takeGated(() => true)) this.reject(c, 'shutdown');
    // After the waiters are gone, so a freed slot hands nothing on.
    for (const a of this.rawConnecting) {
      a.abandon();
      this.gate.done(a.member);
      a.client.close();
      this.metrics.connectionErrors.inc({ mirror: this.config.name, reason: 'shutdown' });
    }
    this.rawConnecting.clear();
    this.rawDeadlines.clear();
    this.updateHeld();
    // Stops accepting at once; not awaited, since the server's 'close' waits for every session.
    if (wasListening) this.server.close();
    // The idle wheel goes on for the sessions left to drain (its timer is unref'd and stops
    // with the last session).
  }

  /** Waits up to `timeoutMs` for open sessions to end (the last close resolves it), then cuts the rest. */
  async drain(timeoutMs: number): Promise<void> {
    if (this.sessionCount() > 0) {
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

  /** Cuts every session (the mirror is removed, or the drain timed out). */
  cutAll(reason: 'removed' | 'shutdown'): number {
    const effect = newEffect();
    for (const member of [...this.sessions.members()]) this.cut(member, reason, false, effect);
    return effect.cut;
  }

  sessionCount(member?: string): number {
    return this.sessions.count(member);
  }

  heldCount(): number {
    return this.held.size;
  }

  /** Adds bytes forwarded since the last flush to the members' counters (called at scrape time). */
  flushBytes(): void {
    this.sessions.flushBytes();
  }

  private accept(socket: net.Socket): void {
    // Until a link owns the socket, an error (a client that resets while held) is only counted.
    socket.on('error', ignoreUntilLinked);
    if (this.state === 'bound') {
      this.early.push(socket);
      return;
    }
    if (this.state !== 'listening') {
      socket.destroy();
      return;
    }
    if (this.atMaxConnections()) {
      this.metrics.connectionErrors.inc({ mirror: this.config.name, reason: 'max_connections' });
      socket.destroy();
      return;
    }
    const now = performance.now();
    this.route({ socket, acceptedAt: now, deadline: now + this.config.proxy.holdTimeoutMs, attempts: 0 });
  }

  private atMaxConnections(): boolean {
    const max = this.config.proxy.maxConnections;
    return (
      max > 0 &&
      this.sessionCount() +
        this.held.size +
        this.connecting.size +
        this.rawConnecting.size +
        this.gated.size >=
        max
    );
  }

  /**
   * The raw path (raw.ts): a client accepted while a primary accepts is dialled straight
   * from its handle, with no socket made for it. Everything else (no primary, not serving
   * yet, at max_connections, a member by name) is left to `accept`, which gets a socket.
   */
  private acceptRaw(handle: RawTcp): boolean {
    const d = this.decision;
    if (this.state !== 'listening' || d.primary === null || !d.accepting || this.atMaxConnections())
      return false;
    const cfg = this.config.members.find((m) => m.name === d.primary);
    if (!cfg) return false;
    const addr = this.resolver.dial(cfg.address);
    // Past proxy.max_connecting the client waits at the gate, on the socket path.
    if (addr.family === 0 || !this.gate.tryEnter(cfg.name)) return false;
    const now = performance.now();
    const deadline = now + this.config.proxy.connectTimeoutMs;
    const a = rawDial(handle, addr.host, addr.family, addr.port, cfg.name, now, deadline, this);
    if (typeof a === 'string') {
      // A connect that cannot even start goes the socket way, which retries it as usual.
      this.connectDone(cfg.name);
      return false;
    }
    this.rawConnecting.add(a);
    this.rawDeadlines.push(a);
    return true;
  }

  /** RawDialer: a raw connect completed (0) or failed (negative errno). */
  dialed(a: RawAttempt, status: number): void {
    this.rawConnecting.delete(a);
    this.rawDeadlines.remove(a);
    this.connectDone(a.member);
    if (status === 0) {
      const d = this.decision;
      if (a.member === d.primary || a.member === d.fallback) {
        this.sessions.openRaw(a.member, a.client, a.backend, performance.now());
        return;
      }
      // The primary changed while connecting (and apply() did not see it first): never a demoted member.
      a.backend.close();
      return this.route(this.pendingFromRaw(a));
    }
    a.backend.close();
    this.dialFailed(this.pendingFromRaw(a), a.member, rawConnectCode(status));
  }

  private rawTimedOut(a: RawAttempt): void {
    this.rawConnecting.delete(a);
    a.abandon();
    this.connectDone(a.member);
    this.dialFailed(this.pendingFromRaw(a), a.member, 'MLB_ERR_CONNECT_TIMEOUT');
  }

  /** Raw connects to any member but `primary` are abandoned; their clients go where new clients go. */
  private rerouteRaw(primary: string | null): void {
    for (const a of [...this.rawConnecting]) {
      if (a.member === primary) continue;
      this.rawConnecting.delete(a);
      this.rawDeadlines.remove(a);
      // Closing its backend ends the connect: its slot at the gate is free at once.
      a.abandon();
      this.connectDone(a.member);
      this.route(this.pendingFromRaw(a));
    }
  }

  /** A raw client handed to the socket path, with the hold deadline it got when it arrived. */
  private pendingFromRaw(a: RawAttempt): PendingClient {
    return {
      socket: socketForHandle(a.client),
      acceptedAt: a.acceptedAt,
      deadline: a.acceptedAt + this.config.proxy.holdTimeoutMs,
      attempts: 0,
    };
  }

  private route(c: PendingClient): void {
    if (c.socket.destroyed) return;
    const d = this.decision;
    if (d.primary !== null && d.accepting) this.dial(c, d.primary);
    else this.hold(c, c.deadline - performance.now());
  }

  private hold(c: PendingClient, wakeInMs: number): void {
    if (this.state !== 'listening') return this.reject(c, 'shutdown');
    if (this.held.size >= this.config.proxy.maxHeld) return this.reject(c, 'hold_full');
    // Both data paths watch a held socket, so a client that resets or leaves is seen at once
    // (a fast socket reads once into its early-bytes stash; a plain one is read by the queue).
    this.held.add(c, wakeInMs, (woken) => this.wake(woken), isFastSocket(c.socket) ? 'fast' : 'plain');
    this.updateHeld();
  }

  /** A held client's timer fired: a connect retry is due, or its hold timeout ended. */
  private wake(c: PendingClient): void {
    this.updateHeld();
    if (performance.now() < c.deadline) return this.route(c);
    // At the hold timeout: the accepting primary, else the decision's fallback, else closed.
    const d = this.decision;
    const to = d.accepting ? d.primary : d.fallback;
    if (to !== null) return this.dial(c, to);
    this.reject(c, 'hold_timeout');
  }

  private dial(c: PendingClient, member: string): void {
    const cfg = this.config.members.find((m) => m.name === member);
    if (!cfg) return this.hold(c, c.deadline - performance.now());
    // Past proxy.max_connecting the client waits its turn (released clients would overflow the member's backlog).
    if (this.gate.enter(member, c.socket)) return this.connect(c, member, cfg);
    this.gated.add(c, null, () => undefined, isFastSocket(c.socket) ? 'fast' : 'plain');
    this.updateWaiting();
  }

  /** Connects a client the gate let through; the gate counts it in flight until it completes. */
  private connect(c: PendingClient, member: string, cfg: MemberConfig): void {
    const attempt = { member };
    this.connecting.set(c, attempt);
    // An attempt the decision took away (applyDecision re-routed its client) owns nothing.
    const owns = (): boolean => this.connecting.get(c) === attempt;
    connectBackend(this.resolver.get(cfg.address), this.config.proxy.connectTimeoutMs).then(
      (backend) => {
        this.connectDone(member);
        if (!owns()) return void backend.destroy();
        this.connecting.delete(c);
        if (c.socket.destroyed || this.state === 'closed') return void backend.destroy();
        const d = this.decision;
        if (member !== d.primary && member !== d.fallback) {
          // The primary changed while we were connecting: never hand the client to a demoted member.
          backend.destroy();
          return this.route(c);
        }
        // Bytes the client sent to a member that never answered go first, in order.
        for (const b of c.replay ?? []) backend.write(b);
        this.startSession(c, member, backend);
      },
      (err: ConnectError) => {
        this.connectDone(member);
        if (!owns()) return;
        this.connecting.delete(c);
        this.dialFailed(c, member, err.code);
      },
    );
  }

  /** A backend connect failed: probe the mirror now, and retry with backoff while the hold lasts. */
  private dialFailed(c: PendingClient, member: string, code: string): void {
    this.logConnectFailure(member, code);
    this.onConnectFailed(member);
    const cfg = this.config.members.find((m) => m.name === member);
    if (cfg) void this.resolver.refresh(cfg.address);
    const left = c.deadline - performance.now();
    // A client is counted as failed once, when it is given up (reject counts it).
    if (left <= 0 || c.socket.destroyed) return this.reject(c, connectReason(code));
    this.metrics.connectRetries.inc({ mirror: this.config.name, member });
    const backoff = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** c.attempts++);
    this.hold(c, Math.min(backoff, left));
  }

  /** A connect to `member` completed (even one whose client was re-routed): the next waiter starts. */
  private connectDone(member: string): void {
    const next = this.gate.done(member);
    if (next !== undefined) this.startGated(member, next);
  }

  /** Starts the connect of a waiter the gate let in; one that left meanwhile passes its slot on. */
  private startGated(member: string, socket: net.Socket): void {
    const c = this.gated.take(socket);
    this.updateWaiting();
    const cfg = this.config.members.find((m) => m.name === member);
    if (c !== undefined && !c.socket.destroyed && cfg) return this.connect(c, member, cfg);
    this.connectDone(member);
    if (c !== undefined) this.route(c);
  }

  /** Takes the clients waiting at the gate for the members `which` selects, oldest first. */
  private takeGated(which: (member: string) => boolean): PendingClient[] {
    const out: PendingClient[] = [];
    for (const [, socket] of this.gate.take(which)) {
      const c = this.gated.take(socket);
      if (c !== undefined) out.push(c);
    }
    this.updateWaiting();
    return out;
  }

  /** A client left while waiting at the gate: it never connects (nor is it counted as failed). */
  private gatedClientLeft(c: PendingClient): void {
    this.gate.drop(c.socket);
    this.updateWaiting();
  }

  private logConnectFailure(member: string, code: string): void {
    const now = performance.now();
    if (now - (this.failLoggedAt.get(member) ?? -Infinity) < 1000) return;
    this.failLoggedAt.set(member, now);
    this.log.warn(
      { member, code },
      'backend connect failed; probing the mirror and retrying while the hold lasts',
    );
  }

  private startSession(c: PendingClient, member: string, backend: net.Socket): void {
    // Counters, idle timeout and close hook: one object per session, no closure (sessions.ts).
    this.sessions.open(member, c.socket, backend, performance.now());
  }

  /**
   * Releases the held clients still connected to `primary`; returns how many. A client whose
   * socket is already gone (closed before its close event ran) is counted as one that left.
   */
  private releaseHeld(primary: string): number {
    const all = this.held.release();
    const clients = all.filter((c) => !c.socket.destroyed);
    for (const c of all) if (c.socket.destroyed) this.countLeft();
    this.updateHeld();
    const left = this.leftWhileHeld;
    this.leftWhileHeld = 0;
    if (clients.length > 0 || left > 0)
      this.log.info(
        { member: primary, clients: clients.length, left_while_held: left },
        'held clients released',
      );
    for (const c of clients) this.dial(c, primary);
    return clients.length;
  }

  /** A held client disconnected: it left the queue at once (hold.ts); count it, never as released. */
  private heldClientLeft(): void {
    this.countLeft();
    this.updateHeld();
  }

  private countLeft(): void {
    this.leftWhileHeld++;
    this.metrics.connectionErrors.inc({ mirror: this.config.name, reason: 'left_while_held' });
  }

  /**
   * Cuts every session of `member` in one step, adding to `effect`. With `redispatch`, a
   * session the member never sent a byte to (a hung member, a connect that raced the
   * demotion) is not cut: its client goes where new clients go, with its bytes so far
   * replayed (see Link.detachClient).
   */
  private cut(member: string, reason: CutReason, redispatch: boolean, effect: MutableEffect): void {
    // Gone from the count at once: their sockets close later, and a second decision before
    // they do must not cut (and count) them again.
    const taken = this.sessions.take(member);
    if (taken.length === 0) return;
    let cut = 0;
    let moved = 0;
    const now = performance.now();
    for (const s of taken) {
      const detached = redispatch ? this.sessions.detach(s) : null;
      if (detached === null) {
        s.link.destroy();
        cut++;
        continue;
      }
      moved++;
      this.route({
        socket: detached.socket,
        acceptedAt: now,
        deadline: now + this.config.proxy.holdTimeoutMs,
        attempts: 0,
        replay: detached.replay,
      });
    }
    effect.cut += cut;
    effect.moved += moved;
    effect.cutBy[member] = (effect.cutBy[member] ?? 0) + cut;
    if (cut > 0) {
      this.metrics.sessionsCut.inc({ mirror: this.config.name, member, reason }, cut);
      this.log.warn({ member, sessions: cut, reason }, 'sessions cut');
    }
    if (moved > 0) {
      this.metrics.sessionsRedispatched.inc({ mirror: this.config.name, member }, moved);
      this.log.info({ member, sessions: moved, reason }, 'unanswered sessions sent to the new primary');
    }
  }

  private reject(c: PendingClient, reason: string): void {
    if (!c.socket.destroyed) {
      this.metrics.connectionErrors.inc({ mirror: this.config.name, reason });
      if (reason === 'hold_timeout') {
        this.log.warn({ waited_ms: Math.round(performance.now() - c.acceptedAt) }, 'held client timed out');
      }
    }
    c.socket.destroy();
  }

  private updateHeld(): void {
    this.metrics.held.set({ mirror: this.config.name }, this.held.size);
  }

  private updateWaiting(): void {
    this.metrics.connectsWaiting.set({ mirror: this.config.name }, this.gated.size);
  }
}

type MutableEffect = { -readonly [K in keyof ProxyEffect]: ProxyEffect[K] } & {
  cutBy: Record<string, number>;
};

function newEffect(): MutableEffect {
  return { cut: 0, cutBy: {}, moved: 0, released: 0 };
}

/** The code connectBackend would have given for a raw connect's status (a negative errno). */
function rawConnectCode(status: number): string {
  try {
    return util.getSystemErrorName(status);
  } catch {
    return 'MLB_ERR_CONNECT';
  }
}

function connectReason(code: string): string {
  switch (code) {
    case 'ECONNREFUSED':
      return 'connect_refused';
    case 'MLB_ERR_CONNECT_TIMEOUT':
      return 'connect_timeout';
    case 'ECONNRESET':
      return 'connect_reset';
    case 'EMFILE':
    case 'ENFILE':
      return 'fd_exhausted';
    default:
      return 'connect_error';
  }
}
