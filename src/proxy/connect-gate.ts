/**
 * The bound on backend connects in flight per member (`proxy.max_connecting`). A failover
 * releases every held client at once; dialled all together, their SYNs overflow the new
 * primary's listen backlog (the SuperServer's is 128–4096), the dropped ones are only
 * retransmitted a second later and some clients time out. Past the bound a connect waits
 * here, in arrival order, and starts when one in flight to the same member completes
 * (connected or failed).
 *
 * Pure bookkeeping, no sockets or timers: the connector (src/mirror/connector.ts) asks `enter` before
 * each connect and calls `done` when it completes, and starts whatever `done` hands back.
 * Items are compared by identity; the same item waits at most once.
 */
export class ConnectGate<T> {
  private readonly members = new Map<string, { inFlight: number; readonly waiting: Set<T> }>();
  /** Waiting items and the member each waits for (to drop one without knowing its member). */
  private readonly waitingFor = new Map<T, string>();

  /** `limit`: connects in flight per member; 0 = unbounded (nothing ever waits). */
  constructor(private limit: number) {}

  /** Items waiting, over all members. */
  get waiting(): number {
    return this.waitingFor.size;
  }

  inFlight(member: string): number {
    return this.members.get(member)?.inFlight ?? 0;
  }

  /** true: `item` may connect now (counted in flight); false: it waits for a `done(member)`. */
  enter(member: string, item: T): boolean {
    const m = this.slot(member);
    if (this.limit === 0 || (m.inFlight < this.limit && m.waiting.size === 0)) {
      m.inFlight++;
      return true;
    }
    m.waiting.add(item);
    this.waitingFor.set(item, member);
    return false;
  }

  /**
   * One connect to `member` completed. Returns the next waiting item, which now counts in
   * flight and must be started by the caller, or undefined when none waits (or the limit,
   * lowered by a reload, still has more in flight than it allows).
   */
  done(member: string): T | undefined {
    const m = this.members.get(member);
    if (m === undefined || m.inFlight === 0) return undefined;
    m.inFlight--;
    const next = this.next(m);
    if (next === undefined && m.inFlight === 0) this.members.delete(member);
    return next;
  }

  /** A waiting item leaves (its client went away); false if it was not waiting. */
  drop(item: T): boolean {
    const member = this.waitingFor.get(item);
    if (member === undefined) return false;
    this.waitingFor.delete(item);
    this.members.get(member)?.waiting.delete(item);
    return true;
  }

  /**
   * Takes out the waiting items whose member `which` selects (all without it), oldest first
   * per member, with their member: the caller routes them elsewhere or closes them.
   */
  take(which: (member: string) => boolean = () => true): Array<[member: string, item: T]> {
    const out: Array<[string, T]> = [];
    for (const [member, m] of this.members) {
      if (!which(member)) continue;
      for (const item of m.waiting) {
        out.push([member, item]);
        this.waitingFor.delete(item);
      }
      m.waiting.clear();
      if (m.inFlight === 0) this.members.delete(member);
    }
    return out;
  }

  /**
   * A reload changed the limit. Returns the items a higher (or no) limit lets start now,
   * counted in flight, with their member; a lower one only lets fewer start from now on.
   */
  setLimit(limit: number): Array<[member: string, item: T]> {
    this.limit = limit;
    const out: Array<[string, T]> = [];
    for (const [member, m] of this.members) {
      for (let next = this.next(m); next !== undefined; next = this.next(m)) out.push([member, next]);
    }
    return out;
  }

  /** Moves the oldest waiting item of a member in flight, if the limit has room. */
  private next(m: { inFlight: number; readonly waiting: Set<T> }): T | undefined {
    if (m.waiting.size === 0 || (this.limit !== 0 && m.inFlight >= this.limit)) return undefined;
    const item = m.waiting.values().next().value as T;
    m.waiting.delete(item);
    this.waitingFor.delete(item);
    m.inFlight++;
    return item;
  }

  private slot(member: string): { inFlight: number; readonly waiting: Set<T> } {
    let m = this.members.get(member);
    if (m === undefined) {
      m = { inFlight: 0, waiting: new Set() };
      this.members.set(member, m);
    }
    return m;
  }
}
