import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { MirrorConfig } from '../config/types.js';
import { formatHostPort } from '../config/types.js';
import type { DecisionChange, MirrorMonitor } from '../health/monitor.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { HoldQueue, type PendingClient } from './hold.js';
import { link, type Link } from './link.js';
import type { Resolver } from './resolver.js';
import { connectBackend, ConnectError, createProxyServer, isFastSocket } from './sockets.js';

interface Session {
  readonly member: string;
  readonly link: Link;
  readonly startedAt: number;
  /** Bytes already added to mirrorlb_bytes_total (flushed at scrape and at close). */
  countedIn: number;
  countedOut: number;
}

export type CutReason = 'demoted' | 'disabled' | 'removed' | 'shutdown' | 'conflict';

/** Retry backoff for failed backend connects while the hold timeout lasts. */
const RETRY_MIN_MS = 20;
const RETRY_MAX_MS = 250;

/**
 * The TCP front of one mirror: accepts clients, sends each to the member the monitor
 * holds as primary, holds them while there is none, and cuts every session of a member
 * the moment it stops being primary (one step per decision, contract rule 4).
 *
 * Owned by the daemon; `setMonitor` swaps the monitor on a reload that keeps the listener.
 */
export class MirrorProxy {
  private config: MirrorConfig;
  private monitor: MirrorMonitor;
  private readonly server: net.Server;
  private readonly held = new HoldQueue(() => this.updateHeld());
  private readonly sessions = new Map<string, Set<Session>>();
  /** Clients whose backend connect is under way, with the attempt that owns them. */
  private readonly connecting = new Map<PendingClient, { readonly member: string }>();
  /** When a connect failure was last logged per member (a crash fails hundreds at once). */
  private readonly failLoggedAt = new Map<string, number>();
  private state: 'new' | 'listening' | 'closed' = 'new';
  /** What the last decision did: sessions cut and held clients released (for logs and events). */
  lastEffect = { cut: 0, released: 0 };
  private readonly onDecision = (c: DecisionChange): void => this.applyDecision(c);

  constructor(
    config: MirrorConfig,
    monitor: MirrorMonitor,
    private readonly metrics: Metrics,
    private readonly resolver: Resolver,
    private readonly log: Logger,
  ) {
    this.config = config;
    this.monitor = monitor;
    this.server = createProxyServer((socket) => this.accept(socket));
    this.server.on('error', (err: NodeJS.ErrnoException) => {
      // Accept errors (EMFILE, ENFILE) must never kill the daemon; libuv keeps listening.
      this.metrics.connectionErrors.inc({
        mirror: this.config.name,
        reason: `accept_${err.code ?? 'error'}`,
      });
      this.log.error({ err: err.message, code: err.code }, 'accept failed');
    });
    monitor.on('decision', this.onDecision);
  }

  get name(): string {
    return this.config.name;
  }

  async listen(): Promise<void> {
    if (this.state !== 'new') throw new Error(`proxy ${this.config.name} already ${this.state}`);
    const { host, port } = this.config.listen;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen({ host, port, backlog: 4096 }, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    this.state = 'listening';
    this.log.info({ listen: formatHostPort(this.config.listen) }, 'listening');
  }

  /** The bound address (port 0 in tests becomes a real port). */
  address(): net.AddressInfo {
    return this.server.address() as net.AddressInfo;
  }

  /**
   * Reload: the same listener serves a new monitor (and maybe new members). Sessions on
   * members that are gone or whose address changed are cut; others stay untouched.
   */
  setMonitor(config: MirrorConfig, monitor: MirrorMonitor): void {
    this.monitor.off('decision', this.onDecision);
    const old = this.config;
    this.config = config;
    this.monitor = monitor;
    monitor.on('decision', this.onDecision);
    for (const m of old.members) {
      const now = config.members.find((n) => n.name === m.name);
      if (!now || formatHostPort(now.address) !== formatHostPort(m.address)) this.cut(m.name, 'removed');
    }
    const d = monitor.decision;
    for (const member of this.sessions.keys()) if (member !== d.primary) this.cut(member, 'removed');
    if (d.primary && d.accepting) this.releaseHeld(d.primary);
  }

  /** Stops accepting at once; held and connecting clients are closed; sessions are left to drain. */
  close(): void {
    if (this.state === 'closed') return;
    const wasListening = this.state === 'listening';
    this.state = 'closed';
    this.monitor.off('decision', this.onDecision);
    for (const c of this.held.release()) this.reject(c, 'shutdown');
    for (const c of [...this.connecting.keys()]) this.reject(c, 'shutdown');
    this.connecting.clear();
    this.updateHeld();
    // Stops accepting at once; not awaited, since the server's 'close' waits for every session.
    if (wasListening) this.server.close();
  }

  /** Waits up to `timeoutMs` for open sessions to end, then cuts the rest. */
  async drain(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.sessionCount() > 0 && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 25));
    }
    for (const member of [...this.sessions.keys()]) this.cut(member, 'shutdown');
  }

  sessionCount(member?: string): number {
    if (member !== undefined) return this.sessions.get(member)?.size ?? 0;
    let n = 0;
    for (const s of this.sessions.values()) n += s.size;
    return n;
  }

  heldCount(): number {
    return this.held.size;
  }

  /** Adds bytes forwarded since the last flush to mirrorlb_bytes_total (called at scrape time). */
  flushBytes(): void {
    for (const set of this.sessions.values()) for (const s of set) this.countBytes(s);
  }

  private accept(socket: net.Socket): void {
    // Until a link owns the socket, an error (a client that resets while held) is only counted.
    socket.on('error', () => {});
    if (this.state !== 'listening') {
      socket.destroy();
      return;
    }
    const max = this.config.proxy.maxConnections;
    if (max > 0 && this.sessionCount() + this.held.size + this.connecting.size >= max) {
      this.metrics.connectionErrors.inc({ mirror: this.config.name, reason: 'max_connections' });
      socket.destroy();
      return;
    }
    const now = performance.now();
    this.route({ socket, acceptedAt: now, deadline: now + this.config.proxy.holdTimeoutMs, attempts: 0 });
  }

  private route(c: PendingClient): void {
    if (c.socket.destroyed) return;
    const d = this.monitor.decision;
    if (d.primary !== null && d.accepting) this.dial(c, d.primary);
    else this.hold(c, c.deadline - performance.now());
  }

  private hold(c: PendingClient, wakeInMs: number): void {
    if (this.state !== 'listening') return this.reject(c, 'shutdown');
    if (this.held.size >= this.config.proxy.maxHeld) return this.reject(c, 'hold_full');
    this.held.add(c, wakeInMs, (woken) => this.wake(woken));
    // A fast socket reads once into its early-bytes stash and stops (fastpath.ts), so a held
    // client that resets or leaves is seen at once; a plain socket stays paused until linked.
    if (isFastSocket(c.socket)) c.socket.resume();
    this.updateHeld();
  }

  /** A held client's timer fired: a connect retry is due, or its hold timeout ended. */
  private wake(c: PendingClient): void {
    this.updateHeld();
    if (performance.now() < c.deadline) return this.route(c);
    const d = this.monitor.decision;
    if (d.accepting && d.primary) return this.dial(c, d.primary);
    // Rule 3: at the hold timeout a client goes to a merely suspect primary rather than nowhere.
    const slot = this.monitor.members().find((m) => m.config.name === d.primary);
    if (slot && slot.health.role === 'suspect' && slot.admin === 'enabled')
      return this.dial(c, slot.config.name);
    this.reject(c, 'hold_timeout');
  }

  private dial(c: PendingClient, member: string): void {
    const cfg = this.config.members.find((m) => m.name === member);
    if (!cfg) return this.hold(c, c.deadline - performance.now());
    const attempt = { member };
    this.connecting.set(c, attempt);
    // An attempt the decision took away (applyDecision re-routed its client) owns nothing.
    const owns = (): boolean => this.connecting.get(c) === attempt;
    connectBackend(this.resolver.get(cfg.address), this.config.proxy.connectTimeoutMs).then(
      (backend) => {
        if (!owns()) return void backend.destroy();
        this.connecting.delete(c);
        if (c.socket.destroyed || this.state === 'closed') return void backend.destroy();
        const d = this.monitor.decision;
        if (d.primary !== member) {
          // The primary changed while we were connecting: never hand the client to a demoted member.
          backend.destroy();
          return this.route(c);
        }
        // Bytes the client sent to a member that never answered go first, in order.
        for (const b of c.replay ?? []) backend.write(b);
        this.startSession(c, member, backend);
      },
      (err: ConnectError) => {
        if (!owns()) return;
        this.connecting.delete(c);
        this.metrics.connectionErrors.inc({ mirror: this.config.name, reason: connectReason(err.code) });
        this.logConnectFailure(member, err.code);
        this.monitor.kick();
        void this.resolver.refresh(cfg.address);
        const left = c.deadline - performance.now();
        if (left <= 0 || c.socket.destroyed) return this.reject(c, connectReason(err.code));
        const backoff = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** c.attempts++);
        this.hold(c, Math.min(backoff, left));
      },
    );
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
    let set = this.sessions.get(member);
    if (!set) this.sessions.set(member, (set = new Set()));
    const labels = { mirror: this.config.name, member };
    const session: Session = {
      member,
      startedAt: performance.now(),
      countedIn: 0,
      countedOut: 0,
      link: link(c.socket, backend, {
        onClose: () => {
          set.delete(session);
          this.countBytes(session);
          this.metrics.connectionsActive.dec(labels);
        },
      }),
    };
    set.add(session);
    this.metrics.connectionsTotal.inc(labels);
    this.metrics.connectionsActive.inc(labels);
    const idle = this.config.proxy.idleTimeoutMs;
    if (idle > 0) {
      // The client socket sees traffic both ways (reads from it, writes of the member's replies).
      c.socket.setTimeout(idle, () => {
        this.metrics.sessionsCut.inc({ ...labels, reason: 'idle' });
        session.link.destroy();
      });
    }
  }

  private countBytes(s: Session): void {
    const labels = { mirror: this.config.name, member: s.member };
    const dIn = s.link.bytesIn - s.countedIn;
    const dOut = s.link.bytesOut - s.countedOut;
    if (dIn > 0) this.metrics.bytes.inc({ ...labels, direction: 'in' }, dIn);
    if (dOut > 0) this.metrics.bytes.inc({ ...labels, direction: 'out' }, dOut);
    s.countedIn = s.link.bytesIn;
    s.countedOut = s.link.bytesOut;
  }

  private applyDecision({ prev, next }: DecisionChange): void {
    this.lastEffect = { cut: 0, released: 0 };
    for (const member of [...this.sessions.keys()]) {
      if (member === next.primary) continue;
      const reason: CutReason = next.conflict.includes(member)
        ? 'conflict'
        : this.monitor.members().find((m) => m.config.name === member)?.admin === 'disabled'
          ? 'disabled'
          : 'demoted';
      this.lastEffect.cut += this.cut(member, reason, true);
    }
    // Connects still under way to a member that lost the role (a blackholed primary never
    // answers the SYN) are abandoned: their clients go where new clients go, now.
    for (const [c, attempt] of [...this.connecting]) {
      if (attempt.member === next.primary) continue;
      this.connecting.delete(c);
      this.route(c);
    }
    if (next.primary !== null && next.accepting && !(prev.primary === next.primary && prev.accepting)) {
      this.releaseHeld(next.primary);
    }
  }

  private releaseHeld(primary: string): void {
    const clients = this.held.release();
    this.lastEffect.released = clients.length;
    this.updateHeld();
    if (clients.length > 0)
      this.log.info({ member: primary, clients: clients.length }, 'held clients released');
    for (const c of clients) this.dial(c, primary);
  }

  /**
   * Cuts every session of `member` in one step. With `redispatch`, a session the member never
   * sent a byte to (a hung member, a connect that raced the demotion) is not cut: its client
   * goes where new clients go, with its bytes so far replayed (see Link.detachClient).
   */
  cut(member: string, reason: CutReason, redispatch = false): number {
    const set = this.sessions.get(member);
    if (!set || set.size === 0) return 0;
    let cut = 0;
    let moved = 0;
    const now = performance.now();
    for (const s of [...set]) {
      const detached = redispatch ? s.link.detachClient() : null;
      if (detached === null) {
        s.link.destroy();
        cut++;
        continue;
      }
      moved++;
      // The idle timer belonged to the old session.
      detached.socket.setTimeout(0);
      detached.socket.removeAllListeners('timeout');
      this.route({
        socket: detached.socket,
        acceptedAt: now,
        deadline: now + this.config.proxy.holdTimeoutMs,
        attempts: 0,
        replay: detached.replay,
      });
    }
    if (cut > 0) {
      this.metrics.sessionsCut.inc({ mirror: this.config.name, member, reason }, cut);
      this.log.warn({ member, sessions: cut, reason }, 'sessions cut');
    }
    if (moved > 0) {
      this.metrics.sessionsRedispatched.inc({ mirror: this.config.name, member }, moved);
      this.log.info({ member, sessions: moved, reason }, 'unanswered sessions sent to the new primary');
    }
    return cut;
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
