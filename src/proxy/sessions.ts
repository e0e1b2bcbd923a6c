import type { Socket } from 'node:net';
import type { MemberCounters, Metrics } from '../metrics.js';
import { IdleWheel, type IdleEntry } from './idle-wheel.js';
import { link, type Link, type LinkHooks } from './link.js';
import { rawLink, type RawTcp } from './raw.js';
import { socketForHandle } from './sockets.js';

/**
 * The proxied sessions of one mirror, by member, with everything a connect and a close
 * must update: the member's counters (plain numbers, see MemberCounters), its set of
 * sessions and, when `idle_timeout` is on, the mirror's idle wheel. One object per
 * session, which is also the link's hooks (a method, not a closure); every step is O(1).
 */
export class ProxiedSession<T = unknown> implements LinkHooks, IdleEntry {
  link!: Link;
  /** Bytes already added to the member's counters (the rest at scrape or at close). */
  countedIn = 0;
  countedOut = 0;
  idleSlot = -1;
  idleMark = 0;
  idleQuietTicks = 0;
  /** Given back to the mirror for another member: the table no longer owns its client. */
  detached = false;
  /** Until both sockets closed: counted in the member's `active`. */
  open = true;
  /** Why the table closed it (the reason given to `take`, or `idle`); null when it ended by itself. */
  cut: string | null = null;

  constructor(
    private readonly table: SessionTable<T>,
    readonly member: MemberSessions<T>,
    readonly startedAt: number,
    /** Whose session it is (the route's client); null in a table used alone. */
    readonly owner: T | null,
  ) {}

  /** LinkHooks: both sockets are closed. */
  onClose(): void {
    this.table.closed(this);
  }

  /** LinkHooks (raw path): the member left before its first byte; the client is the mirror's again. */
  onBackendLost(socket: Socket, replay: readonly Buffer[], code: string): void {
    this.table.onBackendLost(this, socket, replay, code);
  }

  activity(): number {
    return this.link.bytesIn + this.link.bytesOut;
  }

  onIdle(): void {
    this.table.idle(this);
  }
}

/** One member's sessions and counters. */
export class MemberSessions<T = unknown> {
  readonly sessions = new Set<ProxiedSession<T>>();

  constructor(
    readonly name: string,
    readonly counters: MemberCounters,
  ) {}
}

export class SessionTable<T = unknown> {
  private readonly byMember = new Map<string, MemberSessions<T>>();
  private wheel: IdleWheel | null = null;
  private total = 0;
  /** Called once per session closed by its idle timeout (for mirrorlb_sessions_cut_total). */
  onIdleCut: (member: string) => void = () => {};
  /** Called once per session after both its sockets closed (e.g. to resolve a drain). */
  onClosed: (s: ProxiedSession<T>) => void = () => {};
  /** A session's member left before its first byte (LinkHooks.onBackendLost); default: close the client. */
  onBackendLost: (s: ProxiedSession<T>, socket: Socket, replay: readonly Buffer[], code: string) => void = (
    _s,
    socket,
  ) => socket.destroy();

  constructor(
    private readonly mirror: string,
    private readonly metrics: Metrics,
    idleTimeoutMs = 0,
  ) {
    this.setIdleTimeout(idleTimeoutMs);
  }

  /** 0 turns the idle timeout off (no timer at all); a change applies to open sessions too. */
  setIdleTimeout(ms: number): void {
    if ((this.wheel?.idleMs ?? 0) === ms) return;
    this.wheel?.clear();
    this.wheel = ms > 0 ? new IdleWheel(ms) : null;
    if (this.wheel === null) return;
    for (const m of this.byMember.values()) for (const s of m.sessions) if (!s.detached) this.wheel.add(s);
  }

  /** Links client and backend as a session of `member`. */
  open(
    member: string,
    client: Socket,
    backend: Socket,
    now: number,
    owner: T | null = null,
  ): ProxiedSession<T> {
    const s = this.add(member, now, owner);
    s.link = link(client, backend, s);
    this.wheel?.add(s);
    return s;
  }

  /** Links two raw handles (raw.ts) as a session of `member`. */
  openRaw(
    member: string,
    client: RawTcp,
    backend: RawTcp,
    now: number,
    owner: T | null = null,
  ): ProxiedSession<T> {
    const s = this.add(member, now, owner);
    s.link = rawLink(client, backend, s, socketForHandle);
    this.wheel?.add(s);
    return s;
  }

  private add(member: string, now: number, owner: T | null): ProxiedSession<T> {
    const m = this.memberEntry(member);
    const s = new ProxiedSession<T>(this, m, now, owner);
    m.sessions.add(s);
    this.total++;
    m.counters.total++;
    m.counters.active++;
    return s;
  }

  /** Sessions open now, of one member or of all. */
  count(member?: string): number {
    if (member === undefined) return this.total;
    return this.byMember.get(member)?.sessions.size ?? 0;
  }

  /** Members that have open sessions. */
  *members(): Iterable<string> {
    for (const m of this.byMember.values()) if (m.sessions.size > 0) yield m.name;
  }

  /**
   * Takes every session of `member` out of the table at once, for the caller to cut or move:
   * they no longer count (a second decision before their sockets close must not cut them
   * again), and their close still updates the member's counters.
   */
  take(member: string, reason: string): ProxiedSession<T>[] {
    const m = this.byMember.get(member);
    if (!m || m.sessions.size === 0) return [];
    const out = [...m.sessions];
    m.sessions.clear();
    this.total -= out.length;
    for (const s of out) {
      s.cut = reason;
      this.wheel?.remove(s);
    }
    return out;
  }

  /**
   * Takes the client out of a session the member never answered (Link.detachClient): the
   * session leaves the idle wheel at once, its backend closes, and the client is the
   * caller's. Null when the session cannot give its client back.
   */
  detach(s: ProxiedSession<T>): ReturnType<Link['detachClient']> {
    const d = s.link.detachClient();
    if (d === null) return null;
    s.detached = true;
    this.wheel?.remove(s);
    return d;
  }

  /** Adds bytes forwarded by sessions in the table since the last flush to their members' counters. */
  flushBytes(): void {
    for (const m of this.byMember.values()) for (const s of m.sessions) this.countBytes(s);
  }

  closed(s: ProxiedSession<T>): void {
    if (!s.open) return;
    s.open = false;
    const m = s.member;
    if (m.sessions.delete(s)) this.total--;
    m.counters.active--;
    this.countBytes(s);
    this.wheel?.remove(s);
    this.onClosed(s);
  }

  idle(s: ProxiedSession<T>): void {
    s.cut = 'idle';
    this.onIdleCut(s.member.name);
    s.link.destroy();
  }

  private countBytes(s: ProxiedSession<T>): void {
    const c = s.member.counters;
    const l = s.link;
    c.bytesIn += l.bytesIn - s.countedIn;
    c.bytesOut += l.bytesOut - s.countedOut;
    s.countedIn = l.bytesIn;
    s.countedOut = l.bytesOut;
  }

  private memberEntry(member: string): MemberSessions<T> {
    let m = this.byMember.get(member);
    if (!m)
      this.byMember.set(
        member,
        (m = new MemberSessions<T>(member, this.metrics.member(this.mirror, member))),
      );
    return m;
  }
}
