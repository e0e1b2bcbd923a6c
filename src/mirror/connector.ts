import { performance } from 'node:perf_hooks';
import type { MemberConfig } from '../config/types.js';
import { ConnectGate } from '../proxy/connect-gate.js';
import type { Resolver } from '../proxy/resolver.js';
import type { SessionTable } from '../proxy/sessions.js';
import type { Client, ClientTable } from './client.js';
import { Dialer, toSocket, type Backend, type DialOwner } from './dial.js';
import { Watch } from './watch.js';

/** What the connector asks of its router. */
export interface ConnectorOwner {
  /** Whether a connect to `member` that completes now may become a session (the plan in force). */
  admits(member: string): boolean;
  /** Whether the route still serves (a connect completing after its close is dropped). */
  readonly serving: boolean;
  /** A client handed back `accepted`: its connect was not admitted, or its member is gone. */
  reroute(c: Client): void;
  /** A client handed back `accepted`: its connect failed with `code`. */
  connectFailed(c: Client, member: string, code: string): void;
  /** The number of gated clients changed. */
  waitingChanged(): void;
}

/**
 * The back half of a route: takes a client to a member. Past `proxy.max_connecting`
 * connects in flight to that member it waits at the gate (`gated`, watched), in arrival
 * order; then it is `connecting` (one Dial, raw or socket), then `linked` in the session
 * table, or handed back to the router. Every state change goes through the ClientTable.
 */
export class Connector implements DialOwner {
  private readonly gate: ConnectGate<Client>;
  private readonly dialer: Dialer;
  private members = new Map<string, MemberConfig>();
  private timeoutMs = 0;

  constructor(
    private readonly clients: ClientTable,
    private readonly sessions: SessionTable<Client>,
    resolver: Resolver,
    private readonly owner: ConnectorOwner,
  ) {
    this.gate = new ConnectGate(0);
    this.dialer = new Dialer(this, resolver);
  }

  /** The members, connect timeout and gate limit in force; a higher limit lets waiting clients start. */
  configure(
    members: ReadonlyMap<string, MemberConfig>,
    connectTimeoutMs: number,
    maxConnecting: number,
  ): void {
    this.members = new Map(members);
    this.timeoutMs = connectTimeoutMs;
    for (const [member, c] of this.gate.setLimit(maxConnecting)) this.startGated(member, c);
  }

  /** Takes `c` (`accepted`) to `member`: connecting now, or waiting at the gate. */
  connect(c: Client, member: MemberConfig): void {
    c.member = member.name;
    // Past proxy.max_connecting the client waits its turn (released clients would overflow the member's backlog).
    if (this.gate.enter(member.name, c)) return this.start(c, member);
    toSocket(c);
    this.clients.move(c, 'gated');
    new Watch(c, null, noop, (left) => this.gatedLeft(left));
    this.owner.waitingChanged();
  }

  /**
   * Clients waiting for, or connecting to, a member `keeps` rejects, handed back `accepted`
   * (connects given up at once: a blackholed member never answers the SYN), oldest first.
   */
  abandon(keeps: (member: string) => boolean): Client[] {
    const out: Client[] = [];
    for (const [, c] of this.gate.take((m) => !keeps(m))) {
      c.watch?.end();
      this.clients.move(c, 'accepted');
      out.push(c);
    }
    for (const c of this.clients.list('connecting')) {
      if (keeps(c.member!)) continue;
      c.dial?.cancel();
      c.dial = null;
      this.clients.move(c, 'accepted');
      out.push(c);
      this.gateDone(c.member!);
    }
    this.owner.waitingChanged();
    return out;
  }

  /** Shutdown: every connect given up and every waiter handed back, for the router to close. */
  close(): Client[] {
    const out = this.abandon(() => false);
    this.dialer.close();
    return out;
  }

  /** DialOwner: the connect of `c` completed. */
  connected(c: Client, member: string, backend: Backend): void {
    c.dial = null;
    this.gateDone(member);
    if (!this.owner.serving || c.gone) {
      closeBackend(backend);
      return this.clients.move(c, 'closed');
    }
    this.clients.move(c, 'accepted');
    // The plan changed while connecting (and apply() did not see it first): never a member it dropped.
    if (!this.owner.admits(member)) {
      closeBackend(backend);
      return this.owner.reroute(c);
    }
    const now = performance.now();
    if (backend.handle !== null) c.session = this.sessions.openRaw(member, c.handle!, backend.handle, now, c);
    else {
      // Bytes the client sent to a member that never answered go first, in order.
      for (const b of c.replay ?? []) backend.socket.write(b);
      c.session = this.sessions.open(member, c.socket!, backend.socket, now, c);
    }
    c.replay = null;
    this.clients.move(c, 'linked');
  }

  /** DialOwner: the connect of `c` failed (refused, reset, timed out). */
  failed(c: Client, member: string, code: string): void {
    c.dial = null;
    this.gateDone(member);
    this.clients.move(c, 'accepted');
    this.owner.connectFailed(c, member, code);
  }

  private start(c: Client, member: MemberConfig): void {
    this.clients.move(c, 'connecting');
    this.dialer.start(c, member, this.timeoutMs);
  }

  /** A connect to `member` ended (or was given up): the next client waiting for it starts. */
  private gateDone(member: string): void {
    const next = this.gate.done(member);
    if (next !== undefined) this.startGated(member, next);
  }

  /** Starts the connect of a waiting client the gate let in. */
  private startGated(member: string, c: Client): void {
    c.watch?.end();
    this.clients.move(c, 'accepted');
    this.owner.waitingChanged();
    const cfg = this.members.get(member);
    if (!c.gone && cfg) return this.start(c, cfg);
    this.gateDone(member);
    this.owner.reroute(c);
  }

  /** A client left while waiting at the gate: it never connects (nor is it counted as failed). */
  private gatedLeft(c: Client): void {
    this.gate.drop(c);
    this.clients.move(c, 'closed');
    this.owner.waitingChanged();
  }
}

function closeBackend(b: Backend): void {
  if (b.handle !== null) b.handle.close();
  else b.socket.destroy();
}

function noop(): void {}
