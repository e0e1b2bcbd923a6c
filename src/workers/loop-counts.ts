import type { Client, ClientState, SharedLimits } from '../mirror/client.js';
import type { SharedMirrorState } from './shared-state.js';

/**
 * One loop's share of a mirror's process-wide counts (shared-state.ts), kept from its client
 * table's moves: a client counts against `max_connections` from its entry to its close, as
 * held while held, as a session of its member while linked. `tryTake` adds the place before
 * the client enters; the entry that follows does not add it again.
 */
export class LoopCounts implements SharedLimits {
  readonly reusePort = true as const;
  private taken = false;
  /** Clients that entered the table: a client refused or dropped before it entered is closed uncounted. */
  private readonly entered = new WeakSet<Client>();

  constructor(
    private readonly state: SharedMirrorState,
    private readonly loop: number,
    private readonly loops: () => number,
    private slots: ReadonlyMap<string, number>,
  ) {}

  /** A reload's member slots (shared-state.ts MemberSlots). */
  reslot(slots: ReadonlyMap<string, number>): void {
    this.slots = slots;
  }

  tryTake(max: number): boolean {
    this.taken = this.state.tryTake(this.loop, max, this.loops());
    return this.taken;
  }

  held(): number {
    return this.state.total('held', this.loops());
  }

  moved(c: Client, from: ClientState | null, to: ClientState): void {
    if (from === null) {
      this.entered.add(c);
      this.state.add(this.loop, 'accepted', 1);
      if (!this.taken) this.state.add(this.loop, 'active', 1);
      this.taken = false;
    }
    if (to === 'closed' && this.entered.delete(c)) this.state.add(this.loop, 'active', -1);
    if (from === 'held') this.state.add(this.loop, 'held', -1);
    if (to === 'held') this.state.add(this.loop, 'held', 1);
    if (from === 'linked') this.linked(c, -1);
    if (to === 'linked') this.linked(c, 1);
  }

  private linked(c: Client, n: number): void {
    const slot = c.member === null ? undefined : this.slots.get(c.member);
    if (slot !== undefined) this.state.addLinked(this.loop, slot, n);
  }
}
