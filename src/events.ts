/**
 * The transitions log behind GET /events and the status page timeline: the last
 * `capacity` role changes and failovers, newest last. Plain data, safe to serialise.
 */
export interface TransitionEvent {
  readonly time: string;
  readonly mirror: string;
  /** The member whose role changed; for a failover, the new primary (null: none). */
  readonly member: string | null;
  readonly kind: 'role' | 'failover' | 'admin' | 'reload';
  readonly from: string | null;
  readonly to: string | null;
  /** Role change: ms since the member's previous check (an upper bound on detection). Failover: ms the mirror had no primary. */
  readonly detectionMs: number | null;
  readonly heldClients: number;
  readonly cutSessions: number;
  readonly detail?: string;
}

export class EventLog {
  private readonly items: TransitionEvent[] = [];
  private seq = 0;

  constructor(private readonly capacity = 200) {}

  push(e: Omit<TransitionEvent, 'time'>): TransitionEvent {
    const full: TransitionEvent = { time: new Date().toISOString(), ...e };
    this.items.push(full);
    this.seq++;
    if (this.items.length > this.capacity) this.items.shift();
    return full;
  }

  /** Total events ever pushed (lets a poller tell whether anything is new). */
  get count(): number {
    return this.seq;
  }

  list(): readonly TransitionEvent[] {
    return this.items;
  }
}
